// SPEC §8: what devices see when things go wrong, and that nothing a client sends crashes the gateway
// or disturbs another tenant.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { rawConnect, connectPacket } from './helpers/raw.js'
import { freePort } from './helpers/net.js'

let broker: Mosquitto
let gw: TestGateway

const config = (url: string): string => `
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0", connectTimeout: 300ms }]
upstream: { url: ${url}, connectTimeout: 1s }
auth: { maxFailuresPerMinute: 100000 }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(config(broker.url))
})
after(async () => { await gw?.close(); await broker?.stop() })

const acme = (v: 4 | 5, extra = {}) => ({ protocolVersion: v, username: 'alice@acme', password: 'a', ...extra })

test('upstream not running: CONNACK 0x88 (v5) / 0x03 (v3); the gateway serves again once it is up', async () => {
  const port = await freePort()
  const t = await startTestGateway(config(`mqtt://127.0.0.1:${port}`))
  try {
    assert.equal(await connectRefusal(t.port(), acme(5)), 0x88)
    assert.equal(await connectRefusal(t.port(), acme(4)), 0x03)
    assert.equal(t.connections(), 0)
  } finally { await t.close() }
})

test('upstream killed mid-session: v5 gets DISCONNECT 0x80 (0x88 is CONNACK-only), v3 is closed, the gateway stays up', async () => {
  const b = await startMosquitto()
  const t = await startTestGateway(config(b.url))
  try {
    const v5 = await connectClient(t.port(), acme(5, { clientId: 'k5' }))
    const v3 = await connectClient(t.port(), acme(4, { clientId: 'k3' }))
    const reason = new Promise<number | undefined>((resolve) => v5.client.once('disconnect', (p) => resolve(p.reasonCode)))
    const closed3 = new Promise<void>((resolve) => v3.client.once('close', () => resolve()))
    await b.restart()
    assert.equal(await reason, 0x80)
    await closed3
    const again = await connectClient(t.port(), acme(5, { clientId: 'k5' })) // the broker is back
    await again.end()
    await v5.end(); await v3.end()
  } finally { await t.close(); await b.stop() }
})

test('no CONNECT within connectTimeout: the socket is closed', async () => {
  const raw = await rawConnect(gw.port(), 4)
  await raw.closed(3000)
})

test('a packet before CONNECT closes the connection', async () => {
  const raw = await rawConnect(gw.port(), 4)
  raw.send({ cmd: 'pingreq' })
  await raw.closed()
})

for (const v of [4, 5] as const) {
  test(`v${v}: a second CONNECT ${v === 5 ? 'gets DISCONNECT 0x82' : 'closes the connection'}`, async () => {
    const raw = await rawConnect(gw.port(), v)
    raw.send(connectPacket({ protocolVersion: v, username: 'alice@acme', password: Buffer.from('a'), clientId: `twice-${v}` }))
    assert.equal((await raw.next()).cmd, 'connack')
    raw.send(connectPacket({ protocolVersion: v, username: 'alice@acme', password: Buffer.from('a'), clientId: `twice-${v}` }))
    if (v === 5) {
      const p = await raw.next()
      assert.ok(p.cmd === 'disconnect' && p.reasonCode === 0x82)
    }
    await raw.closed()
  })

  test(`v${v}: a malformed packet after CONNECT ${v === 5 ? 'gets DISCONNECT 0x81' : 'closes the connection'}`, async () => {
    const raw = await rawConnect(gw.port(), v)
    raw.send(connectPacket({ protocolVersion: v, username: 'alice@acme', password: Buffer.from('a'), clientId: `bad-${v}` }))
    assert.equal((await raw.next()).cmd, 'connack')
    raw.write(Buffer.from([0x82, 0x03, 0x00, 0x01, 0x00])) // SUBSCRIBE with no topic filter
    if (v === 5) {
      const p = await raw.next()
      assert.ok(p.cmd === 'disconnect' && p.reasonCode === 0x81, JSON.stringify(p))
    }
    await raw.closed()
  })
}

test('CONNECT, SUBSCRIBE and PUBLISH pipelined in one write are all carried out, in order', async () => {
  const raw = await rawConnect(gw.port(), 4)
  const g = (p: mqttPacket.Packet) => mqttPacket.generate(p, { protocolVersion: 4 })
  raw.write(Buffer.concat([
    g(connectPacket({ username: 'alice@acme', password: Buffer.from('a'), clientId: 'pipelined' })),
    g({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'pipe/#', qos: 1 }] }),
    g({ cmd: 'publish', topic: 'pipe/x', payload: Buffer.from('in order'), qos: 1, messageId: 2, retain: false, dup: false }),
  ]))
  const seen: string[] = []
  while (seen.length < 4) {
    const p = await raw.next()
    seen.push(p.cmd === 'publish' ? `publish ${p.topic} ${p.payload.toString()}` : p.cmd)
  }
  assert.deepEqual(seen.slice(0, 2), ['connack', 'suback'])
  assert.deepEqual(seen.slice(2).sort(), ['puback', 'publish pipe/x in order'])
  raw.end()
})

test('gateway close sends v5 clients DISCONNECT 0x8B and closes v3 clients', async () => {
  const t = await startTestGateway(config(broker.url))
  const v5 = await connectClient(t.port(), acme(5, { clientId: 'bye5' }))
  const v3 = await connectClient(t.port(), acme(4, { clientId: 'bye3' }))
  const reason = new Promise<number | undefined>((resolve) => v5.client.once('disconnect', (p) => resolve(p.reasonCode)))
  const closed3 = new Promise<void>((resolve) => v3.client.once('close', () => resolve()))
  await t.close()
  assert.equal(await reason, 0x8b)
  await closed3
  await v5.end(); await v3.end()
})

test('random bytes and mutated packet sequences never crash the gateway or disturb another tenant', async () => {
  const watcher = await connectClient(gw.port(), { protocolVersion: 5, username: 'alice@globex', password: 'g', clientId: 'watcher' })
  await watcher.client.subscribeAsync('alive', { qos: 1 })
  const valid = (v: 4 | 5): Buffer => Buffer.concat([
    mqttPacket.generate(connectPacket({ protocolVersion: v, username: 'alice@acme', password: Buffer.from('a'), clientId: 'fuzz' }), { protocolVersion: v }),
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f/#', qos: 1 }] }, { protocolVersion: v }),
    mqttPacket.generate({ cmd: 'publish', topic: 'f/x', payload: Buffer.from('p'), qos: 1, messageId: 2, retain: false, dup: false }, { protocolVersion: v }),
  ])
  const input = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a)),
    fc.tuple(fc.constantFrom(4 as const, 5 as const), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat())
      .map(([v, flips, cut]) => {
        const b = Buffer.from(valid(v))
        for (const [pos, byte] of flips) b[pos % b.length] = byte
        return b.subarray(0, Math.max(1, b.length - (cut % 8)))
      }),
  )
  let runs = 0
  await fc.assert(fc.asyncProperty(input, async (bytes) => {
    const raw = await rawConnect(gw.port(), 4)
    raw.write(bytes)
    await new Promise((resolve) => setTimeout(resolve, 5))
    raw.end()
    if (++runs % 25 === 0) {
      // The other tenant's client still works, end to end.
      await watcher.client.publishAsync('alive', String(runs), { qos: 1 })
      assert.equal((await watcher.next((m) => m.payload === String(runs))).topic, 'alive')
    }
  }), { numRuns: 200 })
  await watcher.end()
  const deadline = Date.now() + 5000
  while (gw.connections() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(gw.connections(), 0)
})
