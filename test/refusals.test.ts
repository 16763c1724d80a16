// Issue #17 item 1, the proper refusals: a field that outgrows its 65,535-byte MQTT string once the
// tenant's prefix is added gets the spec's reason code for that field (SPEC §8), over raw sockets
// against a real mosquitto, v3 and v5 — and nothing of it reaches the broker or another tenant.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import type mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, type TestClient } from './helpers/clients.js'
import { rawConnect, connectPacket, type RawClient } from './helpers/raw.js'

let broker: Mosquitto
let gw: TestGateway
let victim: TestClient
let watch: { seen: string[]; sync: () => Promise<void>; end: () => void }

/** 65,535 bytes: a valid MQTT string, one that cannot take `evil/` in front of it. */
const LONG = 'x'.repeat(65_535)

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url}, connectTimeout: 5s }
tenants:
  evil: { users: { alice: { password: "plain:e" } } }
  victim: { users: { alice: { password: "plain:v" } } }
`)
  // The other tenant: same user name, same client ID, every topic.
  victim = await connectClient(gw.port(), {
    username: 'alice@victim',
    password: 'v',
    clientId: 'dev',
    protocolVersion: 5,
  })
  await victim.client.subscribeAsync('#', { qos: 1 })
  watch = await brokerWatch()
})

after(async () => {
  // Nothing any test sent crossed: the broker saw none of it, the other tenant received none of it.
  await watch?.sync()
  watch?.end()
  await victim?.end()
  await gw?.close()
  await broker?.stop()
})

/** A client straight on the broker, subscribed to every tenant's topics: it sees whatever the gateway let through. */
async function brokerWatch(): Promise<typeof watch> {
  const c = await mqtt.connectAsync({ host: '127.0.0.1', port: broker.port, reconnectPeriod: 0 })
  const seen: string[] = []
  let synced: (() => void) | undefined
  c.on('message', (topic) => {
    if (topic === 'watch/sync') synced?.()
    else seen.push(topic)
  })
  await c.subscribeAsync(['#', 'watch/sync'])
  return {
    seen,
    sync: () =>
      new Promise<void>((resolve) => {
        synced = resolve
        c.publish('watch/sync', '')
      }),
    end: () => {
      c.end(true)
    },
  }
}

/** After a refusal: the broker saw nothing and the other tenant got nothing; it is still served. */
async function nothingCrossed(what: string): Promise<void> {
  await watch.sync()
  // the canaries are the victim's own, published below
  assert.deepEqual(
    watch.seen.filter((t) => t !== 'victim/canary'),
    [],
    `${what}: nothing reached the broker`,
  )
  await victim.client.publishAsync('canary', what, { qos: 1 })
  const m = await victim.next((r) => r.topic === 'canary' && r.payload === what)
  assert.equal(m.topic, 'canary')
  assert.deepEqual(
    victim.received.filter((r) => r.topic !== 'canary'),
    [],
    `${what}: the other tenant received nothing else`,
  )
}

async function evil(v: 4 | 5, clientId = 'dev'): Promise<RawClient> {
  const raw = await rawConnect(gw.port(), v)
  raw.send(connectPacket({ protocolVersion: v, username: 'alice@evil', password: Buffer.from('e'), clientId }))
  const connack = (await raw.next()) as mqttPacket.IConnackPacket
  assert.equal(connack.reasonCode ?? connack.returnCode, 0)
  return raw
}

/** The CONNACK code a CONNECT with `fields` gets, or 'closed' when the connection is closed without one. */
async function connectAnswer(v: 4 | 5, fields: Partial<mqttPacket.IConnectPacket>): Promise<number | 'closed'> {
  const raw = await rawConnect(gw.port(), v)
  raw.send(
    connectPacket({
      protocolVersion: v,
      username: 'alice@evil',
      password: Buffer.from('e'),
      clientId: 'dev',
      ...fields,
    }),
  )
  const answer = await raw.next().catch(() => undefined)
  await raw.closed()
  if (answer === undefined) return 'closed'
  assert.equal(answer.cmd, 'connack')
  return (answer as mqttPacket.IConnackPacket).reasonCode ?? (answer as mqttPacket.IConnackPacket).returnCode ?? -1
}

const WILL = { payload: Buffer.from('w'), qos: 0, retain: true } as const

test('CONNECT: a client ID too long once mounted gets 0x85 (v5) / 0x02 (v3)', async () => {
  assert.equal(await connectAnswer(5, { clientId: LONG }), 0x85)
  assert.equal(await connectAnswer(4, { clientId: LONG }), 0x02)
  await nothingCrossed('client ID')
})

test('CONNECT: a will topic too long once mounted gets 0x90 (v5) / a close (v3)', async () => {
  assert.equal(await connectAnswer(5, { will: { ...WILL, topic: LONG } }), 0x90)
  assert.equal(await connectAnswer(4, { will: { ...WILL, topic: LONG } }), 'closed')
  await nothingCrossed('will topic')
})

test('CONNECT: a will Response Topic too long once mounted gets 0x90 (v5)', async () => {
  assert.equal(await connectAnswer(5, { will: { ...WILL, topic: 'w', properties: { responseTopic: LONG } } }), 0x90)
  await nothingCrossed('will Response Topic')
})

test('PUBLISH v5: a topic or Response Topic too long once mounted gets PUBACK/PUBREC 0x90 and the session goes on', async () => {
  const raw = await evil(5)
  const publish = { cmd: 'publish', payload: Buffer.from('p'), retain: false, dup: false } as const
  raw.send({ ...publish, topic: LONG, qos: 1, messageId: 1 })
  assert.deepEqual(pick(await raw.next()), { cmd: 'puback', messageId: 1, reasonCode: 0x90 })
  raw.send({ ...publish, topic: 't', qos: 1, messageId: 2, properties: { responseTopic: LONG } })
  assert.deepEqual(pick(await raw.next()), { cmd: 'puback', messageId: 2, reasonCode: 0x90 })
  raw.send({ ...publish, topic: 't', qos: 2, messageId: 3, properties: { responseTopic: LONG } })
  assert.deepEqual(pick(await raw.next()), { cmd: 'pubrec', messageId: 3, reasonCode: 0x90 })
  raw.send({ cmd: 'pingreq' })
  assert.equal((await raw.next()).cmd, 'pingresp')
  raw.end()
  await nothingCrossed('PUBLISH v5')
})

test('PUBLISH v3: a topic too long once mounted closes the connection (v3 has no code for it)', async () => {
  for (const qos of [0, 1] as const) {
    const raw = await evil(4)
    raw.send({ cmd: 'publish', topic: LONG, payload: Buffer.from('p'), qos, messageId: 1, retain: false, dup: false })
    await assert.rejects(raw.next(), /connection closed/, `QoS ${qos}: no PUBACK`)
  }
  await nothingCrossed('PUBLISH v3')
})

test('SUBSCRIBE: a filter too long once mounted gets 0x8F (v5) / 0x80 (v3), the others are granted', async () => {
  for (const v of [5, 4] as const) {
    const raw = await evil(v)
    raw.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: LONG, qos: 1 },
        { topic: 'ok/#', qos: 1 },
      ],
    })
    const suback = (await raw.next()) as mqttPacket.ISubackPacket
    assert.deepEqual(suback.granted, [v === 5 ? 0x8f : 0x80, 1], `v${v}`)
    raw.end()
  }
  await nothingCrossed('SUBSCRIBE')
})

test('UNSUBSCRIBE: a filter too long once mounted gets 0x8F (v5) / a close (v3)', async () => {
  const v5 = await evil(5)
  v5.send({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: [LONG, 'ok/#'] })
  const unsuback = (await v5.next()) as mqttPacket.IUnsubackPacket
  assert.deepEqual([unsuback.cmd, unsuback.granted], ['unsuback', [0x8f, 0x11]])
  v5.send({ cmd: 'pingreq' })
  assert.equal((await v5.next()).cmd, 'pingresp')
  v5.end()
  const v3 = await evil(4)
  v3.send({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: ['ok/#', LONG] })
  await assert.rejects(v3.next(), /connection closed/, 'no UNSUBACK')
  await nothingCrossed('UNSUBSCRIBE')
})

test('no refusal above was logged as an error or as a packet the codec refused', () => {
  const walls = gw.logs.filter(
    (l) =>
      (l.level as number) >= 50 ||
      l.msg === 'packet could not be encoded' ||
      l.msg === 'mounted CONNECT cannot be encoded',
  )
  assert.deepEqual(walls, [])
})

function pick(p: mqttPacket.Packet): Record<string, unknown> {
  const { cmd, messageId, reasonCode } = p as mqttPacket.IPubackPacket
  return { cmd, messageId, reasonCode }
}
