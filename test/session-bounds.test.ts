// What a session may hold and for how long: the output bound (#17 item 2), Session Expiry in
// DISCONNECT (#17 item 7), subscriptions a resumed persistent session holds at the broker (#17 item 8),
// and a client displaced by its own client ID (SPEC §8: DISCONNECT 0x8E).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'
import { rawConnect, connectPacket, type RawClient } from './helpers/raw.js'
import { floodWithoutReading } from './helpers/never-reads.js'
import { connectClient } from './helpers/clients.js'

let broker: Mosquitto
let gw: TestGateway
/** every packet the broker received from the gateway, through a tap in front of mosquitto */
const toBroker: mqttPacket.Packet[] = []
let tap: net.Server

const TENANTS = `
plans:
  small: { maxSubscriptionsPerClient: 2, maxSubscriptions: 3, maxSessionExpiry: 60 }
tenants:
  acme: { plan: small, users: { u: { password: "plain:p" } } }
  globex: { plan: small, users: { u: { password: "plain:p" } } }
  open: { users: { u: { password: "plain:p" } } }
  bystander: { users: { u: { password: "plain:p" } } }
`

before(async () => {
  broker = await startMosquitto()
  tap = net.createServer((down) => {
    const up = net.connect({ host: '127.0.0.1', port: broker.port })
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p: mqttPacket.Packet) => toBroker.push(p))
    parser.on('error', () => {})
    down.on('data', (d) => {
      parser.parse(d)
      up.write(d)
    })
    up.pipe(down)
    down.on('close', () => up.destroy())
    up.on('close', () => down.destroy())
    down.on('error', () => {})
    up.on('error', () => {})
  })
  await new Promise<void>((resolve) => tap.listen(0, '127.0.0.1', resolve))
  gw = await startTestGateway(yamlConfig(`mqtt://127.0.0.1:${(tap.address() as net.AddressInfo).port}`, TENANTS))
})
after(async () => {
  await gw?.close()
  await new Promise((resolve) => tap?.close(resolve))
  await broker?.stop()
})

async function session(
  tenant: string,
  v: 4 | 5,
  clientId: string,
  opts: Partial<mqttPacket.IConnectPacket> = {},
): Promise<{ raw: RawClient; sessionPresent: boolean }> {
  const raw = await rawConnect(gw.port(), v)
  raw.send(
    connectPacket({ protocolVersion: v, username: `u@${tenant}`, password: Buffer.from('p'), clientId, ...opts }),
  )
  const connack = await raw.next()
  assert.ok(connack.cmd === 'connack' && (connack.reasonCode ?? connack.returnCode) === 0, JSON.stringify(connack))
  return { raw, sessionPresent: connack.cmd === 'connack' && connack.sessionPresent }
}

let messageIds = 1
async function subscribe(raw: RawClient, filters: string[]): Promise<number[]> {
  raw.send({
    cmd: 'subscribe',
    messageId: messageIds++,
    subscriptions: filters.map((topic) => ({ topic, qos: 1 as const })),
  })
  const suback = await raw.next()
  assert.equal(suback.cmd, 'suback')
  return suback.cmd === 'suback' ? (suback.granted as number[]) : []
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

// ---- #17 item 2: one output bound for everything written to a client ------------------------------

/** A packet the gateway answers itself, never forwarded: what a never-reading client floods. */
interface OwnReply {
  name: string
  v: 4 | 5
  packet: mqttPacket.Packet
  /** the gateway's answer, as one client that reads hears it */
  reply: (p: mqttPacket.Packet) => boolean
}
const OWN_REPLIES: OwnReply[] = [
  {
    name: 'v3 QoS 1 PUBLISH to $x, acknowledged and dropped',
    v: 4,
    packet: { cmd: 'publish', topic: '$x', payload: Buffer.alloc(0), qos: 1, messageId: 7, retain: false, dup: false },
    reply: (p) => p.cmd === 'puback' && p.messageId === 7,
  },
  {
    name: 'v3 UNSUBSCRIBE $SYS/#, UNSUBACK',
    v: 4,
    packet: { cmd: 'unsubscribe', messageId: 7, unsubscriptions: ['$SYS/#'] },
    reply: (p) => p.cmd === 'unsuback' && p.messageId === 7,
  },
  {
    name: 'v3 SUBSCRIBE $SYS/#, SUBACK 0x80',
    v: 4,
    packet: { cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: '$SYS/#', qos: 1 }] },
    reply: (p) => p.cmd === 'suback' && p.messageId === 7 && p.granted[0] === 0x80,
  },
  {
    name: 'v5 QoS 1 PUBLISH to $x, PUBACK 0x87',
    v: 5,
    packet: { cmd: 'publish', topic: '$x', payload: Buffer.alloc(0), qos: 1, messageId: 7, retain: false, dup: false },
    reply: (p) => p.cmd === 'puback' && p.messageId === 7 && p.reasonCode === 0x87,
  },
]

for (const kind of OWN_REPLIES) {
  test(`a client that never reads stops being read once what the gateway wrote to it passes its bound: ${kind.name}`, async () => {
    const unit = mqttPacket.generate(kind.packet, { protocolVersion: kind.v })
    // The premise: the gateway answers this packet itself, and the broker never sees it.
    const brokerSaw = toBroker.length
    const probe = await session('open', kind.v, `probe-${kind.v}`)
    probe.raw.write(unit)
    const answer = await probe.raw.next()
    assert.ok(kind.reply(answer), JSON.stringify(answer))
    probe.raw.end()
    await waitFor(() => gw.connections('open') === 0)

    const clientId = `never-reads-${kind.v}`
    const connect = mqttPacket.generate(
      connectPacket({ protocolVersion: kind.v, username: 'u@open', password: Buffer.from('p'), clientId }),
      { protocolVersion: kind.v },
    )
    const heapBefore = process.memoryUsage().heapUsed
    const repeat = Math.ceil(16_000_000 / unit.length)
    const flooder = await floodWithoutReading(gw.port(), connect, unit, { repeat })
    try {
      assert.deepEqual([flooder.connack[0], flooder.connack[3]], [0x20, 0], 'CONNACK, accepted')
      const readNow = (): number => gw.clients('open').find((c) => c.clientId === clientId)?.bytesIn ?? -1
      const read = readNow()
      assert.ok(flooder.sent < flooder.total, 'the client could not send everything: the gateway stopped reading it')
      // What it read is bounded by the kernel's socket buffers (under 1 MiB with the client's small MSS),
      // not by the flood.
      assert.ok(read >= 0 && read < flooder.sent, `the gateway read ${read} bytes of the ${flooder.sent} sent`)
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.equal(readNow(), read, 'and reads no more while the client reads nothing')
      // Each queued reply costs far more than its 4 or 5 bytes: without the bound this flood grew the heap 200–300 MiB.
      const grown = process.memoryUsage().heapUsed - heapBefore
      assert.ok(grown < 64 * 1024 * 1024, `the heap grew by ${(grown / 1048576).toFixed(1)} MiB`)
      assert.ok(
        toBroker.slice(brokerSaw).every((p) => !['publish', 'subscribe', 'unsubscribe'].includes(p.cmd)),
        "the broker saw none of it: every reply was the gateway's own",
      )
      // Another tenant is served meanwhile.
      const other = await connectClient(gw.port(), { username: 'u@bystander', password: 'p', clientId: 'rt' })
      await other.client.subscribeAsync('rt', { qos: 1 })
      await other.client.publishAsync('rt', 'ping', { qos: 1 })
      assert.equal((await other.next((m) => m.topic === 'rt')).payload, 'ping')
      await other.end()
    } finally {
      flooder.stop()
    }
    await waitFor(() => gw.connections('open') === 0)
  })
}

// ---- #17 item 7: Session Expiry in DISCONNECT is clamped ------------------------------------------

test('v5: DISCONNECT with Session Expiry 0xFFFFFFFF reaches the broker clamped to maxSessionExpiry', async () => {
  const { raw } = await session('acme', 5, 'expiry', { clean: false, properties: { sessionExpiryInterval: 30 } })
  raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0xffffffff } })
  await raw.closed()
  await waitFor(() => toBroker.some((p) => p.cmd === 'disconnect' && p.properties?.sessionExpiryInterval !== undefined))
  const sent = toBroker.filter(
    (p): p is mqttPacket.IDisconnectPacket =>
      p.cmd === 'disconnect' && p.properties?.sessionExpiryInterval !== undefined,
  )
  assert.deepEqual(
    sent.map((p) => p.properties?.sessionExpiryInterval),
    [60],
  )
  // Cleaned up, so the quota tests below start from nothing.
  const again = await session('acme', 5, 'expiry', { clean: true })
  again.raw.send({ cmd: 'disconnect' })
  await again.raw.closed()
})

// ---- #17 item 8: what a resumed persistent session holds counts --------------------------------

for (const v of [4, 5] as const) {
  test(`v${v}: a resumed persistent session's filters count toward maxSubscriptionsPerClient and maxSubscriptions until it ends`, async () => {
    const persistent = v === 5 ? { clean: false, properties: { sessionExpiryInterval: 60 } } : { clean: false }
    const first = await session('acme', v, `keeper-${v}`, persistent)
    assert.deepEqual(await subscribe(first.raw, ['a/1', 'a/2']), [1, 1])
    first.raw.send({ cmd: 'disconnect' })
    await first.raw.closed()
    await waitFor(() => gw.connections('acme') === 0)
    assert.equal(gw.subscriptions('acme'), 2, 'the broker still holds them: they are counted')

    const again = await session('acme', v, `keeper-${v}`, persistent)
    assert.equal(again.sessionPresent, true)
    assert.deepEqual(await subscribe(again.raw, ['a/3']), [v === 5 ? 0x97 : 0x80], 'the client already holds 2')
    assert.deepEqual(await subscribe(again.raw, ['a/1']), [1], 'a resubscription takes no new slot')

    // The same client ID in another tenant is another session with its own quota.
    const globex = await session('globex', v, `keeper-${v}`, persistent)
    assert.equal(globex.sessionPresent, false)
    assert.deepEqual(await subscribe(globex.raw, ['a/1', 'a/2']), [1, 1])
    globex.raw.send({ cmd: 'unsubscribe', messageId: messageIds++, unsubscriptions: ['a/1', 'a/2'] })
    assert.equal((await globex.raw.next()).cmd, 'unsuback')
    globex.raw.send({ cmd: 'disconnect' })

    // The tenant's total: 2 held by the keeper, so another client gets only one more.
    const other = await session('acme', v, `other-${v}`)
    assert.deepEqual(await subscribe(other.raw, ['b/1', 'b/2']), [1, v === 5 ? 0x97 : 0x80])
    other.raw.send({ cmd: 'disconnect' })
    await other.raw.closed()

    // A clean session ends the broker's: its filters stop counting.
    again.raw.end()
    await waitFor(() => gw.connections('acme') === 0)
    const clean = await session('acme', v, `keeper-${v}`, v === 5 ? { clean: true } : { clean: true })
    assert.equal(clean.sessionPresent, false)
    assert.equal(gw.subscriptions('acme'), 0)
    clean.raw.send({ cmd: 'disconnect' })
    await clean.raw.closed()
  })
}

// ---- SPEC §8: a client displaced by its own client ID ------------------------------------------

test("v5: a client displaced by a newer connection with the same client ID gets DISCONNECT 0x8E; another tenant's is untouched", async () => {
  const old = await session('open', 5, 'twin')
  const acmeTwin = await session('acme', 5, 'twin')
  const newer = await session('open', 5, 'twin')
  const p = await old.raw.next()
  assert.ok(p.cmd === 'disconnect' && p.reasonCode === 0x8e, JSON.stringify(p))
  await old.raw.closed()
  // The newer connection and the other tenant's twin both still work.
  for (const c of [newer.raw, acmeTwin.raw]) {
    c.send({ cmd: 'pingreq' })
    assert.equal((await c.next()).cmd, 'pingresp')
    c.end()
  }
})
