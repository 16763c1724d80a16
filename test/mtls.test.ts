// Mutual TLS (a listener's tls.clientCa): the client certificate's CN is the username ("sensor-1@acme"
// names tenant and user), and the certificate is the credential — the CONNECT's username and password are
// not used. Two tenants' devices with the same CN user, client ID and topics stay apart; a certificate
// from another TEST_CA, or none, fails the handshake; an unknown or missing CN is refused like a bad login;
// a certificate-only user cannot log in with a password elsewhere. Certificates: fixtures/tls/clients.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import type mqtt from 'mqtt'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal, quiet } from './helpers/clients.js'
import { OPERATOR_TOKEN, startTestService } from './helpers/service.js'
import { SERVER_TLS_YAML, TEST_CA, tlsFixture } from './helpers/tls-fixtures.js'

let broker: Mosquitto
let gw: TestGateway

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(`listeners:
  - { name: mtls, type: tls, bind: "127.0.0.1:0", tls: { ${SERVER_TLS_YAML}, clientCa: "${tlsFixture('clients/devices-ca.pem')}" } }
  - { name: wss-mtls, type: wss, bind: "127.0.0.1:0", tls: { ${SERVER_TLS_YAML}, clientCa: "${tlsFixture('clients/devices-ca.pem')}" } }
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
upstream: { url: ${broker.url} }
tenants:
  acme: { users: { sensor-1: {}, alice: { password: "plain:a" } } }
  globex: { users: { sensor-1: {} } }
`)
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

/** MQTT.js over TLS to the mTLS listener, presenting the client certificate `name` from fixtures/tls/clients. */
function withCertificate(name: string | undefined, opts: mqtt.IClientOptions = {}): mqtt.IClientOptions {
  return {
    protocol: 'mqtts',
    ca: TEST_CA,
    ...(name !== undefined
      ? { cert: readFileSync(tlsFixture(`clients/${name}.pem`)), key: readFileSync(tlsFixture(`clients/${name}.key`)) }
      : {}),
    ...opts,
  }
}

for (const v of [4, 5] as const) {
  test(`v${v}: the certificate's CN names tenant and user; two tenants' "sensor-1" with the same client ID and topics stay apart`, async () => {
    // The CONNECT's own username and password are not used: the certificate speaks for the device.
    const a = await connectClient(
      gw.port('mtls'),
      withCertificate('sensor-acme', {
        protocolVersion: v,
        clientId: 'dev-1',
        username: 'whoever@globex',
        password: 'nothing',
      }),
    )
    const g = await connectClient(
      gw.port('mtls'),
      withCertificate('sensor-globex', { protocolVersion: v, clientId: 'dev-1' }),
    )
    for (const c of [a, g]) await c.client.subscribeAsync(['#', 'sensors/+'], { qos: 1 })
    await a.client.publishAsync('sensors/t1', 'A', { qos: 1 })
    await g.client.publishAsync('sensors/t1', 'G', { qos: 1 })
    assert.equal((await a.next()).payload, 'A')
    assert.equal((await g.next()).payload, 'G')
    await quiet(g, 200)
    for (const m of a.received) assert.equal(m.payload, 'A')
    for (const m of g.received) assert.equal(m.payload, 'G')
    const line = [...gw.logs]
      .reverse()
      .find((l) => l.msg === 'connected' && l.tenant === 'acme' && l.clientId === 'dev-1')
    assert.equal(line?.user, 'sensor-1')
    await Promise.all([a.end(), g.end()])
  })
}

test('over wss too: the CN names the tenant', async () => {
  const c = await connectClient(gw.port('wss-mtls'), {
    protocol: 'wss',
    path: '/mqtt',
    clientId: 'browserless',
    wsOptions: {
      ca: TEST_CA,
      cert: readFileSync(tlsFixture('clients/sensor-globex.pem')),
      key: readFileSync(tlsFixture('clients/sensor-globex.key')),
    },
  })
  assert.equal(gw.clients('globex').find((x) => x.clientId === 'browserless')?.username, 'sensor-1')
  await c.end()
})

/** How a raw TLS handshake with `name`'s certificate (none: no certificate) ends: 'ok' or the error. */
async function handshake(name: string | undefined): Promise<string> {
  const socket = tls.connect({
    port: gw.port('mtls'),
    host: '127.0.0.1',
    ca: TEST_CA,
    ...(name !== undefined
      ? { cert: readFileSync(tlsFixture(`clients/${name}.pem`)), key: readFileSync(tlsFixture(`clients/${name}.key`)) }
      : {}),
  })
  // TLS 1.3: the server's verdict on the client certificate arrives after the client's handshake is done.
  return await new Promise((resolve) => {
    socket.once('secureConnect', () => {
      socket.once('data', () => {})
      setTimeout(() => {
        resolve(socket.destroyed ? 'closed' : 'ok')
        socket.destroy()
      }, 300)
    })
    socket.once('error', (err) => resolve(err.message))
  })
}

test('no certificate, or one from another TEST_CA, fails the TLS handshake before any MQTT', async () => {
  assert.match(await handshake(undefined), /certificate required/)
  assert.match(await handshake('rogue'), /unknown ca|closed/) // the alert, or the server's close after it
  assert.equal(await handshake('sensor-acme'), 'ok')
})

test('a trusted certificate for an unknown user, or without a CN, is refused like a bad login (0x86 / 0x04)', async () => {
  assert.equal(await connectRefusal(gw.port('mtls'), withCertificate('mallory', { protocolVersion: 5 })), 0x86)
  assert.equal(await connectRefusal(gw.port('mtls'), withCertificate('no-cn')), 0x04)
  // mallory@acme's username and alice's real password in the CONNECT change nothing.
  assert.equal(
    await connectRefusal(gw.port('mtls'), withCertificate('mallory', { username: 'alice@acme', password: 'a' })),
    0x04,
  )
})

test('a certificate-only user (no password) cannot log in with a password on a plain listener', async () => {
  for (const password of ['', 'x']) {
    assert.equal(
      await connectRefusal(gw.port('mqtt'), { username: 'sensor-1@acme', password, protocolVersion: 5 }),
      0x86,
    )
  }
  const alice = await connectClient(gw.port('mqtt'), { username: 'alice@acme', password: 'a' })
  await alice.end()
})

test('the operator creates a certificate-only user through the admin API; its device then logs in with its certificate', async () => {
  const svc = await startTestService(`listeners:
  - { name: mtls, type: tls, bind: "127.0.0.1:0", tls: { ${SERVER_TLS_YAML}, clientCa: "${tlsFixture('clients/devices-ca.pem')}" } }
upstream: { url: ${broker.url} }
admin: { bind: "127.0.0.1:0", operatorToken: ${OPERATOR_TOKEN}, store: state.db }
tenants:
  acme: { users: {} }
`)
  try {
    assert.equal(await connectRefusal(svc.mqttPort, withCertificate('mallory')), 0x04)
    const created = await svc.api('/api/v1/tenants/acme/users/mallory', { method: 'PUT', body: {} })
    assert.equal(created.status, 201)
    const device = await connectClient(svc.mqttPort, withCertificate('mallory', { clientId: 'm-1' }))
    assert.equal(svc.gateway.clients('acme')[0]?.username, 'mallory')
    await device.end()
  } finally {
    await svc.close()
  }
})
