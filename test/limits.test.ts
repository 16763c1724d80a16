// SPEC §7 from the outside: every limit, hit by a real client through the gateway in front of a real
// mosquitto, answers the spec's code in MQTT 5 and 3.1.1; other tenants are untouched.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal, quiet } from './helpers/clients.js'
import { rawConnect, connectPacket, type RawClient } from './helpers/raw.js'

let broker: Mosquitto
let gw: TestGateway

const TENANTS = `
plans:
  tight: { maxConnections: 2, maxSubscriptionsPerClient: 2, maxPacketSize: 1KiB, maxQos: 1, retain: false, maxTopicLevels: 3, maxTopicLength: 40, maxSessionExpiry: 10, maxInflight: 5 }
tenants:
  tight:
    plan: tight
    users: { u: { password: "plain:p" } }
  rated:
    limits: { publishRate: 50 }
    users: { u: { password: "plain:p" } }
  strict:
    limits: { clientPublishRate: 5, rateAction: disconnect }
    users: { u: { password: "plain:p" } }
  crowd:
    limits: { connectRate: 2 }
    users: { u: { password: "plain:p" } }
  shared:
    limits: { maxSubscriptions: 3 }
    users: { u: { password: "plain:p" } }
  other:
    users: { u: { password: "plain:p" } }
`

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(yamlConfig(broker.url, TENANTS))
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

const as = (tenant: string, protocolVersion: 4 | 5 = 5, extra: object = {}) => ({
  protocolVersion,
  username: `u@${tenant}`,
  password: 'p',
  ...extra,
})

for (const v of [4, 5] as const) {
  test(`v${v}: maxConnections refuses the extra connection (${v === 5 ? '0x97' : '0x03'}) and frees slots on close`, async () => {
    const a = await connectClient(gw.port(), as('tight', v))
    const b = await connectClient(gw.port(), as('tight', v))
    assert.equal(await connectRefusal(gw.port(), as('tight', v)), v === 5 ? 0x97 : 0x03)
    const other = await connectClient(gw.port(), as('other', v)) // another tenant is not counted
    await a.end()
    await waitFor(() => gw.connections('tight') === 1)
    const c = await connectClient(gw.port(), as('tight', v))
    await b.end()
    await c.end()
    await other.end()
  })

  test(`v${v}: maxSubscriptionsPerClient refuses the excess filters only`, async () => {
    const raw = await rawSession('tight', v)
    try {
      assert.deepEqual(await rawSubscribe(raw, ['a/1', 'a/2', 'a/3'], 1), [0, 0, v === 5 ? 0x97 : 0x80])
      assert.deepEqual(await rawSubscribe(raw, ['a/1'], 2), [0]) // a resubscription takes no new slot
    } finally {
      raw.end()
    }
  })

  test(`v${v}: maxTopicLevels/maxTopicLength refuse SUBSCRIBE (${v === 5 ? '0x8F' : '0x80'})`, async () => {
    const raw = await rawSession('tight', v)
    try {
      assert.deepEqual(
        await rawSubscribe(raw, ['a/b/c/d', 'x'.repeat(41), 'ok'], 1),
        v === 5 ? [0x8f, 0x8f, 0] : [0x80, 0x80, 0],
      )
    } finally {
      raw.end()
    }
  })
}

test('v5: CONNACK advertises the plan: Maximum QoS, Retain Available, Maximum Packet Size, Receive Maximum, Session Expiry', async () => {
  const raw = await rawConnect(gw.port(), 5)
  raw.send(
    connectPacket({
      protocolVersion: 5,
      username: 'u@tight',
      password: Buffer.from('p'),
      properties: { sessionExpiryInterval: 100 },
    }),
  )
  const connack = await raw.next()
  assert.equal(connack.cmd, 'connack')
  if (connack.cmd !== 'connack') return
  assert.equal(connack.reasonCode, 0)
  assert.equal(connack.properties?.maximumQoS, 1)
  assert.equal(connack.properties?.retainAvailable, false)
  assert.equal(connack.properties?.maximumPacketSize, 1024)
  assert.equal(connack.properties?.receiveMaximum, 5)
  assert.equal(connack.properties?.sessionExpiryInterval, 10)
  assert.ok((connack.properties?.topicAliasMaximum ?? 0) > 0)
  raw.end()
})

test('v5: SUBACK grants at most maxQos', async () => {
  const c = await connectClient(gw.port(), as('tight'))
  try {
    const granted = await c.client.subscribeAsync('q/2', { qos: 2 })
    assert.equal(granted[0]?.qos, 1)
  } finally {
    await c.end()
  }
})

let rawIds = 0
async function rawSession(tenant: string, version: 4 | 5): Promise<RawClient> {
  const raw = await rawConnect(gw.port(), version)
  raw.send(
    connectPacket({
      protocolVersion: version,
      username: `u@${tenant}`,
      password: Buffer.from('p'),
      clientId: `raw-${rawIds++}`,
    }),
  )
  const connack = await raw.next()
  assert.ok(connack.cmd === 'connack' && (connack.reasonCode ?? connack.returnCode) === 0, 'connected')
  return raw
}

async function rawSubscribe(raw: RawClient, filters: string[], messageId: number): Promise<number[]> {
  raw.send({ cmd: 'subscribe', messageId, subscriptions: filters.map((topic) => ({ topic, qos: 0 as const })) })
  const suback = await raw.next()
  assert.equal(suback.cmd, 'suback')
  return suback.cmd === 'suback' ? (suback.granted as number[]) : []
}

/** Connects raw, sends `packet`, returns what the gateway answered: a DISCONNECT reason, or 'closed'. */
async function answerTo(
  tenant: string,
  version: 4 | 5,
  packet: Parameters<Awaited<ReturnType<typeof rawConnect>>['send']>[0],
): Promise<number | 'closed'> {
  const raw = await rawSession(tenant, version)
  raw.send(packet)
  try {
    const p = await raw.next()
    if (p.cmd === 'disconnect') {
      await raw.closed()
      return p.reasonCode ?? 0
    }
    throw new Error(`unexpected ${p.cmd}`)
  } catch (err) {
    if ((err as Error).message === 'connection closed') return 'closed'
    throw err
  } finally {
    raw.end()
  }
}

for (const v of [4, 5] as const) {
  const close = (code: number) => (v === 5 ? code : 'closed')
  test(`v${v}: PUBLISH above maxQos → ${v === 5 ? 'DISCONNECT 0x9B' : 'close'}`, async () => {
    assert.equal(
      await answerTo('tight', v, {
        cmd: 'publish',
        topic: 't',
        payload: Buffer.from('x'),
        qos: 2,
        messageId: 1,
        retain: false,
        dup: false,
      }),
      close(0x9b),
    )
  })
  test(`v${v}: retained PUBLISH when retain is off → ${v === 5 ? 'DISCONNECT 0x9A' : 'close'}`, async () => {
    assert.equal(
      await answerTo('tight', v, {
        cmd: 'publish',
        topic: 't',
        payload: Buffer.from('x'),
        qos: 0,
        retain: true,
        dup: false,
      }),
      close(0x9a),
    )
  })
  test(`v${v}: packet above maxPacketSize → ${v === 5 ? 'DISCONNECT 0x95' : 'close'}`, async () => {
    assert.equal(
      await answerTo('tight', v, {
        cmd: 'publish',
        topic: 't',
        payload: Buffer.alloc(2048),
        qos: 0,
        retain: false,
        dup: false,
      }),
      close(0x95),
    )
  })
}

test('v5: PUBLISH with too many topic levels → PUBACK 0x90, not delivered; v3.1.1: acknowledged and dropped', async () => {
  // tight allows 2 connections: the watcher sits in 'other'-free tenant 'tight' with one publisher at a time.
  const watcher = await connectClient(gw.port(), as('tight', 5))
  try {
    await watcher.client.subscribeAsync('#', { qos: 1 })
    const v5 = await connectClient(gw.port(), as('tight', 5))
    await assert.rejects(
      v5.client.publishAsync('a/b/c/d', 'x', { qos: 1 }),
      (err: { code?: number }) => err.code === 0x90,
    )
    await v5.end()
    await waitFor(() => gw.connections('tight') === 1)
    const v3 = await connectClient(gw.port(), as('tight', 4))
    await v3.client.publishAsync('a/b/c/d', 'x', { qos: 1 }) // acknowledged
    await quiet(watcher)
    await v3.end()
  } finally {
    await watcher.end()
  }
})

test('connectRate refuses a burst with 0x9F (v5) / 0x03 (v3)', async () => {
  const codes: number[] = []
  const clients = []
  for (let i = 0; i < 5; i++) {
    try {
      clients.push(await connectClient(gw.port(), as('crowd', i % 2 === 0 ? 5 : 4)))
    } catch (err) {
      codes.push((err as { code: number }).code)
    }
  }
  assert.ok(codes.length > 0, 'some connections refused')
  for (const c of codes) assert.ok(c === 0x9f || c === 0x03, `code ${c}`)
  await Promise.all(clients.map((c) => c.end()))
})

test('maxSubscriptions counts the whole tenant and gives slots back on unsubscribe and close', async () => {
  const a = await rawSession('shared', 5)
  const b = await rawSession('shared', 5)
  try {
    assert.deepEqual(await rawSubscribe(a, ['x/1', 'x/2'], 1), [0, 0])
    assert.deepEqual(await rawSubscribe(b, ['y/1', 'y/2'], 1), [0, 0x97])
    a.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['x/1'] })
    assert.equal((await a.next()).cmd, 'unsuback')
    assert.deepEqual(await rawSubscribe(b, ['y/2'], 2), [0])
    a.end()
    await waitFor(() => gw.connections('shared') === 1)
    assert.deepEqual(await rawSubscribe(b, ['y/3', 'y/4'], 3), [0, 0x97])
  } finally {
    a.end()
    b.end()
  }
})

test('publishRate throttles without losing a QoS 1 message, and another tenant flows meanwhile', async () => {
  const sub = await connectClient(gw.port(), as('rated'))
  await sub.client.subscribeAsync('flood', { qos: 1 })
  const pub = await connectClient(gw.port(), as('rated'))
  const otherSub = await connectClient(gw.port(), as('other'))
  await otherSub.client.subscribeAsync('calm', { qos: 1 })
  const otherPub = await connectClient(gw.port(), as('other'))
  const n = 200
  const flood = Promise.all(
    Array.from({ length: n }, (_x, i) => pub.client.publishAsync('flood', String(i), { qos: 1 })),
  )
  // While the flooding tenant is held back, the other tenant's messages arrive.
  for (let i = 0; i < 5; i++) {
    await otherPub.client.publishAsync('calm', `c${i}`, { qos: 1 })
    assert.equal((await otherSub.next((m) => m.payload === `c${i}`)).topic, 'calm')
  }
  await flood
  const got = []
  for (let i = 0; i < n; i++) got.push((await sub.next(() => true, 10_000)).payload)
  assert.deepEqual(
    got,
    Array.from({ length: n }, (_x, i) => String(i)),
  )
  assert.ok((gw.counters('rated')?.refusals.messageRateTooHigh ?? 0) > 0, 'the tenant was throttled')
  await Promise.all([sub.end(), pub.end(), otherSub.end(), otherPub.end()])
})

test('rateAction: disconnect → DISCONNECT 0x96 when the client rate is exceeded', async () => {
  const c = await connectClient(gw.port(), as('strict'))
  const reason = new Promise<number | undefined>((resolve) => c.client.once('disconnect', (p) => resolve(p.reasonCode)))
  for (let i = 0; i < 50; i++) c.client.publish('t', 'x', { qos: 0 })
  assert.equal(await reason, 0x96)
  await c.end()
})

test('no connection slot leaks after many abrupt closes and refusals', async () => {
  for (let i = 0; i < 200; i++) {
    const raw = await rawConnect(gw.port(), 4)
    raw.send(
      connectPacket({
        username: i % 3 === 0 ? 'u@other' : 'u@tight',
        password: Buffer.from(i % 5 === 0 ? 'bad' : 'p'),
        clientId: `c${i}`,
      }),
    )
    if (i % 2 === 0) await raw.next().catch(() => undefined)
    raw.end()
  }
  await waitFor(() => gw.connections() === 0)
  assert.equal(gw.connections('tight'), 0)
  assert.equal(gw.connections('other'), 0)
})

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
