// SPEC §6 and the reload rules of §3, through the gateway with real clients: per-user and per-tenant
// ACLs with their v3/v5 answers, then a live reload that changes ACLs, removes and disables tenants.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal, quiet } from './helpers/clients.js'
import { rawConnect, connectPacket } from './helpers/raw.js'
import { parseConfigText } from '../src/config/load.js'

let broker: Mosquitto
let gw: TestGateway

const TENANTS = `
tenants:
  acme:
    users:
      alice: { password: "plain:a", acl: [ { allow: all, topic: "admin/#" } ] }
      bob: { password: "plain:b" }
    acl:
      - { deny: all, topic: "admin/#" }
      - { allow: publish, topic: "devices/%u/#" }
      - { allow: subscribe, topic: "devices/#" }
  globex:
    users: { bob: { password: "plain:g" } }
  doomed:
    users: { bob: { password: "plain:d" } }
`

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(yamlConfig(broker.url, TENANTS))
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

test('v5: ACL per user and per tenant: PUBACK/SUBACK 0x87 for denials, %u applied', async () => {
  const watcher = await connectClient(gw.port(), {
    protocolVersion: 5,
    username: 'alice@acme',
    password: 'a',
    clientId: 'watch',
  })
  await watcher.client.subscribeAsync('devices/#', { qos: 1 })
  const bob = await connectClient(gw.port(), {
    protocolVersion: 5,
    username: 'bob@acme',
    password: 'b',
    clientId: 'bob',
  })
  await bob.client.publishAsync('devices/bob/t', 'ok', { qos: 1 })
  assert.equal((await watcher.next()).topic, 'devices/bob/t')
  await assert.rejects(
    bob.client.publishAsync('devices/alice/t', 'spoof', { qos: 1 }),
    (e: { code?: number }) => e.code === 0x87,
  )
  await assert.rejects(bob.client.publishAsync('admin/x', 'x', { qos: 1 }), (e: { code?: number }) => e.code === 0x87)
  await quiet(watcher)
  // alice's own rule comes before the tenant's deny
  await watcher.client.publishAsync('admin/x', 'by alice', { qos: 1 })
  const raw = await rawConnect(gw.port(), 5)
  raw.send(connectPacket({ protocolVersion: 5, username: 'bob@acme', password: Buffer.from('b'), clientId: 'bob-raw' }))
  assert.equal((await raw.next()).cmd, 'connack')
  raw.send({
    cmd: 'subscribe',
    messageId: 1,
    subscriptions: [
      { topic: '#', qos: 0 },
      { topic: 'devices/+/t', qos: 0 },
      { topic: 'admin/#', qos: 0 },
    ],
  })
  const suback = await raw.next()
  assert.ok(suback.cmd === 'suback')
  if (suback.cmd === 'suback') assert.deepEqual(suback.granted, [0x87, 0, 0x87])
  raw.end()
  assert.ok((gw.counters('acme')?.aclDenials ?? 0) >= 2)
  await Promise.all([watcher.end(), bob.end()])
})

test('v3.1.1: a denied PUBLISH is acknowledged and dropped; a denied SUBSCRIBE gets 0x80', async () => {
  const watcher = await connectClient(gw.port(), { username: 'alice@acme', password: 'a', clientId: 'watch3' })
  await watcher.client.subscribeAsync('devices/#', { qos: 1 })
  const bob = await connectClient(gw.port(), { username: 'bob@acme', password: 'b', clientId: 'bob3' })
  await bob.client.publishAsync('devices/alice/t', 'spoof', { qos: 1 }) // acknowledged
  await bob.client.publishAsync('devices/alice/t', 'spoof', { qos: 2 }) // the QoS 2 flow completes too
  await quiet(watcher)
  const raw = await rawConnect(gw.port(), 4)
  raw.send(connectPacket({ username: 'bob@acme', password: Buffer.from('b'), clientId: 'bob3-raw' }))
  assert.equal((await raw.next()).cmd, 'connack')
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] })
  const suback = await raw.next()
  assert.ok(suback.cmd === 'suback' && suback.granted[0] === 0x80)
  raw.end()
  await Promise.all([watcher.end(), bob.end()])
})

test('reload under live connections: new ACLs apply to existing clients, removed and disabled tenants are disconnected, others stay', async () => {
  const acmeBob = await connectClient(gw.port(), {
    protocolVersion: 5,
    username: 'bob@acme',
    password: 'b',
    clientId: 'live-bob',
  })
  const globex = await connectClient(gw.port(), {
    protocolVersion: 5,
    username: 'bob@globex',
    password: 'g',
    clientId: 'live-g',
  })
  const doomed = await connectClient(gw.port(), {
    protocolVersion: 5,
    username: 'bob@doomed',
    password: 'd',
    clientId: 'live-d',
  })
  const doomed3 = await connectClient(gw.port(), {
    protocolVersion: 4,
    username: 'bob@doomed',
    password: 'd',
    clientId: 'live-d3',
  })
  await acmeBob.client.publishAsync('devices/bob/x', 'before', { qos: 1 })
  const doomedReason = new Promise<number | undefined>((resolve) =>
    doomed.client.once('disconnect', (p) => resolve(p.reasonCode)),
  )
  const doomed3Closed = new Promise<void>((resolve) => doomed3.client.once('close', () => resolve()))
  let globexClosed = false
  globex.client.once('close', () => {
    globexClosed = true
  })

  const next =
    TENANTS.replace('- { allow: publish, topic: "devices/%u/#" }', '- { allow: publish, topic: "devices/%u/ok" }')
      .replace('  doomed:\n    users: { bob: { password: "plain:d" } }\n', '')
      .replace('  globex:\n', '  globex:\n    limits: { maxConnections: 5 }\n') +
    '  sleepy:\n    users: { bob: { password: "plain:s" } }\n'
  const { config } = parseConfigText(yamlConfig(broker.url, next), { baseDir: tmpdir() })
  await gw.reload(config)

  assert.equal(await doomedReason, 0x87)
  await doomed3Closed
  await assert.rejects(
    acmeBob.client.publishAsync('devices/bob/x', 'after', { qos: 1 }),
    (e: { code?: number }) => e.code === 0x87,
  )
  await acmeBob.client.publishAsync('devices/bob/ok', 'allowed', { qos: 1 })
  await globex.client.publishAsync('still', 'here', { qos: 1 })
  assert.equal(globexClosed, false)
  const sleepy = await connectClient(gw.port(), { username: 'bob@sleepy', password: 's' })
  await sleepy.end()
  assert.equal(await connectRefusal(gw.port(), { username: 'bob@doomed', password: 'd' }), 0x04)

  // Disabling a tenant disconnects its clients too.
  const disabled = next.replace('  globex:\n    limits: { maxConnections: 5 }\n', '  globex:\n    disabled: true\n')
  const gone = new Promise<number | undefined>((resolve) =>
    globex.client.once('disconnect', (p) => resolve(p.reasonCode)),
  )
  await gw.reload(parseConfigText(yamlConfig(broker.url, disabled), { baseDir: tmpdir() }).config)
  assert.equal(await gone, 0x87)
  assert.equal(await connectRefusal(gw.port(), { protocolVersion: 5, username: 'bob@globex', password: 'g' }), 0x87)
  assert.equal(acmeBob.client.connected, true)
  await Promise.all([acmeBob.end(), globex.end(), doomed.end(), doomed3.end()])
  await gw.reload(parseConfigText(yamlConfig(broker.url, TENANTS), { baseDir: tmpdir() }).config)
})
