// SPEC §11 from the outside: two gateways (each with its admin API) sharing one redis-server, in front
// of one mosquitto, with real MQTT clients. Limits hold across both, the admin API sees and kicks clients
// wherever they are, a takeover through the other gateway says 0x8E, and Redis stopped under traffic
// degrades to each gateway's share without dropping anyone, then cluster-wide again once it is back.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { IDisconnectPacket } from 'mqtt'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startRedis, type RedisServer } from './helpers/redis.js'
import { OPERATOR_TOKEN, startTestService, type TestService } from './helpers/service.js'
import { connectClient, connectRefusal, type TestClient } from './helpers/clients.js'
import { nextEvent } from './helpers/events.js'

let broker: Mosquitto
let redis: RedisServer
let a: TestService
let b: TestService

const yaml = (name: string): string => `
listeners:
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
upstream:
  url: ${broker.url}
cluster:
  redis: ${redis.url}
  name: ${name}
admin:
  bind: "127.0.0.1:0"
  operatorToken: ${OPERATOR_TOKEN}
tenants:
  acme:
    limits: { maxConnections: 3 }
    users: { u: { password: "plain:p" } }
  globex:
    limits: { maxConnections: 3 }
    users: { u: { password: "plain:p" } }
  crowd:
    limits: { maxConnections: 4 }
    users: { u: { password: "plain:p" } }
  open:
    users: { u: { password: "plain:p" } }
  s1:
    limits: { maxSubscriptions: 3 }
    users: { u: { password: "plain:p" } }
  s2:
    limits: { maxSubscriptions: 3 }
    users: { u: { password: "plain:p" } }
`

before(async () => {
  broker = await startMosquitto()
  redis = await startRedis()
  a = await startTestService(yaml('gw-a'))
  b = await startTestService(yaml('gw-b'))
})
after(async () => {
  await a?.close()
  await b?.close()
  await redis?.stop()
  await broker?.stop()
})

const as = (tenant: string, clientId: string, protocolVersion: 4 | 5 = 5) => ({
  protocolVersion,
  username: `u@${tenant}`,
  password: 'p',
  clientId,
})

async function endAll(clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end()))
}

/** Waits (bounded) until `done` holds; for states only observable by asking (Redis seen gone or back). */
async function until(done: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const clusterState = async (s: TestService): Promise<unknown> => {
  const r = await s.api('/api/v1/ready', { token: null })
  assert.equal(r.status, 200, "the cluster's state never makes a gateway unready")
  return (r.body as { cluster?: string }).cluster
}

test('maxConnections holds across both gateways exactly, per tenant with the same client IDs', async () => {
  const held: TestClient[] = []
  try {
    for (const tenant of ['acme', 'globex']) {
      held.push(await connectClient(a.mqttPort, as(tenant, 'c1')))
      held.push(await connectClient(b.mqttPort, as(tenant, 'c2')))
      held.push(await connectClient(a.mqttPort, as(tenant, 'c3')))
    }
    for (const tenant of ['acme', 'globex']) {
      assert.equal(
        await connectRefusal(b.mqttPort, as(tenant, 'c4')),
        0x97,
        `${tenant}'s fourth, through the other gateway`,
      )
      assert.equal(await connectRefusal(a.mqttPort, as(tenant, 'c4', 4)), 0x03)
    }
    await held[1]?.end() // acme c2 on gw-b
    // gw-b gives the slot back to Redis just after the socket closes, not before the client sees it close.
    await until(async () => {
      try {
        held.push(await connectClient(a.mqttPort, as('acme', 'c4')))
        return true
      } catch (err) {
        if ((err as { code?: number }).code === 0x97) return false
        throw err
      }
    }, "acme's freed slot")
    assert.equal(await connectRefusal(b.mqttPort, as('acme', 'c5')), 0x97, 'the freed slot was taken once')
  } finally {
    await endAll(held)
  }
})

/** The SUBACK codes a subscription of `filters` gets (QoS 0 asked: 0 granted, 0x97 quota, …). */
async function suback(c: TestClient, filters: string[]): Promise<number[]> {
  try {
    return (await c.client.subscribeAsync(filters, { qos: 0 })).map((g) => g.qos)
  } catch (err) {
    // MQTT.js rejects a v5 SUBACK with any failure code, the packet attached.
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted
    if (granted === undefined) throw err
    return granted
  }
}

test('maxSubscriptions holds across both gateways, per tenant; unsubscribed and taken-over slots come back', async () => {
  const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } }
  const held: TestClient[] = []
  try {
    const c1 = await connectClient(a.mqttPort, { ...as('s1', 'c1'), ...persistent })
    const c2 = await connectClient(b.mqttPort, as('s1', 'c2'))
    held.push(c1, c2)
    assert.deepEqual(await suback(c1, ['f/a', 'f/b']), [0, 0])
    assert.deepEqual(await suback(c2, ['f/c', 'f/d']), [0, 0x97], "s1's third and fourth, through the other gateway")
    assert.deepEqual(await suback(c1, ['f/a']), [0], 'a resubscription takes no new slot')
    // The same client IDs and filters in another tenant: its own three.
    const o1 = await connectClient(a.mqttPort, as('s2', 'c1'))
    const o2 = await connectClient(b.mqttPort, as('s2', 'c2'))
    held.push(o1, o2)
    assert.deepEqual(await suback(o1, ['f/a', 'f/b']), [0, 0])
    assert.deepEqual(await suback(o2, ['f/c', 'f/d']), [0, 0x97])

    await c1.client.unsubscribeAsync('f/b')
    // gw-a gives the slot back to Redis as the UNSUBACK goes out; gw-b may ask just before it lands.
    await until(async () => (await suback(c2, ['f/d']))[0] === 0, "s1's freed slot, through gw-b")
    assert.deepEqual(await suback(c2, ['f/e']), [0x97], 'the freed slot was taken once')

    // c1's persistent session ends on gw-a: its filter stays at the broker, and counted.
    await c1.end()
    held.shift()
    assert.deepEqual(await suback(c2, ['f/e']), [0x97], "the parked session's filter still counts")
    // c1 comes back through gw-b: gw-a stops counting the session it parked, and c1's own filter, subscribed
    // again, is counted once, by gw-b.
    const back = await connectClient(b.mqttPort, { ...as('s1', 'c1'), ...persistent })
    held.push(back)
    assert.deepEqual(await suback(back, ['f/a']), [0], 'counted once, not twice')
    assert.deepEqual(await suback(back, ['f/z']), [0x97], 'and the tenant is full again')
  } finally {
    await endAll(held)
  }
})

test("the admin API lists a tenant's clients on every gateway and kicks one on the other (0x98)", async () => {
  const onA = await connectClient(a.mqttPort, as('acme', 'here'))
  const onB = await connectClient(b.mqttPort, as('acme', 'there'))
  const globex = await connectClient(b.mqttPort, as('globex', 'there'))
  try {
    const list = await a.api('/api/v1/tenants/acme/clients')
    assert.equal(list.status, 200)
    const clients = (list.body as { clients: Array<{ clientId: string; gateway?: string }> }).clients
    assert.deepEqual(
      clients.map((c) => [c.clientId, c.gateway]),
      [
        ['here', 'gw-a'],
        ['there', 'gw-b'],
      ],
    )
    const one = await a.api('/api/v1/tenants/acme/clients/there')
    assert.equal((one.body as { gateway?: string }).gateway, 'gw-b')

    const kicked = nextEvent<IDisconnectPacket>(onB.client, 'disconnect')
    assert.equal((await a.api('/api/v1/tenants/acme/clients/there', { method: 'DELETE' })).status, 204)
    assert.equal((await kicked).reasonCode, 0x98)
    assert.ok(globex.client.connected, "globex's client with the same ID stays")
    assert.equal((await a.api('/api/v1/tenants/acme/clients/there', { method: 'DELETE' })).status, 404)
  } finally {
    await endAll([onA, onB, globex])
  }
})

test("/metrics: every series carries the gateway's name, so the gateways' series sum to cluster totals", async () => {
  const c = await connectClient(b.mqttPort, as('globex', 'metered'))
  try {
    const series = (s: TestService): Promise<string[]> =>
      s.api('/metrics').then((r) => r.text.split('\n').filter((l) => l.startsWith('mqtt_gateway_connections{')))
    assert.ok((await series(b)).includes('mqtt_gateway_connections{tenant="globex",gateway="gw-b"} 1'))
    assert.ok(!(await series(a)).some((l) => l.includes('tenant="globex"') && l.endsWith(' 1')), 'gw-a holds none')
    assert.ok((await series(a)).every((l) => l.includes('gateway="gw-a"')))
  } finally {
    await c.end()
  }
})

test('a takeover through the other gateway gives the old v5 client 0x8E; the new one works', async () => {
  const old = await connectClient(a.mqttPort, as('open', 'dev'))
  const globex = await connectClient(a.mqttPort, as('globex', 'dev'))
  const taken = nextEvent<IDisconnectPacket>(old.client, 'disconnect')
  const fresh = await connectClient(b.mqttPort, as('open', 'dev'))
  try {
    assert.equal((await taken).reasonCode, 0x8e)
    await fresh.client.subscribeAsync('t/#', { qos: 1 })
    await fresh.client.publishAsync('t/x', 'hi', { qos: 1 })
    assert.equal((await fresh.next()).payload, 'hi')
    assert.ok(globex.client.connected, "another tenant's client with the same ID is not taken over")
  } finally {
    await endAll([old, globex, fresh])
  }
})

test('a tenant disabled through one gateway is disconnected on the other', async () => {
  const c = await connectClient(b.mqttPort, as('globex', 'far'))
  try {
    const gone = nextEvent(c.client, 'close', 5000)
    assert.equal((await a.api('/api/v1/tenants/globex/disable', { method: 'POST' })).status, 200)
    await gone
    assert.equal(await connectRefusal(b.mqttPort, as('globex', 'far')), 0x87)
  } finally {
    await a.api('/api/v1/tenants/globex/enable', { method: 'POST' })
    await c.end()
  }
})

test('Redis stopped under traffic: clients keep working, new ones get the share; back: cluster-wide again', async () => {
  const held: TestClient[] = []
  try {
    const sub = await connectClient(a.mqttPort, as('open', 'sub'))
    held.push(sub)
    await sub.client.subscribeAsync('live/#', { qos: 1 })
    assert.equal(await clusterState(a), 'reachable')

    await redis.stop()
    await until(
      async () => (await clusterState(a)) === 'unreachable' && (await clusterState(b)) === 'unreachable',
      'Redis seen gone',
    )
    const pub = await connectClient(b.mqttPort, as('open', 'pub'))
    held.push(pub)
    await pub.client.publishAsync('live/1', 'while Redis is away', { qos: 1 })
    assert.equal((await sub.next()).payload, 'while Redis is away')

    // crowd (maxConnections 4) with two gateways alive: gw-b admits its share, two.
    held.push(await connectClient(b.mqttPort, as('crowd', 'd1')))
    held.push(await connectClient(b.mqttPort, as('crowd', 'd2')))
    assert.equal(await connectRefusal(b.mqttPort, as('crowd', 'd3')), 0x97)

    await redis.start() // empty: the counts are rebuilt from the live connections
    await until(
      async () => (await clusterState(a)) === 'reachable' && (await clusterState(b)) === 'reachable',
      'Redis seen back',
    )
    held.push(await connectClient(a.mqttPort, as('crowd', 'd3')))
    held.push(await connectClient(a.mqttPort, as('crowd', 'd4')))
    assert.equal(await connectRefusal(a.mqttPort, as('crowd', 'd5')), 0x97, "gw-b's two counted again")
    assert.ok(sub.client.connected && pub.client.connected, 'nobody was dropped')
    await pub.client.publishAsync('live/2', 'after', { qos: 1 })
    assert.equal((await sub.next()).payload, 'after')
  } finally {
    await endAll(held)
  }
})
