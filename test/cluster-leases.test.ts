// Cluster-wide connection and subscription counts (issue #18, SPEC §11) against a real redis-server:
// two gateways' leases share one tenant's maxConnections and connectRate exactly, a dead gateway's
// slots come free within the lease TTL, and a Redis restart is survived by rebuilding the counts.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../src/log.js'
import { connectRedis, type ClusterRedis } from '../src/cluster/redis.js'
import { RedisLeases } from '../src/cluster/leases.js'
import { startRedis, type RedisServer } from './helpers/redis.js'

const log = createLogger({ level: 'silent' })
let redis: RedisServer
const opened: Array<{ close: () => Promise<void> }> = []

before(async () => {
  redis = await startRedis()
})
after(async () => {
  for (const o of opened.reverse()) await o.close()
  await redis.stop()
})

/** `db`: a Redis database of its own, so the gateways of other tests are not counted alive */
async function gateway(name: string, ttlMs = 15_000, db = 0): Promise<{ conn: ClusterRedis; leases: RedisLeases }> {
  const conn = connectRedis(redis.url.replace(/\/0$/, `/${db}`), { log })
  assert.ok(await conn.ready(5000), 'redis reachable')
  const leases = new RedisLeases(conn, { gateway: name, log, ttlMs })
  opened.push(conn, leases)
  return { conn, leases }
}

async function until(what: string, ok: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('maxConnections holds across two gateways, per tenant: the same limit for globex is counted apart', async () => {
  const a = await gateway('a1')
  const b = await gateway('b1')
  const limits = { maxConnections: 3 }
  assert.deepEqual(await a.leases.acquireConnection('acme', limits), { ok: true })
  assert.deepEqual(await a.leases.acquireConnection('acme', limits), { ok: true })
  assert.deepEqual(await b.leases.acquireConnection('acme', limits), { ok: true })
  assert.deepEqual(await b.leases.acquireConnection('acme', limits), { ok: false, limit: 'maxConnections' })
  assert.deepEqual(await a.leases.acquireConnection('acme', limits), { ok: false, limit: 'maxConnections' })
  // Another tenant with the same limit, through the same gateways, has its own three.
  for (const g of [a, b, a]) assert.deepEqual(await g.leases.acquireConnection('globex', limits), { ok: true })
  assert.deepEqual(await b.leases.acquireConnection('globex', limits), { ok: false, limit: 'maxConnections' })
  a.leases.releaseConnection('acme')
  await until('the slot given back', async () => (await b.leases.acquireConnection('acme', limits)).ok)
  assert.equal(a.leases.heldBy('conn', 'acme'), 1)
  assert.equal(b.leases.heldBy('conn', 'acme'), 2)
})

test('concurrent CONNECTs through two gateways take exactly maxConnections slots', async () => {
  const a = await gateway('a2')
  const b = await gateway('b2')
  const results = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      (i % 2 === 0 ? a : b).leases.acquireConnection('burst', { maxConnections: 25 }),
    ),
  )
  assert.equal(results.filter((r) => r.ok).length, 25)
  assert.equal(a.leases.heldBy('conn', 'burst') + b.leases.heldBy('conn', 'burst'), 25)
})

test("connectRate is one bucket across gateways (burst = one second's worth)", async () => {
  const a = await gateway('a3')
  const b = await gateway('b3')
  const limits = { connectRate: 3 }
  const results = [
    await a.leases.acquireConnection('rated', limits),
    await b.leases.acquireConnection('rated', limits),
    await a.leases.acquireConnection('rated', limits),
    await b.leases.acquireConnection('rated', limits),
  ]
  assert.deepEqual(
    results.map((r) => r.ok),
    [true, true, true, false],
  )
  assert.deepEqual(results[3], { ok: false, limit: 'connectRate' })
  // The other tenant's bucket is its own.
  assert.deepEqual(await b.leases.acquireConnection('other', limits), { ok: true })
})

test('CONNECTs of one event-loop turn are decided together as one after the other, in arrival order', async () => {
  const a = await gateway('a5')
  // maxConnections cuts first: the rest are refused for it, though tokens remain.
  const byMax = await Promise.all(
    Array.from({ length: 5 }, () => a.leases.acquireConnection('turn-max', { maxConnections: 2, connectRate: 10 })),
  )
  assert.deepEqual(byMax, [
    { ok: true },
    { ok: true },
    { ok: false, limit: 'maxConnections' },
    { ok: false, limit: 'maxConnections' },
    { ok: false, limit: 'maxConnections' },
  ])
  // The bucket runs dry first: the rest are refused for the rate, though slots remain.
  const byRate = await Promise.all(
    Array.from({ length: 5 }, () => a.leases.acquireConnection('turn-rate', { maxConnections: 10, connectRate: 3 })),
  )
  assert.deepEqual(
    byRate.map((r) => (r.ok ? 'ok' : r.limit)),
    ['ok', 'ok', 'ok', 'connectRate', 'connectRate'],
  )
  assert.equal(a.leases.heldBy('conn', 'turn-max'), 2)
  assert.equal(a.leases.heldBy('conn', 'turn-rate'), 3)
})

test('maxSubscriptions: the excess filters of a SUBSCRIBE are refused cluster-wide', async () => {
  const a = await gateway('a4')
  const b = await gateway('b4')
  assert.equal(await a.leases.acquireSubscriptions('acme', 3, 5), 3)
  assert.equal(await b.leases.acquireSubscriptions('acme', 4, 5), 2)
  assert.equal(await b.leases.acquireSubscriptions('globex', 4, 5), 4)
  a.leases.releaseSubscriptions('acme', 3)
  await until('filters given back', async () => (await b.leases.acquireSubscriptions('acme', 1, 5)) === 1)
})

test('a gateway that dies without a word frees its slots within the lease TTL (measured)', async () => {
  const ttlMs = 600
  const dead = await gateway('dead', ttlMs)
  const alive = await gateway('alive', ttlMs)
  const limits = { maxConnections: 2 }
  assert.ok((await dead.leases.acquireConnection('acme-ttl', limits)).ok)
  assert.ok((await dead.leases.acquireConnection('acme-ttl', limits)).ok)
  // SIGKILL, as Redis sees it: the connection drops and no heartbeat or release ever comes.
  dead.conn.commands.disconnect()
  dead.conn.subscriber.disconnect()
  const diedAt = Date.now()
  assert.deepEqual(await alive.leases.acquireConnection('acme-ttl', limits), { ok: false, limit: 'maxConnections' })
  await until(
    "the dead gateway's lease to expire",
    async () => (await alive.leases.acquireConnection('acme-ttl', limits)).ok,
    5000,
  )
  const freedAfter = Date.now() - diedAt
  assert.ok(freedAfter <= ttlMs + 200, `freed after ${freedAfter} ms, TTL ${ttlMs} ms`)
})

test('Redis restarted empty: gateways keep their connections, admit their share meanwhile, then rebuild the counts', async () => {
  const a = await gateway('a6', 1500, 6)
  const b = await gateway('b6', 1500, 6)
  const limits = { maxConnections: 6 }
  for (let i = 0; i < 2; i++) assert.ok((await a.leases.acquireConnection('acme-r', limits)).ok)
  assert.ok((await b.leases.acquireConnection('acme-r', limits)).ok)
  await until('a heartbeat that counts both gateways', () => a.leases.gatewaysAlive === 2)
  await redis.stop()
  await until('a sees Redis gone', () => a.conn.state === 'unreachable')
  const admittedAlone: boolean[] = []
  for (let i = 0; i < 4; i++) admittedAlone.push((await a.leases.acquireConnection('acme-r', limits)).ok)
  await redis.start()
  await until('a and b reachable again', () => a.conn.state === 'reachable' && b.conn.state === 'reachable')
  await until('counts rebuilt in Redis', async () => {
    const counts = await a.conn.commands.hgetall('mtg:{acme-r}:conn:counts')
    return counts.a6 === String(a.leases.heldBy('conn', 'acme-r')) && counts.b6 === '1'
  })
  const heldA = a.leases.heldBy('conn', 'acme-r')
  // Alone, a admitted up to its share of the two gateways (degradedShare): floor(6 / 2) = 3, one more than it had.
  assert.deepEqual(admittedAlone, [true, false, false, false])
  assert.equal(heldA, 3)
  // Cluster-wide again: 4 of 6 held, two more fit through either gateway, then none.
  assert.ok((await b.leases.acquireConnection('acme-r', limits)).ok)
  assert.ok((await a.leases.acquireConnection('acme-r', limits)).ok)
  assert.deepEqual(await b.leases.acquireConnection('acme-r', limits), { ok: false, limit: 'maxConnections' })
})
