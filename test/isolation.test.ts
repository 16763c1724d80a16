// The isolation matrix (SPEC §5): two tenants with the same client ID, username and topics, through the
// gateway in front of a real mosquitto, MQTT 3.1.1 and 5 — nothing crosses, in any direction.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal, quiet, type TestClient } from './helpers/clients.js'
import { rawConnect, connectPacket } from './helpers/raw.js'

let broker: Mosquitto
let gw: TestGateway

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(yamlConfig(broker.url, `
tenants:
  acme:
    users: { alice: { password: "plain:a" } }
  globex:
    users: { alice: { password: "plain:g" } }
  ab:
    users: { alice: { password: "plain:x" } }
  ab-c:
    users: { alice: { password: "plain:y" } }
`))
})
after(async () => { await gw?.close(); await broker?.stop() })

const PASSWORDS: Record<string, string> = { acme: 'a', globex: 'g', ab: 'x', 'ab-c': 'y' }
let ids = 0

function join (tenant: string, protocolVersion: 4 | 5, opts: mqtt.IClientOptions = {}): Promise<TestClient> {
  return connectClient(gw.port(), { protocolVersion, clientId: `c${ids++}`, username: `alice@${tenant}`, password: PASSWORDS[tenant], ...opts })
}

/** A subscriber straight on the broker: sees what the gateway really sends upstream. */
async function direct (filter: string): Promise<TestClient> {
  const c = await connectClient(broker.port, { clientId: `direct-${ids++}`, protocolVersion: 5 })
  await c.client.subscribeAsync(filter, { qos: 1 })
  return c
}

for (const v of [4, 5] as const) {
  test(`v${v}: wildcard subscribers (#, +/t1, sensors/#) only ever see their own tenant`, async () => {
    const a = await join('acme', v, { clientId: 'dev-1' })
    const g = await join('globex', v, { clientId: 'dev-1' })
    for (const c of [a, g]) await c.client.subscribeAsync(['#', '+/t1', 'sensors/#'], { qos: 1 })
    await a.client.publishAsync('sensors/t1', 'A', { qos: 1 })
    assert.equal((await a.next()).topic, 'sensors/t1')
    await quiet(g)
    // Overlapping filters may deliver more copies (broker's choice); every one is acme's, unmounted.
    for (const m of a.received) assert.deepEqual([m.topic, m.payload], ['sensors/t1', 'A'])
    await g.client.publishAsync('sensors/t1', 'G', { qos: 1 })
    assert.equal((await g.next()).payload, 'G')
    await quiet(a, 200)
    for (const m of g.received) assert.deepEqual([m.topic, m.payload], ['sensors/t1', 'G'])
    await Promise.all([a.end(), g.end()])
  })

  test(`v${v}: tenants whose IDs prefix each other (ab, ab-c) stay apart`, async () => {
    const ab = await join('ab', v)
    const abc = await join('ab-c', v)
    await ab.client.subscribeAsync('#', { qos: 1 })
    await abc.client.subscribeAsync('#', { qos: 1 })
    await abc.client.publishAsync('x', 'from ab-c', { qos: 1 })
    assert.equal((await abc.next()).topic, 'x')
    await quiet(ab)
    await ab.client.publishAsync('c/x', 'from ab', { qos: 1 })
    assert.equal((await ab.next()).topic, 'c/x')
    await quiet(abc)
    await Promise.all([ab.end(), abc.end()])
  })

  test(`v${v}: shared subscriptions with the same group name do not cross tenants`, async () => {
    const a = await join('acme', v)
    const g = await join('globex', v)
    await a.client.subscribeAsync('$share/workers/jobs/#', { qos: 1 })
    await g.client.subscribeAsync('$share/workers/jobs/#', { qos: 1 })
    const pa = await join('acme', v)
    for (let i = 0; i < 5; i++) await pa.client.publishAsync(`jobs/${i}`, `a${i}`, { qos: 1 })
    for (let i = 0; i < 5; i++) assert.equal((await a.next()).payload, `a${i}`)
    await quiet(g)
    await Promise.all([a.end(), g.end(), pa.end()])
  })

  test(`v${v}: retained messages stay in their tenant and come back with the local topic`, async () => {
    const a = await join('acme', v)
    await a.client.publishAsync(`state/${v}`, 'acme-state', { qos: 1, retain: true })
    const a2 = await join('acme', v)
    const g = await join('globex', v)
    await g.client.subscribeAsync('#', { qos: 1 })
    await a2.client.subscribeAsync('state/#', { qos: 1 })
    const m = await a2.next()
    assert.equal(m.topic, `state/${v}`)
    assert.equal(m.payload, 'acme-state')
    assert.equal(m.packet.retain, true)
    await quiet(g)
    await a.client.publishAsync(`state/${v}`, '', { qos: 1, retain: true }) // clear
    await Promise.all([a.end(), a2.end(), g.end()])
  })

  test(`v${v}: a will fires in its own tenant only, and not after a clean DISCONNECT`, async () => {
    const wa = await join('acme', v)
    const wg = await join('globex', v)
    await wa.client.subscribeAsync('wills/#', { qos: 1 })
    await wg.client.subscribeAsync('#', { qos: 1 })
    const dying = await join('acme', v, { will: { topic: 'wills/dev', payload: Buffer.from('gone'), qos: 1, retain: false } })
    dying.client.stream.destroy() // abrupt: no DISCONNECT
    const m = await wa.next(() => true, 5000)
    assert.equal(m.topic, 'wills/dev')
    assert.equal(m.payload, 'gone')
    const polite = await join('acme', v, { will: { topic: 'wills/polite', payload: Buffer.from('x'), qos: 1, retain: false } })
    await polite.end()
    await quiet(wa)
    await quiet(wg, 100)
    await Promise.all([wa.end(), wg.end()])
  })

  test(`v${v}: $SYS subscriptions refused, other filters in the same SUBSCRIBE granted`, async () => {
    const raw = await rawConnect(gw.port(), v)
    raw.send(connectPacket({ protocolVersion: v, clientId: `raw-${ids++}`, username: 'alice@acme', password: Buffer.from('a') }))
    assert.equal((await raw.next()).cmd, 'connack')
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: '$SYS/#', qos: 0 }, { topic: 'ok/#', qos: 1 }, { topic: '$share/g/$SYS/x', qos: 0 }] })
    const suback = await raw.next()
    assert.equal(suback.cmd, 'suback')
    if (suback.cmd === 'suback') assert.deepEqual(suback.granted, v === 5 ? [0x87, 1, 0x87] : [0x80, 1, 0x80])
    raw.end()
  })

  test(`v${v}: the same client ID in another tenant is untouched by a takeover`, async () => {
    const a1 = await join('acme', v, { clientId: 'same' })
    const g = await join('globex', v, { clientId: 'same' })
    const aClosed = new Promise<void>((resolve) => a1.client.once('close', () => resolve()))
    let gClosed = false
    g.client.once('close', () => { gClosed = true })
    const a2 = await join('acme', v, { clientId: 'same' }) // takes over a1's session
    await aClosed
    await g.client.publishAsync('still/here', 'x', { qos: 1 })
    assert.equal(gClosed, false)
    await Promise.all([a2.end(), g.end()])
  })
}

test('v5: PUBLISH to a $ topic is refused with PUBACK 0x87 and never reaches the broker', async () => {
  const watch = await direct('#')
  const sys = await direct('$SYS/tenant-test/#')
  const c = await join('acme', 5)
  await assert.rejects(c.client.publishAsync('$SYS/tenant-test/x', 'x', { qos: 1 }), (err: { code?: number }) => err.code === 0x87)
  await quiet(sys)
  await quiet(watch, 100)
  await Promise.all([c.end(), watch.end(), sys.end()])
})

test('v5: response topic is mounted upstream and unmounted for the receiver', async () => {
  const watch = await direct('acme/#')
  const a = await join('acme', 5)
  await a.client.subscribeAsync('req/#', { qos: 1 })
  await a.client.publishAsync('req/1', 'q', { qos: 1, properties: { responseTopic: 'replies/x', correlationData: Buffer.from('42') } })
  const m = await a.next()
  assert.equal(m.packet.properties?.responseTopic, 'replies/x')
  const upstream = await watch.next((x) => x.topic === 'acme/req/1')
  assert.equal(upstream.packet.properties?.responseTopic, 'acme/replies/x')
  await Promise.all([a.end(), watch.end()])
})

test('v5: topic aliases from the client are resolved by the gateway', async () => {
  const a = await join('acme', 5, { properties: { topicAliasMaximum: 0 } })
  await a.client.subscribeAsync('alias/#', { qos: 1 })
  const p = await join('acme', 5)
  await p.client.publishAsync('alias/t', 'first', { qos: 1, properties: { topicAlias: 3 } })
  await p.client.publishAsync('', 'second', { qos: 1, properties: { topicAlias: 3 } })
  assert.deepEqual([(await a.next()).topic, (await a.next()).topic], ['alias/t', 'alias/t'])
  await Promise.all([a.end(), p.end()])
})

test('the broker sees mounted client IDs and topics; a message outside every tenant reaches nobody', async () => {
  const watch = await direct('#')
  const a = await join('acme', 4, { clientId: 'dev-9' })
  await a.client.subscribeAsync('#', { qos: 1 })
  await a.client.publishAsync('m/1', 'x', { qos: 1 })
  assert.equal((await watch.next((m) => m.topic.endsWith('m/1'))).topic, 'acme/m/1')
  await a.next()
  const intruder = await connectClient(broker.port, { clientId: 'intruder' })
  await intruder.client.publishAsync('globex/m/1', 'sneaky', { qos: 1 }) // another tenant's space, straight on the broker
  await intruder.client.publishAsync('nobody/x', 'stray', { qos: 1 })
  await quiet(a)
  await Promise.all([a.end(), watch.end(), intruder.end()])
})

test('empty client IDs: v5 gets an Assigned Client Identifier without the prefix; v3.1.1 clean=false is refused 0x02', async () => {
  const raw = await rawConnect(gw.port(), 5)
  raw.send(connectPacket({ protocolVersion: 5, clientId: '', username: 'alice@acme', password: Buffer.from('a') }))
  const connack = await raw.next()
  assert.ok(connack.cmd === 'connack')
  const assigned = connack.cmd === 'connack' ? connack.properties?.assignedClientIdentifier : undefined
  assert.ok(assigned !== undefined && assigned.length > 0 && !assigned.startsWith('acme/'), `assigned ${String(assigned)}`)
  raw.end()
  const v3 = await join('acme', 4, { clientId: '', clean: true })
  await v3.end()
  const unclean = await rawConnect(gw.port(), 4)
  // mqtt-packet will not encode this (it is the client's mistake to make), so the bytes are written out.
  const str = (x: string): Buffer => Buffer.concat([Buffer.from([0, Buffer.byteLength(x)]), Buffer.from(x)])
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc0, 0, 30]), str(''), str('alice@acme'), str('a')])
  unclean.write(Buffer.concat([Buffer.from([0x10, body.length]), body]))
  const refused = await unclean.next()
  assert.ok(refused.cmd === 'connack' && refused.returnCode === 0x02)
  unclean.end()
})

test('MQTT 3.1 (MQIsdp) clients are carried upstream and answered as 3.1', async () => {
  const c = await connectClient(gw.port(), { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'old-device', username: 'alice@acme', password: 'a' })
  await c.client.subscribeAsync('legacy', { qos: 1 })
  await c.client.publishAsync('legacy', 'hi', { qos: 1 })
  assert.equal((await c.next()).payload, 'hi')
  await c.end()
})

test('embedded broker: v3.1.1 isolation works and MQTT 5 gets CONNACK 0x84', async () => {
  const emb = await startTestGateway(yamlConfig('embedded', `
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`))
  try {
    const a = await connectClient(emb.port(), { clientId: 'd', username: 'alice@acme', password: 'a' })
    const g = await connectClient(emb.port(), { clientId: 'd', username: 'alice@globex', password: 'g' })
    await a.client.subscribeAsync('#', { qos: 1 })
    await g.client.subscribeAsync('#', { qos: 1 })
    await a.client.publishAsync('t', 'A', { qos: 1 })
    assert.equal((await a.next()).topic, 't')
    await quiet(g)
    await Promise.all([a.end(), g.end()])
    assert.equal(await connectRefusal(emb.port(), { protocolVersion: 5, username: 'alice@acme', password: 'a' }), 0x84)
    assert.ok(emb.logs.some((l) => String(l.msg).includes('use Mosquitto or EMQX')))
  } finally { await emb.close() }
})
