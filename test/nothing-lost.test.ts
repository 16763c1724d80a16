// Issue #16, SPEC §8 "nothing that arrived is dropped at a state change": each case runs through the
// gateway and, where it makes sense, against the same mosquitto reached directly — the reference.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'
import { connectClient, quiet, type TestClient } from './helpers/clients.js'
import { rawConnect, connectPacket, type RawClient } from './helpers/raw.js'

let broker: Mosquitto
let gw: TestGateway

const TENANTS = `
throttleLinger: 30s
tenants:
  acme: { users: { u: { password: "plain:p" } } }
  globex: { users: { u: { password: "plain:p" } } }
  rated: { limits: { publishRate: 5 }, users: { u: { password: "plain:p" } } }
  strict-v4: { limits: { publishRate: 5, rateAction: disconnect }, users: { u: { password: "plain:p" } } }
  strict-v5: { limits: { publishRate: 5, rateAction: disconnect }, users: { u: { password: "plain:p" } } }
  narrow-v4: { limits: { bandwidth: 4000 }, users: { u: { password: "plain:p" } } }
  narrow-v5: { limits: { bandwidth: 4000 }, users: { u: { password: "plain:p" } } }
`

before(async () => {
  broker = await startMosquitto('max_queued_messages 1000')
  gw = await startTestGateway(yamlConfig(broker.url, TENANTS))
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

type Version = 4 | 5
/** Where a case runs: through the gateway as a tenant's user, or straight to mosquitto (anonymous). */
interface Target {
  name: string
  port: () => number
  creds: (tenant: string) => { username?: string; password?: Buffer }
}
const viaGateway: Target = {
  name: 'gateway',
  port: () => gw.port(),
  creds: (t) => ({ username: `u@${t}`, password: Buffer.from('p') }),
}
const direct: Target = { name: 'mosquitto directly', port: () => broker.port, creds: () => ({}) }

const gen = (p: mqttPacket.Packet, v: Version): Buffer => mqttPacket.generate(p, { protocolVersion: v })
const publish = (topic: string, payload: string, qos: 0 | 1, messageId?: number): mqttPacket.IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from(payload),
  qos,
  retain: false,
  dup: false,
  ...(qos > 0 ? { messageId } : {}),
})

let ids = 0
const uniqueId = (what: string): string => `${what}-${process.pid}-${ids++}`

async function subscriber(
  target: Target,
  tenant: string,
  filter: string,
  v: Version = 5,
  clientId?: string,
): Promise<TestClient> {
  const { username, password } = target.creds(tenant)
  const c = await connectClient(target.port(), {
    protocolVersion: v,
    ...(clientId !== undefined ? { clientId } : {}),
    ...(username !== undefined ? { username, password: password?.toString() } : {}),
  })
  await c.client.subscribeAsync(filter, { qos: 1 })
  return c
}

/** Payloads received (in order) until `n` came or `ms` passed without the next one. */
async function collect(c: TestClient, n: number, ms = 3000): Promise<string[]> {
  const got: string[] = []
  while (got.length < n) {
    try {
      got.push((await c.next(() => true, ms)).payload)
    } catch {
      break
    }
  }
  return got
}

const range = (n: number, f: (i: number) => string): string[] => Array.from({ length: n }, (_x, i) => f(i))

// ---- 2. a device that sends and sleeps ----------------------------------------------------------

for (const v of [4, 5] as const) {
  for (const target of [direct, viaGateway]) {
    test(`v${v} ${target.name}: CONNECT + 30 PUBLISH + DISCONNECT in one write, then FIN: all 30 arrive`, async () => {
      const topic = uniqueId('sleepy')
      const sub = await subscriber(target, 'acme', `${topic}/#`)
      const raw = await rawConnect(target.port(), v)
      raw.write(
        Buffer.concat([
          gen(connectPacket({ protocolVersion: v, clientId: uniqueId('sleeper'), ...target.creds('acme') }), v),
          ...range(30, (i) => String(i)).map((p, i) => gen(publish(`${topic}/x`, p, i % 2 === 0 ? 0 : 1, i + 1), v)),
          gen({ cmd: 'disconnect' }, v),
        ]),
      )
      raw.socket.end() // FIN: the device goes to sleep
      assert.deepEqual(await collect(sub, 30), range(30, String))
      raw.end()
      await sub.end()
    })
  }
}

test('two tenants, same client ID and topics, both send and sleep at once: each gets its own 30 and nothing crosses', async () => {
  const subs = {
    acme: await subscriber(viaGateway, 'acme', 'sleep/#'),
    globex: await subscriber(viaGateway, 'globex', 'sleep/#'),
  }
  const raws: RawClient[] = []
  for (const tenant of ['acme', 'globex'] as const) {
    const raw = await rawConnect(gw.port(), 5)
    raw.write(
      Buffer.concat([
        gen(connectPacket({ protocolVersion: 5, clientId: 'same-device', ...viaGateway.creds(tenant) }), 5),
        ...range(30, (i) => `${tenant}-${i}`).map((p, i) => gen(publish('sleep/x', p, 1, i + 1), 5)),
        gen({ cmd: 'disconnect' }, 5),
      ]),
    )
    raw.socket.end()
    raws.push(raw)
  }
  for (const tenant of ['acme', 'globex'] as const)
    assert.deepEqual(
      await collect(subs[tenant], 30),
      range(30, (i) => `${tenant}-${i}`),
    )
  await quiet(subs.acme)
  await quiet(subs.globex)
  for (const r of raws) r.end()
  await subs.acme.end()
  await subs.globex.end()
})

// ---- 1. persistent sessions: queued messages and redelivery --------------------------------------

async function persistentConnect(
  target: Target,
  v: Version,
  clientId: string,
  tenant = 'acme',
): Promise<{ raw: RawClient; sessionPresent: boolean }> {
  const raw = await rawConnect(target.port(), v)
  raw.send(
    connectPacket({
      protocolVersion: v,
      clientId,
      clean: false,
      ...target.creds(tenant),
      ...(v === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
    }),
  )
  const connack = await raw.next()
  assert.ok(connack.cmd === 'connack' && (connack.reasonCode ?? connack.returnCode) === 0, JSON.stringify(connack))
  return { raw, sessionPresent: connack.cmd === 'connack' && connack.sessionPresent }
}

async function publishFrom(target: Target, tenant: string, topic: string, payloads: string[]): Promise<void> {
  const { username, password } = target.creds(tenant)
  const pub = await connectClient(target.port(), {
    protocolVersion: 5,
    ...(username !== undefined ? { username, password: password?.toString() } : {}),
  })
  for (const p of payloads) await pub.client.publishAsync(topic, p, { qos: 1 })
  await pub.end()
}

/** PUBLISH packets read from `raw` (each acknowledged) until `n` or a quiet `ms`. */
async function readPublishes(raw: RawClient, n: number, ms = 2000): Promise<mqttPacket.IPublishPacket[]> {
  const got: mqttPacket.IPublishPacket[] = []
  while (got.length < n) {
    let p: mqttPacket.Packet
    try {
      p = await raw.next(ms)
    } catch {
      break
    }
    if (p.cmd !== 'publish') continue
    got.push(p)
    if (p.qos === 1) raw.send({ cmd: 'puback', messageId: p.messageId ?? 0 })
  }
  return got
}

for (const v of [4, 5] as const) {
  for (const target of [direct, viaGateway]) {
    test(`v${v} ${target.name}: messages queued for a persistent session arrive right behind CONNACK (session present)`, async () => {
      const clientId = uniqueId('persistent')
      const topic = uniqueId('queue')
      const first = await persistentConnect(target, v, clientId)
      first.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${topic}/#`, qos: 1 }] })
      assert.equal((await first.raw.next()).cmd, 'suback')
      first.raw.send({ cmd: 'disconnect' })
      await first.raw.closed()
      await publishFrom(target, 'acme', `${topic}/m`, range(10, String))
      const again = await persistentConnect(target, v, clientId)
      assert.equal(again.sessionPresent, true)
      assert.deepEqual(
        (await readPublishes(again.raw, 10)).map((p) => p.payload.toString()),
        range(10, String),
      )
      again.raw.end()
    })

    test(`v${v} ${target.name}: an unacknowledged QoS 1 message is redelivered after a reconnect`, async () => {
      const clientId = uniqueId('redeliver')
      const topic = uniqueId('redo')
      const first = await persistentConnect(target, v, clientId)
      first.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
      assert.equal((await first.raw.next()).cmd, 'suback')
      await publishFrom(target, 'acme', topic, ['once'])
      const p = await first.raw.next()
      assert.ok(p.cmd === 'publish' && p.payload.toString() === 'once')
      first.raw.end() // no PUBACK: the message stays in flight at the broker
      await first.raw.closed()
      const again = await persistentConnect(target, v, clientId)
      assert.equal(again.sessionPresent, true)
      const redelivered = await readPublishes(again.raw, 1)
      assert.equal(redelivered[0]?.payload.toString(), 'once')
      assert.equal(redelivered[0]?.dup, true)
      again.raw.end()
    })
  }
}

// ---- 3. a throttled client that disconnects ------------------------------------------------------

function mosquittoPub(port: number, args: string[], stdin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), ...args], {
      stdio: ['pipe', 'ignore', 'pipe'],
    })
    child.on('error', reject)
    child.on('exit', (code) => resolve(code ?? -1))
    child.stdin.end(stdin)
  })
}

test('publishRate 5: `seq 1 30 | mosquitto_pub -l` (QoS 0, then DISCONNECT) gets all 30 through, at the rate', async () => {
  const sub = await subscriber(viaGateway, 'rated', 'thr/q0')
  assert.equal(
    await mosquittoPub(
      gw.port(),
      ['-V', 'mqttv311', '-u', 'u@rated', '-P', 'p', '-t', 'thr/q0', '-l'],
      range(30, (i) => String(i + 1)).join('\n') + '\n',
    ),
    0,
  )
  assert.deepEqual(
    await collect(sub, 30, 5000),
    range(30, (i) => String(i + 1)),
  )
  await sub.end()
})

test('publishRate 5: 30 QoS 1 PUBLISH sent without waiting for acks, then DISCONNECT and FIN: all 30 arrive', async () => {
  const sub = await subscriber(viaGateway, 'rated', 'thr/q1')
  const raw = await rawConnect(gw.port(), 5)
  raw.send(connectPacket({ protocolVersion: 5, clientId: uniqueId('thr'), ...viaGateway.creds('rated') }))
  assert.equal((await raw.next()).cmd, 'connack')
  raw.write(
    Buffer.concat([
      ...range(30, String).map((p, i) => gen(publish('thr/q1', p, 1, i + 1), 5)),
      gen({ cmd: 'disconnect' }, 5),
    ]),
  )
  raw.socket.end()
  assert.deepEqual(await collect(sub, 30, 5000), range(30, String))
  raw.end()
  await sub.end()
})

for (const v of [4, 5] as const) {
  for (const target of [direct, viaGateway]) {
    test(`v${v} ${target.name}: publishRate 5, 12 QoS 0 PUBLISH then FIN without DISCONNECT: all 12 arrive in order, then the will`, async () => {
      const topic = uniqueId('finwill')
      const clientId = uniqueId('finwill')
      const sub = await subscriber(target, 'rated', `${topic}/#`)
      // Another tenant, same client ID and topics: hears neither the messages nor the will, and is not displaced.
      const neighbour = target === viaGateway ? await subscriber(target, 'acme', `${topic}/#`, v, clientId) : undefined
      const raw = await rawConnect(target.port(), v)
      raw.send(
        connectPacket({
          protocolVersion: v,
          clientId,
          ...target.creds('rated'),
          will: { topic: `${topic}/will`, payload: Buffer.from('will'), qos: 1, retain: false },
        }),
      )
      assert.equal((await raw.next()).cmd, 'connack')
      // More than the burst in one write, so the client is held when its FIN comes.
      raw.write(Buffer.concat(range(12, String).map((p) => gen(publish(`${topic}/x`, p, 0), v))))
      raw.socket.end() // FIN, no DISCONNECT: an abrupt leave, after everything it sent
      const got = await collect(sub, 13, 5000)
      assert.deepEqual(
        got,
        [...range(12, String), 'will'],
        'the 12 messages in order, then the will (after the last of them)',
      )
      assert.equal(sub.received.at(-1)?.topic, `${topic}/will`)
      await quiet(sub)
      if (neighbour !== undefined) {
        assert.equal(neighbour.received.length, 0, 'another tenant hears nothing')
        assert.equal(neighbour.client.connected, true, 'another tenant is not taken over')
        await neighbour.end()
      }
      raw.end()
      await sub.end()
    })
  }
}

// ---- 4. rateAction: disconnect acts at the first PUBLISH beyond rate + burst ---------------------

for (const v of [4, 5] as const) {
  test(`v${v}: publishRate 5, rateAction disconnect: a 3,000-message flood in one write gets at most a dozen through, then ${v === 5 ? '0x96' : 'the socket closes'}; an unlimited tenant's client with the same ID and topic gets all of its own through`, async () => {
    const topic = uniqueId('flood')
    const clientId = uniqueId('flooder')
    const strict = `strict-v${v}` // its own bucket: the other version's flood does not drain it
    const sub = await subscriber(viaGateway, strict, topic)
    const acmeSub = await subscriber(viaGateway, 'acme', topic)
    const raw = await rawConnect(gw.port(), v)
    raw.send(connectPacket({ protocolVersion: v, clientId, ...viaGateway.creds(strict) }))
    assert.equal((await raw.next()).cmd, 'connack')
    const acme = await rawConnect(gw.port(), v)
    acme.send(connectPacket({ protocolVersion: v, clientId, ...viaGateway.creds('acme') }))
    assert.equal((await acme.next()).cmd, 'connack')
    raw.write(Buffer.concat(range(3000, String).map((p) => gen(publish(topic, p, 0), v))))
    acme.write(Buffer.concat(range(500, String).map((p) => gen(publish(topic, p, 0), v))))
    if (v === 5) {
      let answer: mqttPacket.Packet
      do answer = await raw.next(5000)
      while (answer.cmd !== 'disconnect')
      assert.equal(answer.reasonCode, 0x96)
    } else {
      // MQTT 3.1.1 has no DISCONNECT from the server: the gateway closes the socket, with nothing before it.
      await raw.closed(5000)
      const answers: mqttPacket.Packet[] = []
      for (;;) {
        try {
          answers.push(await raw.next(0))
        } catch {
          break
        }
      }
      assert.deepEqual(
        answers.map((p) => p.cmd),
        [],
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 500)) // anything still in flight to the subscriber lands
    assert.ok(sub.received.length <= 12, `${sub.received.length} messages passed`)
    assert.ok(sub.received.length >= 5, `the burst passes: ${sub.received.length}`)
    assert.deepEqual(await collect(acmeSub, 500), range(500, String))
    raw.end()
    acme.end()
    await Promise.all([sub.end(), acmeSub.end()])
  })
}

// ---- 5. bandwidth paces by bytes -----------------------------------------------------------------

for (const v of [4, 5] as const) {
  test(`v${v}: bandwidth 4000 B/s: 100 QoS 1 PUBLISH of ~110 bytes take (bytes − one second's burst) / rate`, async () => {
    const narrow = `narrow-v${v}` // its own bucket: the other version's bytes do not slow it
    const sub = await subscriber(viaGateway, narrow, 'bw/#', v)
    const pub = await connectClient(gw.port(), { protocolVersion: v, username: `u@${narrow}`, password: 'p' })
    const payload = 'x'.repeat(100)
    const t0 = performance.now()
    await Promise.all(range(100, String).map(() => pub.client.publishAsync('bw/x', payload, { qos: 1 })))
    const took = performance.now() - t0
    // fixed header, topic, packet ID, (v5) properties
    const bytes = 100 * (2 + 2 + 4 + 2 + (v === 5 ? 1 : 0) + payload.length)
    const expected = ((bytes - 4000) / 4000) * 1000
    assert.ok(
      took >= expected * 0.9,
      `took ${took.toFixed(0)} ms for ${bytes} bytes, expected ≥ ${expected.toFixed(0)}`,
    )
    assert.equal((await collect(sub, 100)).length, 100)
    await Promise.all([pub.end(), sub.end()])
  })
}

// ---- the linger: what a throttled client that left still gets forwarded, and what is dropped ------

for (const v of [4, 5] as const) {
  test(`v${v}: throttleLinger 1s: a throttled client that left gets its packets forwarded for 1 s, the rest dropped, counted and logged`, async () => {
    const topic = `linger-v${v}`
    const clientId = `lingerer-v${v}`
    const t = await startTestGateway(
      yamlConfig(
        broker.url,
        `
throttleLinger: 1s
tenants:
  rated: { limits: { publishRate: 5 }, users: { u: { password: "plain:p" } } }
  other: { limits: { publishRate: 5 }, users: { u: { password: "plain:p" } } }
`,
      ),
    )
    try {
      const port = { name: 'short linger', port: () => t.port(), creds: viaGateway.creds }
      const sub = await subscriber(port, 'rated', `${topic}/#`, v)
      const otherSub = await subscriber(port, 'other', `${topic}/#`, v)
      const raw = await rawConnect(t.port(), v)
      raw.send(
        connectPacket({
          protocolVersion: v,
          clientId,
          ...viaGateway.creds('rated'),
          will: { topic: `${topic}/will`, payload: Buffer.from('will'), qos: 1, retain: false },
        }),
      )
      assert.equal((await raw.next()).cmd, 'connack')
      raw.write(
        Buffer.concat([
          ...range(30, String).map((p) => gen(publish(`${topic}/x`, p, 0), v)),
          gen({ cmd: 'disconnect' }, v),
        ]),
      )
      raw.socket.end()
      const got = await collect(sub, 30, 2500)
      assert.deepEqual(got, range(got.length, String), 'what arrives arrives in order')
      assert.ok(got.length >= 5 && got.length < 30, `${got.length} forwarded in the linger`)
      await waitUntil(() => t.counters('rated')?.dropped.lingerExpired !== undefined)
      assert.equal(
        t.counters('rated')?.dropped.lingerExpired,
        30 - got.length,
        'every PUBLISH not forwarded is counted',
      )
      const line = t.logs.find((l) => l.dropped !== undefined)
      assert.ok(
        line !== undefined &&
          line.tenant === 'rated' &&
          line.clientId === clientId &&
          line.dropped === 30 - got.length &&
          line.reason === 'lingerExpired',
        JSON.stringify(line),
      )
      assert.equal(t.counters('other')?.dropped.lingerExpired, undefined, 'another tenant counts nothing')
      const { createMetrics } = await import('../src/admin/metrics.js')
      const metrics = createMetrics()
      metrics.attach(t)
      assert.match(
        await metrics.registry.getSingleMetricAsString('mqtt_gateway_dropped_total'),
        new RegExp(`mqtt_gateway_dropped_total\\{tenant="rated",reason="lingerExpired"\\} ${30 - got.length}`),
      )
      // Its DISCONNECT was still forwarded: the broker discarded the will.
      await quiet(sub)
      assert.ok(!sub.received.some((m) => m.topic === `${topic}/will`), 'no will')
      assert.equal(otherSub.received.length, 0)
      raw.end()
      await Promise.all([sub.end(), otherSub.end()])
    } finally {
      await t.close()
    }
  })
}

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
