// The newer ways in, fuzzed over real sockets (fast-check): a PROXY protocol listener fed random and
// mutated headers with MQTT behind them, cut at random points, and a WebSocket listener fed random HTTP
// and random frame sequences (binary, text, ping; random and mutated MQTT). Nothing crashes the gateway,
// logs an internal error, leaks a counted connection or disturbs another tenant's client, and both
// listeners still serve a good client afterwards.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import WebSocket from 'ws'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { drained, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, type TestClient } from './helpers/clients.js'
import { connectPacket, rawConnect } from './helpers/raw.js'

let broker: Mosquitto
let gw: TestGateway
let watcher: TestClient

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(`listeners:
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
  - { name: lb, type: tcp, bind: "127.0.0.1:0", proxyProtocol: true, connectTimeout: 300ms }
  - { name: ws, type: ws, bind: "127.0.0.1:0", connectTimeout: 300ms, maxMessageSize: 4KiB }
upstream: { url: ${broker.url} }
auth: { maxFailuresPerMinute: 100000 }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`)
  watcher = await connectClient(gw.port('mqtt'), { username: 'alice@globex', password: 'g', clientId: 'watcher' })
  await watcher.client.subscribeAsync('alive', { qos: 1 })
})
after(async () => {
  await watcher?.end()
  await gw?.close()
  await broker?.stop()
})

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** CONNECT, SUBSCRIBE and PUBLISH of acme, as one valid byte sequence. */
const MQTT = Buffer.concat([
  mqttPacket.generate(connectPacket({ username: 'alice@acme', password: Buffer.from('a'), clientId: 'fuzz' })),
  mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f/#', qos: 1 }] }),
  mqttPacket.generate({
    cmd: 'publish',
    topic: 'f/x',
    payload: Buffer.from('p'),
    qos: 1,
    messageId: 2,
    retain: false,
    dup: false,
  }),
])
const bytes = (max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: 1, maxLength: max }).map((a) => Buffer.from(a))
/** `b` with a few bytes changed and maybe cut short */
const mutated = (b: Buffer): fc.Arbitrary<Buffer> =>
  fc
    .tuple(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat())
    .map(([flips, cut]) => {
      const copy = Buffer.from(b)
      for (const [pos, byte] of flips) copy[pos % copy.length] = byte
      return copy.subarray(0, Math.max(1, copy.length - (cut % 8)))
    })

/**
 * After a fuzz run: the other tenant's client still works end to end, no fuzz connection is counted, nothing internal
 * was logged.
 */
async function stillHealthy(logsBefore: number, round: number): Promise<void> {
  await watcher.client.publishAsync('alive', String(round), { qos: 1 })
  assert.equal((await watcher.next((m) => m.payload === String(round))).topic, 'alive')
  assert.equal(watcher.received.filter((m) => m.topic !== 'alive').length, 0)
  await drained(gw, 'acme')
  const internal = gw.logs
    .slice(logsBefore)
    .filter((l) => /internal error|unexpectedly/.test(JSON.stringify(l)) || Number(l.level) >= 60)
  assert.deepEqual(internal, [])
}

test('PROXY listener: random and mutated headers, with MQTT behind them, cut anywhere', async () => {
  const logsBefore = gw.logs.length
  const v1 = fc
    .tuple(fc.ipV4(), fc.integer({ min: 0, max: 65535 }))
    .map(([ip, port]) => Buffer.from(`PROXY TCP4 ${ip} 192.0.2.1 ${port} 1883\r\n`))
  const v2 = fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 0, max: 65535 }),
    )
    .map(([ip, port]) => {
      const b = Buffer.concat([
        Buffer.from('0d0a0d0a000d0a515549540a2111000c', 'hex'),
        Buffer.from(ip),
        Buffer.from([192, 0, 2, 1]),
        Buffer.alloc(4),
      ])
      b.writeUInt16BE(port, 24)
      b.writeUInt16BE(1883, 26)
      return b
    })
  const input = fc.oneof(
    bytes(200),
    fc.oneof(v1, v2).chain((h) => mutated(Buffer.concat([h, MQTT]))),
    fc.tuple(fc.oneof(v1, v2), bytes(100)).map(([h, tail]) => Buffer.concat([h, MQTT, tail])),
  )
  await fc.assert(
    fc.asyncProperty(input, fc.nat(), async (b, splitAt) => {
      const raw = await rawConnect(gw.port('lb'))
      const at = splitAt % b.length
      raw.write(b.subarray(0, at))
      await sleep(1)
      raw.write(b.subarray(at))
      await sleep(5)
      raw.end()
    }),
    { numRuns: 150 },
  )
  await stillHealthy(logsBefore, 1)
  // A good client through the PROXY listener is still served.
  const good = await rawConnect(gw.port('lb'))
  good.write(Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.7 192.0.2.1 4000 1883\r\n'), MQTT]))
  assert.equal((await good.next()).cmd, 'connack')
  good.end()
})

test('WebSocket listener: random HTTP, and random frame sequences after a good upgrade', async () => {
  const logsBefore = gw.logs.length
  // Random bytes where the HTTP upgrade should be.
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        bytes(300),
        fc.string({ maxLength: 300 }).map((s) => Buffer.from(`GET /mqtt HTTP/1.1\r\n${s}`)),
      ),
      async (b) => {
        const raw = await rawConnect(gw.port('ws'))
        raw.write(b)
        await sleep(5)
        raw.end()
      },
    ),
    { numRuns: 60 },
  )
  // Frames: binary (random, mutated MQTT, or the valid sequence cut in pieces), text and pings.
  const frame = fc.oneof(
    fc.record({
      kind: fc.constant('binary' as const),
      data: fc.oneof(
        bytes(200),
        mutated(MQTT),
        fc.nat().map((n) => MQTT.subarray(0, 1 + (n % MQTT.length))),
      ),
    }),
    fc.record({ kind: fc.constant('text' as const), data: bytes(50) }),
    fc.record({ kind: fc.constant('ping' as const), data: bytes(20) }),
    fc.record({ kind: fc.constant('big' as const), data: fc.constant(Buffer.alloc(5000)) }),
  )
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 6 }), async (frames) => {
      const ws = new WebSocket(`ws://127.0.0.1:${gw.port('ws')}/mqtt`, ['mqtt'])
      ws.on('error', () => {})
      const opened = await new Promise<boolean>((resolve) => {
        ws.once('open', () => resolve(true))
        ws.once('close', () => resolve(false))
      })
      if (!opened) return
      for (const f of frames) {
        if (ws.readyState !== WebSocket.OPEN) break
        if (f.kind === 'ping') ws.ping(f.data)
        else ws.send(f.data, { binary: f.kind !== 'text' })
      }
      await sleep(5)
      ws.terminate()
    }),
    { numRuns: 100 },
  )
  await stillHealthy(logsBefore, 2)
  const good = await connectClient(gw.port('ws'), {
    protocol: 'ws',
    path: '/mqtt',
    username: 'alice@acme',
    password: 'a',
  })
  await good.end()
})
