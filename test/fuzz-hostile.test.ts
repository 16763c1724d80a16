// A malicious tenant fuzzed over real sockets (issue #17): strings at the 65,535-byte edge in every
// field the gateway mounts (client ID, will topic and Response Topic, topics, Response Topic, filters
// of SUBSCRIBE and UNSUBSCRIBE, shared or not) so the mounted one may overflow, and packets with huge
// property counts, and a client that never reads flooding packets the gateway answers itself. Whatever
// evil sends, the broker sees only evil's namespace and whole packets, the other tenant hears nothing,
// and the gateway goes on. Bounded to several seconds; FUZZ_RUNS=n multiplies the runs for a long one.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { drained, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, type TestClient } from './helpers/clients.js'
import { connectPacket, rawConnect, type RawClient } from './helpers/raw.js'
import { assertNoLongerRead, floodWithoutReading } from './helpers/never-reads.js'

/** A multiplier on every property's number of runs, for a long run: `FUZZ_RUNS=20`. */
const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 1)
if (!Number.isInteger(FUZZ_RUNS) || FUZZ_RUNS < 1)
  throw new Error(`FUZZ_RUNS must be a positive integer, not ${process.env.FUZZ_RUNS ?? ''}`)
const runs = (n: number): number => n * FUZZ_RUNS

let broker: Mosquitto
let gw: TestGateway
let victim: TestClient
let watch: mqtt.MqttClient
const seenByBroker: string[] = []
/** the victim's own round trips (rt/…), the only messages it may hear */
const roundTrips = new Set<string>()

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url} }
auth: { maxFailuresPerMinute: 100000 }
tenants:
  evil:
    users: { alice: { password: "plain:e" } }
    acl: [{ deny: all, topic: "deny/#" }, { allow: all, topic: "#" }]
  victim: { users: { alice: { password: "plain:v" } } }
`)
  victim = await connectClient(gw.port(), { username: 'alice@victim', password: 'v', clientId: 'dev' })
  await victim.client.subscribeAsync('#')
  watch = await mqtt.connectAsync({ host: '127.0.0.1', port: broker.port, reconnectPeriod: 0 })
  watch.on('message', (topic) => seenByBroker.push(topic))
  await watch.subscribeAsync('#')
})
after(async () => {
  watch?.end(true)
  await victim?.end()
  await gw?.close()
  await broker?.stop()
})

/** A fuzzed string and how fast-check prints it. */
class Text {
  constructor(
    readonly value: string,
    private readonly label: string,
  ) {}
  [fc.toStringMethod](): string {
    return this.label
  }
}

/**
 * A string of `bytes` UTF-8 bytes (ASCII or three-byte characters), a valid topic. Shown by fast-check
 * as `edge(65530, wide)`, not as 64 KB of text.
 */
const edgeString = fc.tuple(fc.integer({ min: 65_520, max: 65_535 }), fc.boolean()).map(([bytes, wide]) => {
  const s = wide ? '€'.repeat(Math.floor(bytes / 3)) + 'x'.repeat(bytes % 3) : 'x'.repeat(bytes)
  return new Text(s, `edge(${bytes}, ${wide ? 'wide' : 'ascii'})`)
})
const shortString = fc.constantFrom('t', 'a/b', 'ü/€').map((s) => new Text(s, JSON.stringify(s)))
const str = fc.oneof(edgeString, shortString)
const text = (t: Text): string => t.value

const publish = (topic: string, properties?: mqttPacket.IPublishPacket['properties']): mqttPacket.IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from('p'),
  qos: 1,
  messageId: 7,
  retain: false,
  dup: false,
  ...(properties !== undefined ? { properties } : {}),
})

/** A recipe of one packet after CONNECT (small to print), built by `afterConnectPacket`. */
type Recipe =
  | { kind: 'publish'; v: 4 | 5; topic: Text }
  | { kind: 'responseTopic'; topic: Text; responseTopic: Text }
  | { kind: 'subscribe' | 'unsubscribe'; v: 4 | 5; filters: Text[] }
  | { kind: 'userProperties'; count: number }
const afterConnect: fc.Arbitrary<Recipe> = fc.oneof(
  fc.record({ kind: fc.constant('publish' as const), v: fc.constantFrom<4 | 5>(4, 5), topic: str }),
  fc.record({ kind: fc.constant('responseTopic' as const), topic: shortString, responseTopic: str }),
  fc.record({
    kind: fc.constantFrom('subscribe' as const, 'unsubscribe' as const),
    v: fc.constantFrom<4 | 5>(4, 5),
    filters: fc.array(str, { minLength: 1, maxLength: 2 }),
  }),
  fc.record({ kind: fc.constant('userProperties' as const), count: fc.integer({ min: 1, max: 5000 }) }),
)

function afterConnectPacket(r: Recipe): [4 | 5, mqttPacket.Packet] {
  switch (r.kind) {
    case 'publish':
      return [r.v, publish(text(r.topic))]
    case 'responseTopic':
      return [5, publish(text(r.topic), { responseTopic: text(r.responseTopic) })]
    case 'unsubscribe':
      return [r.v, { cmd: 'unsubscribe', messageId: 8, unsubscriptions: r.filters.map(text) }]
    case 'subscribe':
      return [
        r.v,
        {
          cmd: 'subscribe',
          messageId: 8,
          subscriptions: r.filters.map((f, i) => ({
            topic: i === 0 ? text(f) : `$share/g/${text(f).slice(9)}`,
            qos: 0 as const,
          })),
        },
      ]
    case 'userProperties': {
      const userProperties: Record<string, string> = {}
      for (let i = 0; i < r.count; i++) userProperties[`k${i}`] = 'v'
      return [5, publish('t', { userProperties })]
    }
  }
}

/** A CONNECT with one field at the edge. */
const connect = fc.record({
  v: fc.constantFrom<4 | 5>(4, 5),
  field: fc.constantFrom('clientId', 'will', 'willResponse'),
  value: edgeString,
})
function connectOf({ v, field, value }: { v: 4 | 5; field: string; value: Text }): mqttPacket.IConnectPacket {
  const s = text(value)
  return connectPacket({
    protocolVersion: v,
    username: 'alice@evil',
    password: Buffer.from('e'),
    clientId: field === 'clientId' ? s : 'c',
    ...(field === 'will' ? { will: { topic: s, payload: Buffer.from('w'), qos: 0, retain: false } } : {}),
    ...(field === 'willResponse' && v === 5
      ? { will: { topic: 'w', payload: Buffer.from('w'), qos: 0, retain: false, properties: { responseTopic: s } } }
      : {}),
  })
}

/**
 * Waits until the gateway answered `raw`'s last packet (a PINGRESP after it) or closed it. A connection
 * that hears nothing is the sign of a corrupt packet upstream: the broker is still reading its "rest".
 */
async function settled(raw: RawClient): Promise<void> {
  raw.send({ cmd: 'pingreq' })
  for (;;) {
    const p = await raw.next(3000).catch((err: Error) => {
      if (/closed/.test(err.message)) return undefined
      throw new Error('no answer: the broker is waiting for the rest of a packet')
    })
    if (p === undefined || p.cmd === 'pingresp') return
  }
}

async function brokerSync(round: string): Promise<void> {
  const got = new Promise<void>((resolve) => {
    const on = (topic: string, payload: Buffer): void => {
      if (topic === 'sync' && payload.toString() === round) {
        watch.off('message', on)
        resolve()
      }
    }
    watch.on('message', on)
  })
  watch.publish('sync', round)
  await got
}

async function assertContained(logsBefore: number, round: string): Promise<void> {
  await brokerSync(round)
  const foreign = seenByBroker.filter(
    (t) => t !== 'sync' && !t.startsWith('evil/') && !(t.startsWith('victim/') && roundTrips.has(t.slice(7))),
  )
  assert.deepEqual(foreign, [], 'the broker saw topics outside evil/')
  assert.deepEqual(
    victim.received.map((m) => m.topic).filter((t) => !roundTrips.has(t)),
    [],
    'victim heard something',
  )
  await drained(gw, 'evil')
  // Every over-long mounted field gets its own refusal from the session: the codec's last wall (an
  // EncodeError, logged at warn with its field) firing means a field the session missed.
  const internal = gw.logs
    .slice(logsBefore)
    .filter(
      (l) =>
        Number(l.level) >= 50 ||
        l.msg === 'packet could not be encoded' ||
        l.msg === 'mounted CONNECT cannot be encoded' ||
        l.msg === 'CONNECT could not be encoded',
    )
  assert.deepEqual(internal, [])
}

test('fuzz: over-long mounted strings and huge property counts after CONNECT', async () => {
  const logsBefore = gw.logs.length
  let round = 0
  await fc.assert(
    fc.asyncProperty(afterConnect, async (recipe) => {
      const [v, packet] = afterConnectPacket(recipe)
      const raw = await rawConnect(gw.port(), v)
      raw.send(
        connectPacket({
          protocolVersion: v,
          username: 'alice@evil',
          password: Buffer.from('e'),
          clientId: `f${round}`,
        }),
      )
      assert.equal((await raw.next()).cmd, 'connack')
      raw.send(packet)
      await settled(raw)
      raw.end()
      await assertContained(logsBefore, `a${round++}`)
    }),
    { numRuns: runs(30) },
  )
})

test('fuzz: over-long mounted CONNECT fields', async () => {
  const logsBefore = gw.logs.length
  let round = 0
  await fc.assert(
    fc.asyncProperty(connect, async (recipe) => {
      const raw = await rawConnect(gw.port(), recipe.v)
      raw.send(connectOf(recipe))
      const answer = await raw.next(3000).catch((err: Error) => {
        if (/closed/.test(err.message)) return undefined
        throw new Error('no CONNACK: the broker is waiting for the rest of a CONNECT')
      })
      if (answer?.cmd === 'connack' && (answer.reasonCode ?? answer.returnCode) === 0) await settled(raw)
      raw.end()
      await assertContained(logsBefore, `c${round++}`)
    }),
    { numRuns: runs(12) },
  )
  // and evil is still served
  const ok = await connectClient(gw.port(), { username: 'alice@evil', password: 'e', clientId: 'after' })
  await ok.end()
})

/**
 * A packet the gateway answers itself (SPEC §5, §6): PUBLISH to a `$` topic or one the ACL denies (PUBACK
 * / PUBREC, v5 0x87; a v3 QoS 2 one's PUBREL gets the gateway's PUBCOMP too), SUBSCRIBE to `$` or denied
 * filters (SUBACK 0x80 / 0x87), UNSUBSCRIBE of `$` filters (UNSUBACK); and PINGREQ, answered by the
 * broker through the same output.
 */
type OwnReply =
  | { kind: 'publish'; topic: string; qos: 1 | 2 }
  | { kind: 'subscribe'; filters: string[] }
  | { kind: 'unsubscribe'; filters: string[] }
  | { kind: 'pingreq' }
const ownReply: fc.Arbitrary<OwnReply> = fc.oneof(
  fc.record({
    kind: fc.constant('publish' as const),
    topic: fc.constantFrom('$x', '$SYS/broker/load', 'deny/t'),
    qos: fc.constantFrom<1 | 2>(1, 2),
  }),
  fc.record({
    kind: fc.constant('subscribe' as const),
    filters: fc.array(fc.constantFrom('$SYS/#', '$x/+', '#/$', 'deny/#', '$share/g/$x'), {
      minLength: 1,
      maxLength: 3,
    }),
  }),
  fc.record({
    kind: fc.constant('unsubscribe' as const),
    filters: fc.array(fc.constantFrom('$SYS/#', '$x', '$share/g/$x'), { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant('pingreq' as const) }),
)
const neverReads = fc.record({
  v: fc.constantFrom<4 | 5>(4, 5),
  packets: fc.array(ownReply, { minLength: 1, maxLength: 5 }),
})

function ownReplyPackets(r: OwnReply, i: number): mqttPacket.Packet[] {
  const messageId = i + 1
  switch (r.kind) {
    case 'publish': {
      const p = { ...publish(r.topic), qos: r.qos, messageId }
      return r.qos === 2 ? [p, { cmd: 'pubrel', messageId }] : [p]
    }
    case 'subscribe':
      return [{ cmd: 'subscribe', messageId, subscriptions: r.filters.map((topic) => ({ topic, qos: 1 as const })) }]
    case 'unsubscribe':
      return [{ cmd: 'unsubscribe', messageId, unsubscriptions: r.filters }]
    case 'pingreq':
      return [{ cmd: 'pingreq' }]
  }
}

test('fuzz: a client that never reads floods packets the gateway answers itself', async () => {
  const logsBefore = gw.logs.length
  let round = 0
  await fc.assert(
    fc.asyncProperty(neverReads, async ({ v, packets }) => {
      const clientId = `n${round}`
      const unit = Buffer.concat(
        packets.flatMap((r, i) => ownReplyPackets(r, i).map((p) => mqttPacket.generate(p, { protocolVersion: v }))),
      )
      const connect = mqttPacket.generate(
        connectPacket({ protocolVersion: v, username: 'alice@evil', password: Buffer.from('e'), clientId }),
        { protocolVersion: v },
      )
      const heapBefore = process.memoryUsage().heapUsed
      const flooder = await floodWithoutReading(gw.port(), connect, unit, {
        repeat: Math.ceil(16_000_000 / unit.length),
      })
      try {
        const bytesRead = (): number => gw.clients('evil').find((c) => c.clientId === clientId)?.bytesIn ?? -1
        await assertNoLongerRead(flooder, bytesRead, heapBefore)
        // The other tenant is served meanwhile: a round trip through the gateway and the broker.
        const topic = `rt/${round}`
        roundTrips.add(topic)
        await victim.client.publishAsync(topic, 'x', { qos: 1 })
        await victim.next((m) => m.topic === topic)
      } finally {
        flooder.stop()
      }
      await assertContained(logsBefore, `n${round++}`)
    }),
    { numRuns: runs(4) },
  )
})
