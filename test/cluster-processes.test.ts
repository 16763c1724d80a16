// SPEC §11 with real gateway processes (`src/cli.ts start`), one redis-server and one mosquitto, as an
// operator runs them: a gateway SIGKILLed with clients connected gives its slots back once its leases
// run out (15 s) while the other's clients never notice; and haproxy balancing two gateways with PROXY
// protocol v2 keeps a tenant's maxConnections exact across both, shows each client's own address and
// gateway in the admin API, and keeps two tenants with the same client IDs and topics apart.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type net from 'node:net'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startRedis, type RedisServer } from './helpers/redis.js'
import { startHaproxy, type Haproxy } from './helpers/haproxy.js'
import { OPERATOR_TOKEN } from './helpers/service.js'
import { startGatewayProcess, type GatewayProcess } from './helpers/gateway-process.js'
import { connectClient, connectRefusal, quiet, type TestClient } from './helpers/clients.js'
import { nextEvent } from './helpers/events.js'

/** The gateways' `cluster.leaseTtl` (default 15 s): a dead gateway's slots are free by then. */
const LEASE_TTL_MS = 5000

let broker: Mosquitto
let redis: RedisServer
const gateways: GatewayProcess[] = []
const proxies: Haproxy[] = []
const clients: TestClient[] = []

before(async () => {
  broker = await startMosquitto()
  redis = await startRedis()
})
after(async () => {
  await Promise.all(clients.map((c) => c.end()))
  for (const p of proxies) await p.stop()
  await Promise.all(gateways.map((g) => g.stop()))
  await redis?.stop()
  await broker?.stop()
})

/**
 * Two gateways of one cluster (Redis database `db`, so each test has its own counts and channels),
 * each with a plain listener `mqtt`, a PROXY protocol listener `lb` and its admin API.
 */
async function startPair(db: number, names: [string, string], tenants: string): Promise<GatewayProcess[]> {
  const yaml = (name: string) => (ports: Record<string, number>) => `
listeners:
  - { name: mqtt, type: tcp, bind: "127.0.0.1:${ports.mqtt}" }
  - { name: lb, type: tcp, bind: "127.0.0.1:${ports.lb}", proxyProtocol: true }
upstream: { url: ${broker.url} }
cluster: { redis: "redis://127.0.0.1:${redis.port}/${db}", name: ${name}, leaseTtl: ${LEASE_TTL_MS}ms }
admin: { bind: "127.0.0.1:${ports.admin}", operatorToken: ${OPERATOR_TOKEN} }
log: { level: warn }
tenants:
${tenants}`
  const pair = await Promise.all(names.map((n) => startGatewayProcess(['mqtt', 'lb'], yaml(n))))
  gateways.push(...pair)
  for (const g of pair) await until(async () => (await g.api('/api/v1/ready')).status === 200, 'gateway ready')
  return pair
}

/** Waits (bounded) until `done` holds, polling. */
async function until(done: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const as = (tenant: string, clientId: string) => ({
  protocolVersion: 5 as const,
  username: `u@${tenant}`,
  password: 'p',
  clientId,
})

async function connect(port: number, tenant: string, clientId: string): Promise<TestClient> {
  const c = await connectClient(port, as(tenant, clientId))
  clients.push(c)
  return c
}

type Listed = { clientId: string; gateway: string; remoteAddress: string; remotePort: number; listener: string }

async function listed(g: GatewayProcess, tenant: string): Promise<Listed[]> {
  const r = await g.api(`/api/v1/tenants/${tenant}/clients`)
  assert.equal(r.status, 200)
  return (r.body as { clients: Listed[] }).clients
}

const mqttPort = (g: GatewayProcess | undefined): number => g?.ports.mqtt ?? 0

test("a gateway SIGKILLed with clients connected: its slots are free once its leases run out, the other's clients never notice", async () => {
  const [a, b] = await startPair(
    1,
    ['gw-a', 'gw-b'],
    '  fleet: { limits: { maxConnections: 4 }, users: { u: { password: "plain:p" } } }',
  )
  const sub = await connect(mqttPort(a), 'fleet', 'a-sub')
  const pub = await connect(mqttPort(a), 'fleet', 'a-pub')
  const onB = [await connect(mqttPort(b), 'fleet', 'b-1'), await connect(mqttPort(b), 'fleet', 'b-2')]
  let aDropped = 0
  for (const c of [sub, pub]) c.client.on('close', () => aDropped++)
  await sub.client.subscribeAsync('status/#', { qos: 1 })
  assert.equal(await connectRefusal(mqttPort(a), as('fleet', 'extra')), 0x97, 'full: four across both')
  assert.equal(await connectRefusal(mqttPort(b), as('fleet', 'extra')), 0x97)

  const bGone = onB.map((c) => nextEvent(c.client, 'close', 5000))
  await b?.kill()
  await Promise.all(bGone)
  const killedAt = Date.now()
  // gw-b's leases outlive it: its two slots are still counted…
  assert.equal(await connectRefusal(mqttPort(a), as('fleet', 'n-1')), 0x97, "right after the kill, gw-b's slots held")
  // …and gw-a's clients carry on as before.
  await pub.client.publishAsync('status/1', 'during', { qos: 1 })
  assert.equal((await sub.next((m) => m.topic === 'status/1')).payload, 'during')

  // Polled: the slots come free when gw-b's last lease deadline passes, 2/3 to 1 TTL after the kill.
  let fresh: TestClient | undefined
  await until(
    async () => {
      try {
        fresh = await connect(mqttPort(a), 'fleet', 'n-1')
        return true
      } catch (err) {
        if ((err as { code?: number }).code === 0x97) return false
        throw err
      }
    },
    "gw-b's slots freed within the lease TTL",
    LEASE_TTL_MS + 8000 - (Date.now() - killedAt),
  )
  assert.ok(fresh?.client.connected)
  // Exactly gw-b's two slots came back: one more fits, the next is refused.
  await connect(mqttPort(a), 'fleet', 'n-2')
  assert.equal(await connectRefusal(mqttPort(a), as('fleet', 'n-3')), 0x97)
  // The admin API lists the living: gw-a's four, none of the dead gateway's.
  assert.deepEqual(
    (await listed(a as GatewayProcess, 'fleet')).map((c) => [c.clientId, c.gateway]),
    [
      ['a-pub', 'gw-a'],
      ['a-sub', 'gw-a'],
      ['n-1', 'gw-a'],
      ['n-2', 'gw-a'],
    ],
  )
  await pub.client.publishAsync('status/2', 'after', { qos: 1 })
  assert.equal((await sub.next((m) => m.topic === 'status/2')).payload, 'after')
  assert.equal(aDropped, 0, "gw-a's clients stayed connected throughout")
})

test('haproxy (send-proxy-v2, round robin) in front of two gateways: limits exact across both, own addresses listed, tenants apart', async () => {
  const tenants = ['acme', 'globex']
    .map((t) => `  ${t}: { limits: { maxConnections: 4 }, users: { u: { password: "plain:p" } } }`)
    .join('\n')
  const [a, b] = (await startPair(2, ['gw-c', 'gw-d'], tenants)) as [GatewayProcess, GatewayProcess]
  const lb = await startHaproxy([{ name: 'mqtt', to: [a.ports.lb ?? 0, b.ports.lb ?? 0], send: 'send-proxy-v2' }])
  proxies.push(lb)
  const port = lb.ports.mqtt ?? 0

  const acme: TestClient[] = []
  for (let i = 1; i <= 4; i++) acme.push(await connect(port, 'acme', `dev-${i}`))
  // Round robin sends the fifth and the sixth to both gateways in turn: each refuses, the four are cluster-wide.
  assert.equal(await connectRefusal(port, as('acme', 'dev-5')), 0x97)
  assert.equal(await connectRefusal(port, as('acme', 'dev-6')), 0x97)
  const globex = [await connect(port, 'globex', 'dev-1'), await connect(port, 'globex', 'dev-2')]

  // Either gateway lists every client of the tenant, with the gateway holding it and the client's own
  // address and source port, as the PROXY header gave them (not haproxy's side of the connection).
  const own = (c: TestClient): number => (c.client.stream as net.Socket).localPort ?? -1
  for (const g of [a, b]) {
    const list = await listed(g, 'acme')
    assert.deepEqual(
      list.map((c) => [c.clientId, c.remoteAddress, c.remotePort, c.listener]),
      acme.map((c, i) => [`dev-${i + 1}`, '127.0.0.1', own(c), 'lb']),
    )
    assert.deepEqual(new Set(list.map((c) => c.gateway)), new Set(['gw-c', 'gw-d']), 'clients landed on both')
  }
  const where = async (tenant: string, clientId: string): Promise<string | undefined> =>
    (await listed(a, tenant)).find((c) => c.clientId === clientId)?.gateway
  assert.notEqual(await where('globex', 'dev-1'), await where('globex', 'dev-2'))

  // Same client IDs and topics in both tenants, on both gateways: each hears its own tenant only.
  const [acme1, acme2] = acme as [TestClient, TestClient]
  const [globex1, globex2] = globex as [TestClient, TestClient]
  for (const c of [acme1, globex1]) await c.client.subscribeAsync('sensors/#', { qos: 1 })
  await acme2.client.publishAsync('sensors/t1', 'from acme', { qos: 1 })
  assert.equal((await acme1.next()).payload, 'from acme')
  await globex2.client.publishAsync('sensors/t1', 'from globex', { qos: 1 })
  assert.equal((await globex1.next()).payload, 'from globex')
  await quiet(acme1, 300)
  assert.deepEqual(
    [acme1, globex1].map((c) => c.received.map((m) => m.payload)),
    [['from acme'], ['from globex']],
  )
  assert.ok(
    [...acme, ...globex].every((c) => c.client.connected),
    'nobody taken over by the other tenant',
  )
})
