// Issue #17 as a malicious tenant tries it, over raw sockets against a real mosquitto: packet smuggling
// through mounted strings over 65,535 bytes, and a partial packet too big to buffer.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, drained, type TestGateway } from './helpers/gateway.js'
import { connectClient } from './helpers/clients.js'
import { rawConnect, connectPacket, type RawClient } from './helpers/raw.js'

let broker: Mosquitto
let gw: TestGateway

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url}, connectTimeout: 5s }
tenants:
  evil: { users: { alice: { password: "plain:e" } } }
  victim: { users: { alice: { password: "plain:v" } } }
`)
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

const LONG = 'x'.repeat(65_535)

async function evilRaw(v: 4 | 5, clientId = 'dev'): Promise<RawClient> {
  const raw = await rawConnect(gw.port(), v)
  raw.send(connectPacket({ protocolVersion: v, username: 'alice@evil', password: Buffer.from('e'), clientId }))
  const connack = await raw.next()
  assert.ok(connack.cmd === 'connack' && (connack.reasonCode ?? connack.returnCode) === 0, JSON.stringify(connack))
  return raw
}

/** A client straight on the broker, subscribed to every tenant's topics: it sees whatever the gateway let through. */
async function brokerWatch(): Promise<{ seen: string[]; sync: () => Promise<void>; end: () => void }> {
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
    // Ordered after anything the gateway sent before: one broker, one subscriber, a round trip.
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

// ---- smuggling (item 1) ------------------------------------------------------------------------

const varint = (n: number): Buffer => {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff])

/**
 * The reported exploit, byte for byte. Mounted, the 65,535-byte filter is 65,540 bytes: mqtt-packet
 * wrote the UNSUBSCRIBE's header and message ID and nothing more, so the broker took the next 65,542
 * bytes of evil's stream as filters. Each PUBLISH below is shaped so that, as the broker sees it mounted
 * (`evil/` added, lengths grown by 5), its bytes read as a list of printable filters: `0x30` and the
 * first Remaining Length byte make a filter length, the second Remaining Length byte (`d`), the topic
 * length (`!!`), the topic and payload its text. The fifth ends the list exactly and carries, in its
 * payload, a raw retained PUBLISH to `victim/pwned`, which the broker then read as evil's next packet.
 */
function smugglingPublishes(): Buffer[] {
  const PREFIX = 5 // 'evil/'
  const MISSING = 65_542 // the 2-byte length and 65,540 bytes of the mounted filter
  const TOPIC = 0x2121 // mounted topic length: both bytes printable ('!!')
  const FIRST = (0x30 << 8) | 0x80 // filter length read from 0x30 and a first Remaining Length byte 0x80
  const afterFirst = 2 + FIRST // bytes of a mounted PUBLISH consumed by its first filter
  const mountedPublish = (remaining: number, tail: Buffer): Buffer => {
    // as the broker would see it: 0x30, varint (2 bytes, the first 0x80), topic length, topic, payload
    assert.equal(remaining % 128, 0)
    const head = 2 + TOPIC
    const payload = Buffer.alloc(remaining - head, 'a')
    tail.copy(payload, payload.length - tail.length)
    return payload
  }
  const pair = (n: number): Buffer => Buffer.concat([u16(n - 2), Buffer.alloc(n - 2, 'a')])
  const toClient = (remainingMounted: number, payload: Buffer): Buffer => {
    const topic = Buffer.alloc(TOPIC - PREFIX, 'a')
    const body = Buffer.concat([u16(topic.length), topic, payload])
    assert.equal(body.length, remainingMounted - PREFIX)
    return Buffer.concat([Buffer.from([0x30]), varint(body.length), body])
  }
  const FILLER = 12_800 // Remaining Length once mounted: varint 0x80 0x64 ('d')
  const fillerSize = 3 + FILLER
  const packets: Buffer[] = []
  for (let i = 0; i < 4; i++) packets.push(toClient(FILLER, mountedPublish(FILLER, pair(fillerSize - afterFirst))))
  const need = MISSING - 4 * fillerSize
  const raw = (len: number): Buffer => {
    const topic = Buffer.from('victim/pwned')
    const bodyLen = len - 3 // 0x31 and a two-byte varint
    const body = Buffer.concat([
      u16(topic.length),
      topic,
      Buffer.from('pwned'),
      Buffer.alloc(bodyLen - 2 - topic.length - 5, ' '),
    ])
    return Buffer.concat([Buffer.from([0x31]), varint(bodyLen), body])
  }
  let rawLen = 137
  while ((need + rawLen - 3) % 128 !== 0) rawLen++
  const last = need + rawLen - 3
  packets.push(toClient(last, mountedPublish(last, Buffer.concat([pair(need - afterFirst), raw(rawLen)]))))
  return packets
}

test('an UNSUBSCRIBE filter that is too long once mounted cannot smuggle a PUBLISH into another tenant', async () => {
  const victim = await connectClient(gw.port(), { username: 'alice@victim', password: 'v', clientId: 'dev' })
  await victim.client.subscribeAsync('#')
  const watch = await brokerWatch()
  const raw = await evilRaw(4)
  const closed = raw.closed(5000)
  raw.send({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: [LONG] })
  for (const p of smugglingPublishes()) raw.write(p)
  // Fixed: the gateway refuses the mounted filter and closes evil (v3 has no UNSUBACK code).
  // Broken: victim's `#` gets `pwned`.
  const crossed = victim
    .next(() => true, 5000)
    .then(
      (m) => m.topic,
      () => undefined,
    )
  const outcome = await Promise.race([closed.then(() => 'closed'), crossed])
  assert.equal(outcome, 'closed', `victim received ${String(outcome)}`)
  await watch.sync()
  assert.deepEqual(watch.seen, [], 'nothing of evil reached the broker')
  // and nothing was retained: a later subscriber gets only its own canary
  const later = await connectClient(gw.port(), { username: 'alice@victim', password: 'v', clientId: 'later' })
  await later.client.subscribeAsync('#')
  await later.client.publishAsync('canary', 'c', { qos: 1 })
  assert.equal((await later.next()).topic, 'canary')
  assert.deepEqual(
    victim.received.map((m) => m.topic).filter((t) => t !== 'canary'),
    [],
  )
  await later.end()
  await victim.end()
  watch.end()
})

test('a client ID, will topic or will Response Topic too long once mounted is refused before the broker, at once', async () => {
  const watch = await brokerWatch()
  const cases: Array<[string, Partial<mqttPacket.IConnectPacket>]> = [
    ['client ID', { clientId: LONG }],
    ['will topic', { will: { topic: LONG, payload: Buffer.from('w'), qos: 0, retain: true } }],
    [
      'will Response Topic',
      { will: { topic: 'w', payload: Buffer.from('w'), qos: 0, retain: true, properties: { responseTopic: LONG } } },
    ],
  ]
  for (const v of [4, 5] as const) {
    for (const [what, fields] of cases) {
      if (v === 4 && what === 'will Response Topic') continue
      const raw = await rawConnect(gw.port(), v)
      raw.send(
        connectPacket({
          protocolVersion: v,
          username: 'alice@evil',
          password: Buffer.from('e'),
          clientId: 'c',
          ...fields,
        }),
      )
      // CONNACK 0x85 (client ID) / 0x90 (will topics) in v5; 0x02 (client ID) or a close in v3.
      const expected = what === 'client ID' ? (v === 5 ? 0x85 : 0x02) : v === 5 ? 0x90 : undefined
      const answer = (await raw.next(3000).catch(() => undefined)) as mqttPacket.IConnackPacket | undefined
      assert.equal(
        answer === undefined ? undefined : (answer.reasonCode ?? answer.returnCode),
        expected,
        `v${v} ${what}`,
      )
      await raw.closed(1000) // not the 5 s stall of a broker waiting for the rest of a truncated CONNECT
    }
  }
  await watch.sync()
  assert.deepEqual(watch.seen, [])
  await drained(gw, 'evil')
  // the tenant is served as before
  const ok = await evilRaw(5, 'fine')
  ok.end()
  watch.end()
})

test('a v5 PUBLISH whose Response Topic is too long once mounted is refused, and the connection is not left hanging', async () => {
  const watch = await brokerWatch()
  const raw = await evilRaw(5)
  raw.send({
    cmd: 'publish',
    topic: 't',
    payload: Buffer.from('p'),
    qos: 1,
    messageId: 9,
    retain: false,
    dup: false,
    properties: { responseTopic: LONG },
  })
  const answer = await raw.next()
  assert.deepEqual([answer.cmd, (answer as mqttPacket.IPubackPacket).reasonCode], ['puback', 0x90])
  raw.send({ cmd: 'pingreq' })
  assert.equal((await raw.next()).cmd, 'pingresp')
  await watch.sync()
  assert.deepEqual(watch.seen, [])
  raw.end()
  watch.end()
})

// ---- ill-formed UTF-8 (item 10) ----------------------------------------------------------------

/** `packet` encoded with the byte `marker` (once in it) replaced by `bad`. */
function patched(packet: mqttPacket.Packet, v: 4 | 5, marker: string, bad: number): Buffer {
  const bytes = mqttPacket.generate(packet, { protocolVersion: v })
  const at = bytes.lastIndexOf(marker.charCodeAt(0))
  assert.ok(at >= 0)
  bytes[at] = bad
  return bytes
}

test("client IDs \\xff and \\xfe are malformed, not both U+FFFD: neither gets in, nor takes the other's session", async () => {
  const watch = await brokerWatch()
  for (const v of [4, 5] as const) {
    for (const bad of [0xff, 0xfe]) {
      const raw = await rawConnect(gw.port(), v)
      raw.write(
        patched(
          connectPacket({
            protocolVersion: v,
            username: 'alice@evil',
            password: Buffer.from('e'),
            clientId: 'Q',
            clean: false,
          }),
          v,
          'Q',
          bad,
        ),
      )
      await raw.closed()
      await assert.rejects(raw.next(100), /connection closed/, 'no CONNACK')
    }
  }
  // ill-formed usernames and will topics the same
  const raw = await rawConnect(gw.port(), 5)
  raw.write(
    patched(
      connectPacket({
        protocolVersion: 5,
        username: 'alice@evil',
        password: Buffer.from('e'),
        clientId: 'c',
        will: { topic: 'wQ', payload: Buffer.from('w'), qos: 0, retain: false },
      }),
      5,
      'Q',
      0xc3,
    ),
  )
  await raw.closed()
  await watch.sync()
  assert.deepEqual(watch.seen, [])
  watch.end()
})

test('ill-formed UTF-8 in a filter, a Response Topic or a user property after CONNECT: DISCONNECT 0x81 (v5) / close (v3)', async () => {
  const watch = await brokerWatch()
  const packets: Array<[4 | 5, mqttPacket.Packet]> = [
    [4, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/Q', qos: 0 }] }],
    [5, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/Q', qos: 0 }] }],
    [5, { cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['a/Q'] }],
    [
      5,
      {
        cmd: 'publish',
        topic: 't',
        payload: Buffer.from('p'),
        qos: 1,
        messageId: 3,
        retain: false,
        dup: false,
        properties: { responseTopic: 'r/Q' },
      },
    ],
    [
      5,
      {
        cmd: 'publish',
        topic: 't',
        payload: Buffer.from('p'),
        qos: 1,
        messageId: 4,
        retain: false,
        dup: false,
        properties: { userProperties: { k: 'Q' } },
      },
    ],
  ]
  for (const [v, packet] of packets) {
    const raw = await evilRaw(v)
    raw.write(patched(packet, v, 'Q', 0xff))
    if (v === 5) {
      const p = await raw.next()
      assert.ok(p.cmd === 'disconnect' && p.reasonCode === 0x81, `${packet.cmd}: ${JSON.stringify(p)}`)
    }
    await raw.closed()
  }
  await watch.sync()
  assert.deepEqual(watch.seen, [])
  watch.end()
})

// ---- a partial packet too big to hold (item 4) --------------------------------------------------

test('without a plan maxPacketSize, four 50 MiB unfinished PUBLISHes are cut at 1 MiB and cost no memory', async () => {
  const MiB = 1024 * 1024
  const chunk = Buffer.alloc(64 * 1024, 'z')
  const rssBefore = process.memoryUsage().rss
  const senders = [4, 5, 4, 5].map(async (v, i) => {
    const raw = await evilRaw(v as 4 | 5, `big-${i}`)
    const topic = Buffer.from('big')
    raw.write(Buffer.concat([Buffer.from([0x30]), varint(2 + topic.length + 50 * MiB), u16(topic.length), topic]))
    let sent = 0
    let closed = false
    raw.socket.once('close', () => {
      closed = true
    })
    while (!closed && sent < 50 * MiB) {
      if (!raw.socket.write(chunk))
        await new Promise((resolve) => {
          raw.socket.once('drain', resolve)
          raw.socket.once('close', resolve)
        })
      sent += chunk.length
    }
    return { v, raw, sent }
  })
  for (const { v, raw, sent } of await Promise.all(senders)) {
    if (v === 5) {
      const p = await raw.next().catch(() => undefined)
      assert.ok(p === undefined || (p.cmd === 'disconnect' && p.reasonCode === 0x95), JSON.stringify(p))
    }
    await raw.closed()
    assert.ok(sent < 50 * MiB, `v${v}: the gateway took all ${sent} bytes`)
  }
  const grown = (process.memoryUsage().rss - rssBefore) / MiB
  console.log(`# RSS grew by ${grown.toFixed(1)} MiB`)
  assert.ok(grown < 64, `RSS grew by ${grown.toFixed(1)} MiB (200 MiB were sent)`)
})

test('the v5 CONNACK advertises the gateway-wide Maximum Packet Size', async () => {
  const raw = await rawConnect(gw.port(), 5)
  raw.send(connectPacket({ protocolVersion: 5, username: 'alice@evil', password: Buffer.from('e'), clientId: 'adv' }))
  const connack = (await raw.next()) as mqttPacket.IConnackPacket
  assert.equal(connack.properties?.maximumPacketSize, 1024 * 1024)
  raw.end()
})
