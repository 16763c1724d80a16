// Clients across the cluster (issue #18 items 6 and 8) with two registries on a real redis-server: a
// tenant's list gathered from both gateways, a kick executed where the client is, and a claim telling
// the gateway holding the same tenant's client ID that it was taken over. Each gateway's local side is
// a table of clients standing for its sessions (the session wiring comes with the session core).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../src/log.js'
import type { ClientInfo } from '../src/gateway.js'
import { connectRedis, type ClusterRedis } from '../src/cluster/redis.js'
import { redisRegistry, type ClusterRegistry, type LocalClients } from '../src/cluster/registry.js'
import { startRedis, type RedisServer } from './helpers/redis.js'

const log = createLogger({ level: 'silent' })
let redis: RedisServer
const conns: ClusterRedis[] = []
const registries: ClusterRegistry[] = []

before(async () => {
  redis = await startRedis()
})
after(async () => {
  for (const r of registries) await r.close()
  for (const c of conns) await c.close()
  await redis.stop()
})

const info = (clientId: string): ClientInfo => ({
  clientId,
  username: null,
  remoteAddress: '127.0.0.1',
  remotePort: 1,
  listener: 'mqtt',
  protocol: 'MQTT 5',
  state: 'connected',
  connectedAt: '2026-01-01T00:00:00.000Z',
  subscriptions: 0,
  messagesIn: 0,
  messagesOut: 0,
  bytesIn: 0,
  bytesOut: 0,
})

class Table implements LocalClients {
  readonly sessions = new Map<string, ClientInfo[]>()
  readonly takeovers: string[] = []
  add(tenant: string, clientId: string): void {
    this.sessions.set(tenant, [...(this.sessions.get(tenant) ?? []), info(clientId)])
  }
  clients(tenant: string): ClientInfo[] {
    return this.sessions.get(tenant) ?? []
  }
  kick(tenant: string, clientId: string): number {
    const before = this.clients(tenant)
    this.sessions.set(
      tenant,
      before.filter((c) => c.clientId !== clientId),
    )
    return before.length - this.clients(tenant).length
  }
  takenOver(tenant: string, clientId: string, by: string): void {
    if (this.kick(tenant, clientId) > 0) this.takeovers.push(`${tenant}/${clientId} by ${by}`)
  }
}

async function gateway(name: string, db: number): Promise<{ table: Table; registry: ClusterRegistry }> {
  const conn = connectRedis(redis.url.replace(/\/0$/, `/${db}`), { log })
  conns.push(conn)
  assert.ok(await conn.ready(5000))
  const table = new Table()
  const registry = redisRegistry(conn, name, table)
  registries.push(registry)
  await registry.subscribed
  return { table, registry }
}

test("a tenant's clients listed from both gateways with their names; the other tenant's same IDs not", async () => {
  const a = await gateway('gw-a', 1)
  const b = await gateway('gw-b', 1)
  a.table.add('acme', 'sensor-1')
  b.table.add('acme', 'sensor-2')
  b.table.add('globex', 'sensor-1')
  const listed = (await a.registry.list('acme')).map((c) => `${c.clientId}@${c.gateway}`).sort()
  assert.deepEqual(listed, ['sensor-1@gw-a', 'sensor-2@gw-b'])
  assert.deepEqual(
    (await b.registry.list('globex')).map((c) => `${c.clientId}@${c.gateway}`),
    ['sensor-1@gw-b'],
  )
})

// The gateways of the first test still run, on another database of the same Redis: pub/sub ignores
// database numbers, so without the channel prefix they would answer (and kick their own sensor-1) too.
test("a kick reaches the client on the other gateway, and only that tenant's", async () => {
  const a = await gateway('gw-a', 2)
  const b = await gateway('gw-b', 2)
  b.table.add('acme', 'sensor-1')
  b.table.add('globex', 'sensor-1')
  assert.equal(await a.registry.kick('acme', 'sensor-1'), 1)
  assert.deepEqual(b.table.clients('acme'), [])
  assert.deepEqual(
    b.table.clients('globex').map((c) => c.clientId),
    ['sensor-1'],
  )
  assert.equal(await a.registry.kick('acme', 'sensor-1'), 0, 'nobody left to kick')
})

test("takeover across gateways: a claim through gw-a ends the same tenant's client ID on gw-b", async () => {
  const a = await gateway('gw-a', 3)
  const b = await gateway('gw-b', 3)
  b.table.add('acme', 'sensor-1')
  b.table.add('globex', 'sensor-1')
  const told = new Promise<void>((resolve) => {
    const takenOver = b.table.takenOver.bind(b.table)
    b.table.takenOver = (tenant, clientId, by) => {
      takenOver(tenant, clientId, by)
      resolve()
    }
  })
  await a.registry.claim('acme', 'sensor-1')
  await told
  assert.deepEqual(b.table.takeovers, ['acme/sensor-1 by gw-a'])
  assert.deepEqual(
    b.table.clients('globex').map((c) => c.clientId),
    ['sensor-1'],
    "globex's sensor-1 stays",
  )
  assert.deepEqual(a.table.takeovers, [], 'the claiming gateway does not take over from itself')
})
