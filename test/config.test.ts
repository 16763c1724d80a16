// Configuration loading (SPEC §3): every bad config names its YAML path and line; good ones load
// with env substitution, durations, sizes and password files; no input makes the loader throw
// anything but a ConfigError.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { loadConfigFile, parseConfigText } from '../src/config/load.js'
import { ConfigError } from '../src/errors.js'

const BAD: Array<[string, string]> = [
  ['unknown-key', 'tenants.acme.limits.maxConection (line 8): unknown key "maxConection"'],
  ['bad-duration', 'listeners[0].connectTimeout (line 2): expected a duration like 500ms, 10s or 5m, got "soon"'],
  ['bad-size', 'plans.free.maxPacketSize (line 7): expected a size like 256, 64KiB or 1MiB, got "huge"'],
  ['bad-rate', 'tenants.acme.limits.publishRate (line 8): expected a positive number, got "fast"'],
  ['missing-upstream', 'upstream'],
  ['tenant-uppercase', 'tenants.Acme (line 6): expected a tenant ID'],
  ['tenant-dash', 'tenants.-x (line 6): expected a tenant ID'],
  ['tenant-slash', 'tenants.a/b (line 6): expected a tenant ID'],
  ['unknown-plan', 'tenants.acme.plan (line 7): unknown plan "gold"'],
  ['unknown-listener-tenant', 'listeners[0].tenant (line 2): unknown tenant "ghost"'],
  ['duplicate-listener', 'listeners[1].name (line 3): duplicate listener name "mqtt"'],
  ['tls-without-files', 'listeners[0].tls (line 2): a tls or wss listener needs tls'],
  ['wss-without-files', 'listeners[0].tls (line 2): a tls or wss listener needs tls'],
  ['ws-bad-path', 'listeners[0].path (line 2): expected a path starting with /'],
  ['unknown-upstream', 'tenants.acme.upstream (line 8): unknown upstream "us" (upstreams: eu)'],
  ['named-upstream-embedded', 'upstreams.local.url (line 5): the embedded broker can only be the default upstream'],
  ['trusted-proxies-on-tcp', 'listeners[0].trustedProxies (line 2): trustedProxies is for ws and wss listeners'],
  ['trusted-proxies-bad-cidr', 'listeners[0].trustedProxies (line 2): invalid range on address: 10.0.0.0/99'],
  ['proxy-protocol-not-boolean', 'listeners[0].proxyProtocol (line 2): expected boolean, got "yes"'],
  ['bad-bind', 'listeners[0].bind (line 2): expected host:port'],
  ['missing-env', 'upstream.password (line 5): environment variable MTG_SURELY_UNSET_VAR is not set'],
  ['yaml-syntax', '(line 3)'],
  ['duplicate-key', '(line 7): Map keys must be unique'],
  ['missing-password-file', 'tenants.acme.passwordFile (line 7): file not found'],
  ['bad-acl', 'tenants.acme.acl[0] (line 8): expected { allow|deny'],
  ['no-listeners', 'listeners (line 1): expected at least one listener'],
  ['bad-listener-type', 'listeners[0].type (line 2): expected a listener type: tcp, tls, ws or wss, got "udp"'],
  ['ws-path-on-tls', 'listeners[0].path (line 2): path is for ws and wss listeners'],
  ['bad-qos', 'tenants.acme.limits.maxQos (line 8): expected 0, 1 or 2'],
  ['bad-upstream-url', 'upstream.url (line 4): expected embedded, mqtt://host:port or mqtts://host:port'],
  ['bad-namespace-topic', 'tenancy.namespace.topic (line 7): the topic namespace must not start with $'],
  ['bad-namespace-clientid', 'tenancy.namespace.clientId (line 8): the client ID namespace must end with a separator'],
  ['admin-short-token', 'admin.operatorToken (line 7): the operator token must be at least 16 characters'],
  ['admin-tls-missing-key', 'admin.tls.key (line 8): file not found'],
  [
    'listeners-same-port',
    'listeners[1].bind (line 5): listener "local" (listeners[1].bind, line 5) binds 127.0.0.1:1883, which collides with listener "mqtt" (listeners[0].bind, line 2) binds 0.0.0.0:1883',
  ],
  [
    'listeners-ipv6-any',
    'listeners[1].bind (line 3): listener "mqtt6" (listeners[1].bind, line 3) binds [::]:1883, which collides with listener "local" (listeners[0].bind, line 2)',
  ],
  [
    'admin-on-listener-port',
    'admin.bind (line 6): the admin listener (admin.bind, line 6) binds 127.0.0.1:8080, which collides with listener "mqtt" (listeners[0].bind, line 2)',
  ],
  [
    'password-unprefixed',
    'tenants.acme.users.alice.password (line 8): user "alice" of tenant "acme": unrecognised password format; expected "plain:SECRET"',
  ],
  ['password-file-bad', 'tenants.acme.passwordFile (line 7): user "dave" in'],
]

for (const [name, expected] of BAD) {
  test(`bad config ${name}: ${expected}`, () => {
    assert.throws(
      () => loadConfigFile(`test/fixtures/bad-configs/${name}.yaml`, {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err))
        assert.ok(err.message.includes(expected), `got: ${err.message}`)
        assert.ok(!err.format().includes('    at '), 'no stack trace')
        return true
      },
    )
  })
}

test('good config: env substitution with defaults, durations, sizes, password files, plaintext warning', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-cfg-'))
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', join(dir, 'acme.passwd'), 'carol', 'pw'])
  const { config, warnings } = parseConfigText(
    `
listeners: [{ name: m, type: tcp, bind: "[::1]:1883", connectTimeout: 500ms }]
upstream: { url: "mqtt://\${BROKER_HOST}:1883", password: "\${UP_PW:-fallback}", connectTimeout: 5m }
plans: { p: { maxPacketSize: 64KiB, bandwidth: 1MiB } }
tenants:
  acme:
    plan: p
    passwordFile: acme.passwd
    users: { alice: { password: "plain:x" }, carol: { password: "plain:override" } }
`,
    { baseDir: dir, env: { BROKER_HOST: 'broker.internal' } },
  )
  assert.equal(config.upstream.url, 'mqtt://broker.internal:1883')
  assert.equal(config.upstream.password, 'fallback')
  assert.equal(config.upstream.connectTimeout, 300_000)
  assert.equal(config.listeners[0]?.connectTimeout, 500)
  assert.deepEqual(config.listeners[0]?.bind, { host: '::1', port: 1883 })
  assert.equal(config.plans.p?.maxPacketSize, 65536)
  assert.equal(config.plans.p?.bandwidth, 1048576)
  assert.equal(config.tenants.acme?.users.carol?.password, 'plain:override') // the YAML wins over the file
  assert.ok(warnings.some((w) => w.startsWith('tenants.acme.users.alice')))
  assert.ok(Object.isFrozen(config.tenants.acme))
})

test('a password file user not in the YAML is merged in', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-cfg-'))
  writeFileSync(join(dir, 'p'), '# comment\n\ncarol:$7$101$c2FsdA==$aGFzaA==\n')
  const { config } = parseConfigText(
    `
listeners: [{ name: m, type: tcp, bind: "127.0.0.1:1" }]
upstream: { url: embedded }
tenants: { acme: { passwordFile: p } }
`,
    { baseDir: dir },
  )
  assert.equal(config.tenants.acme?.users.carol?.password, '$7$101$c2FsdA==$aGFzaA==')
})

test('gateway.example.yaml loads', () => {
  const { config } = loadConfigFile('gateway.example.yaml', {})
  assert.ok(Object.keys(config.tenants).length >= 2)
})

function onlyConfigErrors(text: string): void {
  try {
    parseConfigText(text, { baseDir: tmpdir(), env: {} })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
  }
}

test('fuzz: arbitrary text never throws anything but ConfigError', () => {
  fc.assert(fc.property(fc.string({ maxLength: 300 }), onlyConfigErrors), { numRuns: 500 })
})

test('fuzz: mutated versions of the example never throw anything but ConfigError', () => {
  const lines = readFileSync('gateway.example.yaml', 'utf8').split('\n')
  const edit = fc.tuple(fc.nat(), fc.constantFrom('drop', 'dup', 'swap', 'garble'), fc.string({ maxLength: 8 }))
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 5 }), (edits) => {
      const l = [...lines]
      for (const [pos, kind, junk] of edits) {
        const i = pos % l.length
        if (kind === 'drop') l.splice(i, 1)
        else if (kind === 'dup') l.splice(i, 0, l[i] ?? '')
        else if (kind === 'swap') l.splice(i, 2, l[i + 1] ?? '', l[i] ?? '')
        else l[i] = (l[i] ?? '').slice(0, junk.length) + junk
      }
      onlyConfigErrors(l.join('\n'))
    }),
    { numRuns: 500 },
  )
})
