// TLS end to end: the tenant read from the SNI host on a TLS listener (SPEC §4), with the isolation
// matrix over it — two tenants, the same user name, client ID and topics, a will and a retained message —
// and the upstream reached over mqtts:// with a private CA. The certificates in fixtures/tls are for
// these tests only (a test CA and a server certificate for *.mqtt.test, mqtt.acme.test and 127.0.0.1).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import tls from 'node:tls'
import net from 'node:net'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal, quiet, type TestClient } from './helpers/clients.js'
import { freePort } from './helpers/net.js'

const fixture = (name: string): string => fileURLToPath(new URL(`fixtures/tls/${name}`, import.meta.url))
const CA = readFileSync(fixture('ca.pem'))

const TENANTS = `
tenants:
  acme:
    hosts: [mqtt.acme.test]
    users: { alice: { password: "plain:a" } }
  globex:
    users: { alice: { password: "plain:g" } }
`

let broker: Mosquitto
let tlsPort: number
let gw: TestGateway

before(async () => {
  tlsPort = await freePort()
  // A second, TLS listener on the same mosquitto, for the mqtts:// upstream test.
  broker = await startMosquitto(`listener ${tlsPort} 127.0.0.1\ncertfile ${fixture('server.pem')}\nkeyfile ${fixture('server.key')}`)
  gw = await startTestGateway(`listeners:
  - { name: mqtts, type: tls, bind: "127.0.0.1:0", tls: { cert: "${fixture('server.pem')}", key: "${fixture('server.key')}" } }
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
upstream: { url: ${broker.url} }
tenancy: { resolve: [sni, username], sni: "{tenant}.mqtt.test" }
${TENANTS}`)
})
after(async () => { await gw?.close(); await broker?.stop() })

let ids = 0
/** MQTT.js over TLS to the gateway, sending `servername` as SNI (none when undefined). */
function overTls (servername: string | undefined, opts: mqtt.IClientOptions): Promise<TestClient> {
  return connectClient(gw.port('mqtts'), {
    protocol: 'mqtts',
    ca: CA,
    ...(servername !== undefined ? { servername } : {}),
    ...opts,
  })
}

for (const v of [4, 5] as const) {
  test(`v${v}: the SNI host names the tenant: the same user "alice", client ID and topics in two tenants, nothing crosses`, async () => {
    const a = await overTls('acme.mqtt.test', { protocolVersion: v, clientId: 'dev-1', username: 'alice', password: 'a' })
    const g = await overTls('globex.mqtt.test', { protocolVersion: v, clientId: 'dev-1', username: 'alice', password: 'g' })
    for (const c of [a, g]) await c.client.subscribeAsync(['#', 'sensors/+'], { qos: 1 })
    await a.client.publishAsync('sensors/t1', 'A', { qos: 1 })
    assert.equal((await a.next()).payload, 'A')
    await g.client.publishAsync('sensors/t1', 'G', { qos: 1 })
    assert.equal((await g.next()).payload, 'G')
    await quiet(g, 200)
    for (const m of a.received) assert.deepEqual([m.topic, m.payload], ['sensors/t1', 'A'])
    for (const m of g.received) assert.deepEqual([m.topic, m.payload], ['sensors/t1', 'G'])
    // Both sessions are alive (the same client ID in two tenants is two client IDs on the broker).
    assert.ok(a.client.connected && g.client.connected)
    await Promise.all([a.end(), g.end()])
  })

  test(`v${v}: a tenant's extra host name resolves too; a retained message and a will stay in their tenant`, async () => {
    const watcherG = await overTls('globex.mqtt.test', { protocolVersion: v, clientId: `w${ids++}`, username: 'alice', password: 'g' })
    await watcherG.client.subscribeAsync('#', { qos: 1 })
    const watcherA = await overTls('acme.mqtt.test', { protocolVersion: v, clientId: `w${ids++}`, username: 'alice', password: 'a' })
    await watcherA.client.subscribeAsync('will/#', { qos: 1 })
    const dying = await overTls('mqtt.acme.test', {
      protocolVersion: v, clientId: `dying-${v}`, username: 'alice', password: 'a',
      will: { topic: `will/${v}`, payload: Buffer.from('gone'), qos: 1, retain: false },
    })
    await dying.client.publishAsync(`state/${v}`, 'acme-state', { qos: 1, retain: true })
    dying.client.stream.destroy() // no DISCONNECT: the broker publishes the will
    const will = await watcherA.next((m) => m.topic === `will/${v}`)
    assert.equal(will.payload, 'gone')
    const late = await overTls('acme.mqtt.test', { protocolVersion: v, clientId: `late-${ids++}`, username: 'alice', password: 'a' })
    await late.client.subscribeAsync(`state/${v}`, { qos: 1 })
    assert.equal((await late.next()).payload, 'acme-state')
    await quiet(watcherG, 200)
    assert.deepEqual(watcherG.received, [])
    await late.client.publishAsync(`state/${v}`, '', { qos: 1, retain: true }) // clear
    await Promise.all([watcherG.end(), watcherA.end(), late.end()])
  })

  test(`v${v}: acme's password under globex's SNI host, an unknown host, and a username naming another tenant are all "bad username or password"`, async () => {
    const bad = v === 5 ? 0x86 : 0x04
    assert.equal(await connectRefusal(gw.port('mqtts'), { protocol: 'mqtts', ca: CA, servername: 'globex.mqtt.test', protocolVersion: v, username: 'alice', password: 'a' }), bad)
    assert.equal(await connectRefusal(gw.port('mqtts'), { protocol: 'mqtts', ca: CA, servername: 'initech.mqtt.test', protocolVersion: v, username: 'alice', password: 'a' }), bad)
    // Two sources naming different tenants: refused, never guessed (SPEC §4).
    assert.equal(await connectRefusal(gw.port('mqtts'), { protocol: 'mqtts', ca: CA, servername: 'globex.mqtt.test', protocolVersion: v, username: 'alice@acme', password: 'a' }), bad)
  })
}

test('without SNI the username names the tenant; without either there is no tenant', async () => {
  // MQTT.js sends no SNI when it connects to an IP address and no servername is given.
  const a = await overTls(undefined, { clientId: 'no-sni', username: 'alice@acme', password: 'a' })
  await a.client.subscribeAsync('x', { qos: 1 })
  await a.client.publishAsync('x', 'via username', { qos: 1 })
  assert.equal((await a.next()).payload, 'via username')
  await a.end()
  assert.equal(await connectRefusal(gw.port('mqtts'), { protocol: 'mqtts', ca: CA, username: 'alice', password: 'a' }), 0x04)
})

test('a client that speaks plain MQTT, or sends garbage, to the TLS port is closed; the gateway keeps serving TLS clients', async () => {
  for (const bytes of [Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]), Buffer.alloc(64, 0xff)]) {
    const socket = net.connect({ host: '127.0.0.1', port: gw.port('mqtts') })
    socket.on('error', () => {})
    socket.write(bytes)
    await new Promise((resolve) => socket.once('close', resolve))
  }
  // A TLS client that trusts no such CA fails its own handshake; the gateway shrugs it off.
  const untrusting = tls.connect({ host: '127.0.0.1', port: gw.port('mqtts'), servername: 'acme.mqtt.test' })
  const err = await new Promise<Error>((resolve) => untrusting.once('error', resolve))
  assert.match(err.message, /self[- ]signed|unable to verify|certificate/i)
  const c = await overTls('acme.mqtt.test', { clientId: 'after-garbage', username: 'alice', password: 'a' })
  await c.end()
})

test('mqtts:// upstream: the broker is reached over TLS with the private CA; without that CA clients get "server unavailable"', async () => {
  const upstream = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: "mqtts://127.0.0.1:${tlsPort}", ca: "${fixture('ca.pem')}" }
${TENANTS}`)
  try {
    const a = await connectClient(upstream.port(), { clientId: 'up-tls', username: 'alice@acme', password: 'a', protocolVersion: 5 })
    // The gateway's upstream is the TLS listener: a subscriber on the broker's plain port sees the message mounted.
    const direct = await connectClient(broker.port, { clientId: 'direct-tls', protocolVersion: 5 })
    await direct.client.subscribeAsync('acme/#', { qos: 1 })
    await a.client.publishAsync('over/tls', 'x', { qos: 1 })
    assert.equal((await direct.next()).topic, 'acme/over/tls')
    await Promise.all([a.end(), direct.end()])
  } finally {
    await upstream.close()
  }
  const untrusted = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: "mqtts://127.0.0.1:${tlsPort}" }
${TENANTS}`)
  try {
    assert.equal(await connectRefusal(untrusted.port(), { clientId: 'up-untrusted', username: 'alice@acme', password: 'a', protocolVersion: 5 }), 0x88)
    assert.equal(await connectRefusal(untrusted.port(), { clientId: 'up-untrusted', username: 'alice@acme', password: 'a', protocolVersion: 4 }), 0x03)
    const line = untrusted.logs.find((l) => l.msg === 'upstream unavailable')
    assert.match(String(line?.err), /certificate/i, 'the log says why')
  } finally {
    await untrusted.close()
  }
})
