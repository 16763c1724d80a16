// SPEC §8: what devices see when things go wrong, and that nothing a client sends crashes the gateway
// or disturbs another tenant.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import fc from 'fast-check'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { drained, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal, quiet } from './helpers/clients.js'
import { rawConnect, connectPacket, type RawClient } from './helpers/raw.js'
import { nextEvent } from './helpers/events.js'
import { hashPassword } from '../src/tenancy/passwords.js'

let broker: Mosquitto
let gw: TestGateway
let slowHash: string

const config = (url: string): string => `
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0", connectTimeout: 300ms }]
upstream: { url: ${url}, connectTimeout: 1s }
auth: { maxFailuresPerMinute: 100000 }
tenants:
  acme: { users: { alice: { password: "plain:a" }, slow: { password: "${slowHash}" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`

before(async () => {
  slowHash = await hashPassword('s') // scrypt: CONNECT takes long enough for pipelined packets to be held
  broker = await startMosquitto()
  gw = await startTestGateway(config(broker.url))
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

const acme = (v: 4 | 5, extra: mqtt.IClientOptions = {}): mqtt.IClientOptions => ({
  protocolVersion: v,
  username: 'alice@acme',
  password: 'a',
  ...extra,
})
const gen = (p: mqttPacket.Packet, v: 4 | 5 = 4): Buffer => mqttPacket.generate(p, { protocolVersion: v })

async function connected(v: 4 | 5, clientId: string, port = gw.port()): Promise<RawClient> {
  const raw = await rawConnect(port, v)
  raw.send(connectPacket({ protocolVersion: v, username: 'alice@acme', password: Buffer.from('a'), clientId }))
  const connack = await raw.next()
  assert.ok(connack.cmd === 'connack' && (connack.reasonCode ?? connack.returnCode) === 0, JSON.stringify(connack))
  return raw
}

test('upstream not running: CONNACK 0x88 (v5) / 0x03 (v3) at once; the next client is served once the broker is up', async () => {
  const b = await startMosquitto()
  await b.stop() // its port is now free: nothing listens there
  const t = await startTestGateway(config(b.url))
  try {
    const t0 = performance.now()
    assert.equal(await connectRefusal(t.port(), acme(5)), 0x88)
    assert.equal(await connectRefusal(t.port(), acme(4)), 0x03)
    assert.ok(performance.now() - t0 < 1500, 'a refused TCP connect is answered without waiting for a timeout')
    assert.equal(t.connections(), 0)
    await b.restart() // same port
    for (const v of [4, 5] as const) {
      const c = await connectClient(t.port(), acme(v))
      await c.client.subscribeAsync('up/again', { qos: 1 })
      await c.client.publishAsync('up/again', 'x', { qos: 1 })
      await c.next()
      await c.end()
    }
  } finally {
    await t.close()
    await b.stop()
  }
})

test('upstream accepts TCP but never answers CONNACK: 0x88 after upstream.connectTimeout, and the upstream socket is closed', async () => {
  const upstreamSockets: net.Socket[] = []
  const hole = net.createServer((s) => {
    upstreamSockets.push(s)
    s.on('error', () => {})
    s.resume()
  }) // reads (and drops) the CONNECT, so 'end' can be seen
  await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve))
  const t = await startTestGateway(config(`mqtt://127.0.0.1:${(hole.address() as net.AddressInfo).port}`))
  try {
    const t0 = performance.now()
    assert.equal(await connectRefusal(t.port(), acme(5)), 0x88)
    const took = performance.now() - t0
    assert.ok(took > 800 && took < 2500, `answered after ${took.toFixed(0)} ms (connectTimeout 1s)`)
    const up = upstreamSockets[0]
    assert.ok(up !== undefined)
    if (!up.destroyed) await nextEvent(up, 'close')
    // A client that leaves while its upstream is still dialing takes the upstream with it.
    const raw = await rawConnect(t.port(), 4)
    raw.send(connectPacket({ username: 'alice@acme', password: Buffer.from('a'), clientId: 'leaver' }))
    while (upstreamSockets.length < 2) await nextEvent(hole, 'connection')
    raw.end()
    const up2 = upstreamSockets[1] as net.Socket
    if (!up2.destroyed) await nextEvent(up2, 'close')
    await drained(t)
  } finally {
    await t.close()
    await new Promise((resolve) => hole.close(resolve))
  }
})

test('upstream killed mid-session: v5 gets DISCONNECT 0x80 "upstream broker unavailable", v3 is closed, the gateway stays up', async () => {
  // SPEC §8 says 0x88, but 0x88 is a CONNACK-only code [MQTT-3.14.2.1]: MQTT.js (mqtt-packet) rejects a
  // DISCONNECT 0x88 as "Invalid disconnect reason code" and the device would see a parse error instead.
  const b = await startMosquitto()
  const t = await startTestGateway(config(b.url))
  try {
    const v5 = await connectClient(t.port(), acme(5, { clientId: 'k5' }))
    const v3 = await connectClient(t.port(), acme(4, { clientId: 'k3' }))
    const disconnect = nextEvent<mqtt.IDisconnectPacket>(v5.client, 'disconnect')
    const closed3 = nextEvent(v3.client, 'close')
    const closed5 = nextEvent(v5.client, 'close')
    let parseError: unknown
    v5.client.on('error', (err) => {
      parseError = err
    })
    await b.stop()
    const packet = await disconnect
    assert.equal(packet.reasonCode, 0x80)
    assert.equal(packet.properties?.reasonString, 'upstream broker unavailable')
    await Promise.all([closed3, closed5])
    assert.equal(parseError, undefined)
    await drained(t)
    assert.equal(await connectRefusal(t.port(), acme(5)), 0x88) // still up, and says why
    await b.restart()
    const again = await connectClient(t.port(), acme(5, { clientId: 'k5' }))
    await again.end()
    await v5.end()
    await v3.end()
  } finally {
    await t.close()
    await b.stop()
  }
})

test('no CONNECT within connectTimeout (300ms): the socket is closed, not before, and within a bound', async () => {
  for (const first of [Buffer.alloc(0), Buffer.from([0x10, 0x20, 0x00])]) {
    // nothing; a CONNECT's first bytes only
    const raw = await rawConnect(gw.port(), 4)
    const t0 = performance.now()
    if (first.length > 0) raw.write(first)
    await raw.closed(3000)
    const took = performance.now() - t0
    assert.ok(took > 250 && took < 1500, `closed after ${took.toFixed(0)} ms`)
  }
})

test('a packet before CONNECT closes the connection, unanswered', async () => {
  const before = [
    gen({ cmd: 'pingreq' }),
    gen({ cmd: 'publish', topic: 'x', payload: Buffer.from('y'), qos: 0, retain: false, dup: false }),
    gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] }),
  ]
  for (const bytes of before) {
    const raw = await rawConnect(gw.port(), 4)
    const answers: Buffer[] = []
    raw.socket.on('data', (d: Buffer) => answers.push(d))
    raw.write(bytes)
    await raw.closed()
    assert.equal(Buffer.concat(answers).length, 0)
  }
})

for (const v of [4, 5] as const) {
  test(`v${v}: a second CONNECT ${v === 5 ? 'gets DISCONNECT 0x82' : 'closes the connection'}`, async () => {
    const raw = await connected(v, `twice-${v}`)
    raw.send(
      connectPacket({ protocolVersion: v, username: 'alice@acme', password: Buffer.from('a'), clientId: `twice-${v}` }),
    )
    if (v === 5) {
      const p = await raw.next()
      assert.ok(p.cmd === 'disconnect' && p.reasonCode === 0x82, JSON.stringify(p))
    }
    await raw.closed()
  })

  const malformed: Array<[string, Buffer]> = [
    ['SUBSCRIBE without a topic filter', Buffer.from([0x82, 0x03, 0x00, 0x01, 0x00])],
    [
      'SUBSCRIBE with reserved flags 0000',
      Buffer.concat([
        Buffer.from([0x80]),
        gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] }, v).subarray(1),
      ]),
    ],
    ['PUBLISH with QoS 3', Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])],
    ['a remaining length of five bytes', Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ['reserved packet type 0', Buffer.from([0x00, 0x00])],
    ['PINGREQ with a body', Buffer.from([0xc0, 0x01, 0x00])],
  ]
  for (const [what, bytes] of malformed) {
    test(`v${v}: malformed after CONNECT (${what}) → ${v === 5 ? 'DISCONNECT 0x81' : 'closed'}, logged with tenant and remote`, async () => {
      const raw = await connected(v, `bad-${v}`)
      const port = raw.socket.localPort // read while open: a closed socket no longer tells
      raw.write(bytes)
      if (v === 5) {
        const p = await raw.next()
        assert.ok(p.cmd === 'disconnect' && p.reasonCode === 0x81, JSON.stringify(p))
      }
      await raw.closed()
      assert.ok(
        gw.logs.some((l) => l.tenant === 'acme' && String(l.remote).endsWith(`:${String(port)}`)),
        'a log line names the tenant and the remote address',
      )
    })
  }

  test(`v${v}: a PUBLISH topic with ill-formed UTF-8 is malformed [MQTT-1.5.4-1] → ${v === 5 ? 'DISCONNECT 0x81' : 'closed'}`, async () => {
    const raw = await connected(v, `utf8-${v}`)
    const body = v === 5 ? [0x00, 0x02, 0xc3, 0x28, 0x00] : [0x00, 0x02, 0xc3, 0x28]
    raw.write(Buffer.from([0x30, body.length, ...body]))
    if (v === 5) {
      const p = await raw.next()
      assert.ok(p.cmd === 'disconnect' && p.reasonCode === 0x81, JSON.stringify(p))
    }
    await raw.closed()
  })

  test(`v${v}: CONNECT, SUBSCRIBE and PUBLISH pipelined in one write (slow scrypt login) are all carried out, in order`, async () => {
    const raw = await rawConnect(gw.port(), v)
    raw.write(
      Buffer.concat([
        gen(
          connectPacket({
            protocolVersion: v,
            username: 'slow@acme',
            password: Buffer.from('s'),
            clientId: `pipelined-${v}`,
          }),
          v,
        ),
        gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'pipe/#', qos: 1 }] }, v),
        gen(
          {
            cmd: 'publish',
            topic: 'pipe/x',
            payload: Buffer.from('in order'),
            qos: 1,
            messageId: 2,
            retain: false,
            dup: false,
          },
          v,
        ),
        gen({ cmd: 'pingreq' }, v),
      ]),
    )
    const seen: string[] = []
    while (seen.length < 5) {
      const p = await raw.next()
      seen.push(p.cmd === 'publish' ? `publish ${p.topic} ${p.payload.toString()}` : p.cmd)
    }
    assert.deepEqual(seen.slice(0, 2), ['connack', 'suback'])
    // The broker answers PUBLISH (PUBACK) and PINGREQ in order; its delivery of our message may come anywhere after
    // SUBACK.
    assert.deepEqual(
      seen.slice(2).filter((c) => !c.startsWith('publish')),
      ['puback', 'pingresp'],
    )
    assert.ok(seen.includes('publish pipe/x in order'))
    raw.end()
  })

  test(`v${v}: PUBLISH then DISCONNECT pipelined with CONNECT: the message is delivered and the will is not`, async () => {
    const watch = await connectClient(gw.port(), acme(v))
    await watch.client.subscribeAsync('bye/#', { qos: 1 })
    const raw = await rawConnect(gw.port(), v)
    raw.write(
      Buffer.concat([
        gen(
          connectPacket({
            protocolVersion: v,
            username: 'slow@acme',
            password: Buffer.from('s'),
            clientId: `quick-${v}`,
            will: { topic: 'bye/will', payload: Buffer.from('will'), qos: 1, retain: false },
          }),
          v,
        ),
        gen({ cmd: 'publish', topic: 'bye/msg', payload: Buffer.from('msg'), qos: 0, retain: false, dup: false }, v),
        gen({ cmd: 'disconnect' }, v),
      ]),
    )
    assert.equal((await raw.next()).cmd, 'connack')
    await raw.closed()
    assert.equal((await watch.next()).topic, 'bye/msg')
    await quiet(watch)
    await watch.end()
  })
}

test('gateway close sends v5 clients DISCONNECT 0x8B, closes v3 clients, and accepts no one after', async () => {
  const t = await startTestGateway(config(broker.url))
  const port = t.port()
  const v5 = await connectClient(port, acme(5, { clientId: 'bye5' }))
  const v3 = await connectClient(port, acme(4, { clientId: 'bye3' }))
  const disconnect = nextEvent<mqtt.IDisconnectPacket>(v5.client, 'disconnect')
  const closed3 = nextEvent(v3.client, 'close')
  const t0 = performance.now()
  await t.close()
  assert.ok(performance.now() - t0 < 5000, 'close() is bounded')
  assert.equal((await disconnect).reasonCode, 0x8b)
  await closed3
  await v5.end()
  await v3.end()
  await assert.rejects(rawConnect(port, 4)) // ECONNREFUSED
})

test('random bytes and mutated packet sequences never crash the gateway or disturb another tenant', async () => {
  const watcher = await connectClient(gw.port(), {
    protocolVersion: 5,
    username: 'alice@globex',
    password: 'g',
    clientId: 'watcher',
  })
  await watcher.client.subscribeAsync('alive', { qos: 1 })
  const logsBefore = gw.logs.length
  const valid = (v: 4 | 5): Buffer =>
    Buffer.concat([
      gen(
        connectPacket({ protocolVersion: v, username: 'alice@acme', password: Buffer.from('a'), clientId: 'fuzz' }),
        v,
      ),
      gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f/#', qos: 1 }] }, v),
      gen(
        {
          cmd: 'publish',
          topic: 'f/x',
          payload: Buffer.from('p'),
          qos: 1,
          messageId: 2,
          retain: false,
          dup: false,
          ...(v === 5 ? { properties: { responseTopic: 'r/x', topicAlias: 1 } } : {}),
        },
        v,
      ),
    ])
  const version = fc.constantFrom(4 as const, 5 as const)
  const bytes = (max: number): fc.Arbitrary<Buffer> =>
    fc.uint8Array({ minLength: 1, maxLength: max }).map((a) => Buffer.from(a))
  const input = fc.oneof(
    bytes(200), // anything at all, before CONNECT
    fc
      .tuple(version, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat())
      .map(([v, flips, cut]) => {
        // a valid sequence, a few bytes changed, maybe cut short
        const b = Buffer.from(valid(v))
        for (const [pos, byte] of flips) b[pos % b.length] = byte
        return b.subarray(0, Math.max(1, b.length - (cut % 8)))
      }),
    fc.tuple(version, bytes(100)).map(([v, tail]) => Buffer.concat([valid(v), tail])), // garbage after a good start
  )
  let runs = 0
  await fc.assert(
    fc.asyncProperty(input, async (b) => {
      const raw = await rawConnect(gw.port(), 4)
      raw.write(b)
      await new Promise((resolve) => setTimeout(resolve, 5)) // the socket's short life
      raw.end()
      if (++runs % 25 === 0) {
        // The other tenant's client still works, end to end.
        await watcher.client.publishAsync('alive', String(runs), { qos: 1 })
        assert.equal((await watcher.next((m) => m.payload === String(runs))).topic, 'alive')
      }
    }),
    { numRuns: 200 },
  )
  assert.equal(watcher.received.filter((m) => m.topic !== 'alive').length, 0)
  await watcher.end()
  await drained(gw)
  const internal = gw.logs
    .slice(logsBefore)
    .filter((l) => /internal error|unexpectedly/.test(JSON.stringify(l)) || Number(l.level) >= 60)
  assert.deepEqual(internal, [])
  const c = await connectClient(gw.port(), acme(4)) // and the listener still serves
  await c.end()
})
