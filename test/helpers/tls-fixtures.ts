// The test-only TLS material in fixtures/tls (see its README): paths, the test CA, and the server
// certificate as the YAML of a listener's tls: { cert, key }.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Absolute path of fixtures/tls/`name`. */
export const tlsFixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url))

/** The CA that signed the server certificates: what clients trust. */
export const TEST_CA = readFileSync(tlsFixture('ca.pem'))

/** `cert: "…", key: "…"` of the server certificate (for *.mqtt.test, mqtt.acme.test, localhost, 127.0.0.1). */
export const SERVER_TLS_YAML = `cert: "${tlsFixture('server.pem')}", key: "${tlsFixture('server.key')}"`
