// TLS end to end: the tenant read from the SNI host on a TLS listener (SPEC §4), with the isolation
// matrix over it — two tenants, the same user name, client ID and topics, a will and a retained message —
// and the upstream reached over mqtts:// with a private TEST_CA. The certificates in fixtures/tls are for
// these tests only (a test TEST_CA and two server certificates for *.mqtt.test, mqtt.acme.test and 127.0.0.1,
// the second as a renewal). Also: renewed certificates taken on reload, and the admin API over HTTPS.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import tls from 'node:tls'
import net from 'node:net'
import http from 'node:http'
import { tmpdir } from 'node:os'
import mqtt from 'mqtt'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import https from 'node:https'
import { parseConfigText } from '../src/config/load.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { adminYaml, OPERATOR_TOKEN, startTestService } from './helpers/service.js'
import { connectClient, connectRefusal, quiet, type TestClient } from './helpers/clients.js'
import { freePort } from './helpers/net.js'
import { SERVER_TLS_YAML, TEST_CA, tlsFixture } from './helpers/tls-fixtures.js'

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
  broker = await startMosquitto(
    `listener ${tlsPort} 127.0.0.1\ncertfile ${tlsFixture('server.pem')}\nkeyfile ${tlsFixture('server.key')}`,
  )
  gw = await startTestGateway(`listeners:
  - { name: mqtts, type: tls, bind: "127.0.0.1:0", tls: { ${SERVER_TLS_YAML} } }
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
upstream: { url: ${broker.url} }
tenancy: { resolve: [sni, username], sni: "{tenant}.mqtt.test" }
${TENANTS}`)
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

let ids = 0
/** MQTT.js options for TLS trusting the test TEST_CA, sending `servername` as SNI (none when undefined). */
const tlsOptions = (servername: string | undefined): mqtt.IClientOptions => ({
  protocol: 'mqtts',
  ca: TEST_CA,
  ...(servername !== undefined ? { servername } : {}),
})

/** MQTT.js over TLS to the gateway. */
function overTls(servername: string | undefined, opts: mqtt.IClientOptions): Promise<TestClient> {
  return connectClient(gw.port('mqtts'), { ...tlsOptions(servername), ...opts })
}

for (const v of [4, 5] as const) {
  test(`v${v}: the SNI host names the tenant: the same user "alice", client ID and topics in two tenants, nothing crosses`, async () => {
    const a = await overTls('acme.mqtt.test', {
      protocolVersion: v,
      clientId: 'dev-1',
      username: 'alice',
      password: 'a',
    })
    const g = await overTls('globex.mqtt.test', {
      protocolVersion: v,
      clientId: 'dev-1',
      username: 'alice',
      password: 'g',
    })
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
    const watcherG = await overTls('globex.mqtt.test', {
      protocolVersion: v,
      clientId: `w${ids++}`,
      username: 'alice',
      password: 'g',
    })
    await watcherG.client.subscribeAsync('#', { qos: 1 })
    const watcherA = await overTls('acme.mqtt.test', {
      protocolVersion: v,
      clientId: `w${ids++}`,
      username: 'alice',
      password: 'a',
    })
    await watcherA.client.subscribeAsync('will/#', { qos: 1 })
    const dying = await overTls('mqtt.acme.test', {
      protocolVersion: v,
      clientId: `dying-${v}`,
      username: 'alice',
      password: 'a',
      will: { topic: `will/${v}`, payload: Buffer.from('gone'), qos: 1, retain: false },
    })
    await dying.client.publishAsync(`state/${v}`, 'acme-state', { qos: 1, retain: true })
    dying.client.stream.destroy() // no DISCONNECT: the broker publishes the will
    const will = await watcherA.next((m) => m.topic === `will/${v}`)
    assert.equal(will.payload, 'gone')
    const late = await overTls('acme.mqtt.test', {
      protocolVersion: v,
      clientId: `late-${ids++}`,
      username: 'alice',
      password: 'a',
    })
    await late.client.subscribeAsync(`state/${v}`, { qos: 1 })
    assert.equal((await late.next()).payload, 'acme-state')
    await quiet(watcherG, 200)
    assert.deepEqual(watcherG.received, [])
    await late.client.publishAsync(`state/${v}`, '', { qos: 1, retain: true }) // clear
    await Promise.all([watcherG.end(), watcherA.end(), late.end()])
  })

  test(`v${v}: acme's password under globex's SNI host, an unknown host, and a username naming another tenant are all "bad username or password"`, async () => {
    const bad = v === 5 ? 0x86 : 0x04
    assert.equal(
      await connectRefusal(gw.port('mqtts'), {
        ...tlsOptions('globex.mqtt.test'),
        protocolVersion: v,
        username: 'alice',
        password: 'a',
      }),
      bad,
    )
    assert.equal(
      await connectRefusal(gw.port('mqtts'), {
        ...tlsOptions('initech.mqtt.test'),
        protocolVersion: v,
        username: 'alice',
        password: 'a',
      }),
      bad,
    )
    // Two sources naming different tenants: refused, never guessed (SPEC §4).
    assert.equal(
      await connectRefusal(gw.port('mqtts'), {
        ...tlsOptions('globex.mqtt.test'),
        protocolVersion: v,
        username: 'alice@acme',
        password: 'a',
      }),
      bad,
    )
  })
}

test('without SNI the username names the tenant; without either there is no tenant', async () => {
  // MQTT.js sends no SNI when it connects to an IP address and no servername is given.
  const a = await overTls(undefined, { clientId: 'no-sni', username: 'alice@acme', password: 'a' })
  await a.client.subscribeAsync('x', { qos: 1 })
  await a.client.publishAsync('x', 'via username', { qos: 1 })
  assert.equal((await a.next()).payload, 'via username')
  await a.end()
  assert.equal(
    await connectRefusal(gw.port('mqtts'), { ...tlsOptions(undefined), username: 'alice', password: 'a' }),
    0x04,
  )
})

test('a client that speaks plain MQTT, or sends garbage, to the TLS port is closed; the gateway keeps serving TLS clients', async () => {
  for (const bytes of [
    Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]),
    Buffer.alloc(64, 0xff),
  ]) {
    const socket = net.connect({ host: '127.0.0.1', port: gw.port('mqtts') })
    socket.on('error', () => {})
    socket.write(bytes)
    await new Promise((resolve) => socket.once('close', resolve))
  }
  // A TLS client that trusts no such TEST_CA fails its own handshake; the gateway shrugs it off.
  const untrusting = tls.connect({ host: '127.0.0.1', port: gw.port('mqtts'), servername: 'acme.mqtt.test' })
  const err = await new Promise<Error>((resolve) => untrusting.once('error', resolve))
  assert.match(err.message, /self[- ]signed|unable to verify|certificate/i)
  const c = await overTls('acme.mqtt.test', { clientId: 'after-garbage', username: 'alice', password: 'a' })
  await c.end()
})

test('mqtts:// upstream: the broker is reached over TLS with the private TEST_CA; without that TEST_CA clients get "server unavailable"', async () => {
  const upstream = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: "mqtts://127.0.0.1:${tlsPort}", ca: "${tlsFixture('ca.pem')}" }
${TENANTS}`)
  try {
    const a = await connectClient(upstream.port(), {
      clientId: 'up-tls',
      username: 'alice@acme',
      password: 'a',
      protocolVersion: 5,
    })
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
    assert.equal(
      await connectRefusal(untrusted.port(), {
        clientId: 'up-untrusted',
        username: 'alice@acme',
        password: 'a',
        protocolVersion: 5,
      }),
      0x88,
    )
    assert.equal(
      await connectRefusal(untrusted.port(), {
        clientId: 'up-untrusted',
        username: 'alice@acme',
        password: 'a',
        protocolVersion: 4,
      }),
      0x03,
    )
    const line = untrusted.logs.find((l) => l.msg === 'upstream unavailable')
    assert.match(String(line?.err), /certificate/i, 'the log says why')
  } finally {
    await untrusted.close()
  }
})

/** The subject CN of the certificate a TLS server presents on a new handshake. */
async function presentedCn(port: number): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'acme.mqtt.test', ca: TEST_CA })
  try {
    await new Promise((resolve, reject) => {
      socket.once('secureConnect', resolve)
      socket.once('error', reject)
    })
    return String(socket.getPeerCertificate().subject.CN)
  } finally {
    socket.destroy()
  }
}

const listenerYaml = (cert: string, key: string, extraTls = ''): string => `listeners:
  - { name: mqtts, type: tls, bind: "127.0.0.1:0", tls: { cert: "${tlsFixture(cert)}", key: "${tlsFixture(key)}"${extraTls} } }
  - { name: wss, type: wss, bind: "127.0.0.1:0", tls: { cert: "${tlsFixture(cert)}", key: "${tlsFixture(key)}" } }
upstream: { url: ${broker.url} }
tenancy: { resolve: [sni, username], sni: "{tenant}.mqtt.test" }
${TENANTS}`

test('reload (SIGHUP) hands TLS and wss listeners their renewed certificate for new handshakes; connected devices stay; a bad key keeps the old one', async () => {
  const renewing = await startTestGateway(listenerYaml('server.pem', 'server.key'))
  try {
    const port = renewing.port()
    assert.equal(await presentedCn(port), 'mqtt.test')
    const device = await connectClient(port, { ...tlsOptions('acme.mqtt.test'), username: 'alice', password: 'a' })
    await renewing.reload(parseConfigText(listenerYaml('renewed.pem', 'renewed.key'), { baseDir: tmpdir() }).config)
    assert.equal(await presentedCn(port), 'mqtt.test renewed')
    assert.equal(await presentedCn(renewing.port('wss')), 'mqtt.test renewed') // the WebSocket listener over TLS too
    assert.ok(device.client.connected)
    await device.client.publishAsync('still', 'here', { qos: 1 })
    // A key that does not belong to the certificate: refused with a log line, the listener keeps serving.
    await renewing.reload(parseConfigText(listenerYaml('server.pem', 'renewed.key'), { baseDir: tmpdir() }).config)
    assert.ok(
      renewing.logs.some(
        (l) =>
          l.msg === 'the new certificate or key cannot be used; the listener keeps the old ones' &&
          l.listener === 'mqtts',
      ),
    )
    assert.equal(await presentedCn(port), 'mqtt.test renewed')
    // Renewed files are taken live; asking for client certificates needs a restart, and the log says so.
    const restartNeeded = (l: Record<string, unknown>): boolean =>
      l.msg === 'listener changes other than renewed certificate files take effect at the next start'
    assert.equal(renewing.logs.some(restartNeeded), false)
    await renewing.reload(
      parseConfigText(
        listenerYaml('renewed.pem', 'renewed.key', `, clientCa: "${tlsFixture('clients/devices-ca.pem')}"`),
        { baseDir: tmpdir() },
      ).config,
    )
    assert.equal(renewing.logs.some(restartNeeded), true)
    await device.end()
  } finally {
    await renewing.close()
  }
})

/** GET over HTTPS, trusting the test TEST_CA; the status, the body and the certificate's CN. */
function httpsGet(url: string, token: string): Promise<{ status: number; body: string; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: TEST_CA, headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const cn = String((res.socket as tls.TLSSocket).getPeerCertificate().subject.CN)
      let body = ''
      res.on('data', (d: Buffer) => {
        body += d.toString()
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cn }))
    })
    req.on('error', reject)
  })
}

test('admin.tls: the admin API and UI are served over HTTPS only, and a reload takes a renewed certificate', async () => {
  const tlsLine = (cert: string, key: string): string =>
    `  tls: { cert: "${tlsFixture(cert)}", key: "${tlsFixture(key)}" }`
  const yaml = (cert: string, key: string): string =>
    adminYaml(broker.url, TENANTS).replace('admin:\n', `admin:\n${tlsLine(cert, key)}\n`)
  const svc = await startTestService(yaml('server.pem', 'server.key'))
  try {
    assert.match(svc.adminUrl, /^https:/)
    const tenants = await httpsGet(`${svc.adminUrl}/api/v1/tenants`, OPERATOR_TOKEN)
    assert.equal(tenants.status, 200)
    assert.deepEqual((JSON.parse(tenants.body) as Array<{ id: string }>).map((t) => t.id).sort(), ['acme', 'globex'])
    assert.equal(tenants.cn, 'mqtt.test')
    // Plain HTTP to the HTTPS port gets no answer from the API.
    await assert.rejects(
      new Promise((resolve, reject) => {
        http.get(svc.adminUrl.replace('https:', 'http:') + '/api/v1/health', resolve).on('error', reject)
      }),
    )
    await svc.reload(parseConfigText(yaml('renewed.pem', 'renewed.key'), { baseDir: svc.dir }).config)
    const after = await httpsGet(`${svc.adminUrl}/api/v1/health`, OPERATOR_TOKEN)
    assert.deepEqual([after.status, after.cn], [200, 'mqtt.test renewed'])
  } finally {
    await svc.close()
  }
})
