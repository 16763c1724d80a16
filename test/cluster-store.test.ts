// The admin store's contract, run against both stores: SQLite (one gateway) and Redis (a cluster),
// with a real redis-server; then the Redis store's change feed between two gateways (issue #18 item 5).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../src/log.js'
import { connectRedis, type ClusterRedis } from '../src/cluster/redis.js'
import { openRedisStore, type StoreChange } from '../src/store/redis.js'
import { openSqliteStore } from '../src/store/sqlite.js'
import type { ApiKeyRecord, Store, UsageRecord } from '../src/store/store.js'
import { startRedis, type RedisServer } from './helpers/redis.js'

const log = createLogger({ level: 'silent' })
let redis: RedisServer
const conns: ClusterRedis[] = []

before(async () => {
  redis = await startRedis()
})
after(async () => {
  for (const c of conns) await c.close()
  await redis.stop()
})

let db = 0
async function redisConn(database: number): Promise<ClusterRedis> {
  const c = connectRedis(redis.url.replace(/\/0$/, `/${database}`), { log })
  conns.push(c)
  assert.ok(await c.ready(5000))
  return c
}

const STORES: Array<[string, () => Promise<Store>]> = [
  ['sqlite', async () => openSqliteStore(join(mkdtempSync(join(tmpdir(), 'mtg-store-')), 'state.db'))],
  ['redis', async () => openRedisStore(await redisConn(++db), 'gw-a')],
]

const HOUR = 3_600_000
const row = (tenant: string, hour: number, n: number, peak: number): UsageRecord => ({
  tenant,
  hour,
  sessionMs: n * 1000,
  messagesIn: n,
  messagesOut: 2 * n,
  bytesIn: 10 * n,
  bytesOut: 20 * n,
  peakConnections: peak,
  limitHits: n,
})
const key = (id: string, tenant: string, createdAt: string): ApiKeyRecord => ({
  id,
  tenant,
  secretHash: `h-${id}`,
  label: id,
  createdAt,
})

for (const [name, open] of STORES) {
  describe(`${name} store`, () => {
    test('tenant changes: set, replace, forget; two tenants kept apart', async () => {
      const s = await open()
      await s.setTenantChanges('acme', { limits: { maxConnections: 5 }, users: { bob: null } })
      await s.setTenantChanges('globex', { created: true, disabled: true })
      await s.setTenantChanges('acme', { plan: 'pro' })
      assert.deepEqual(
        await s.tenantChanges(),
        new Map<string, unknown>([
          ['acme', { plan: 'pro' }],
          ['globex', { created: true, disabled: true }],
        ]),
      )
      await s.setTenantChanges('acme', undefined)
      assert.deepEqual([...(await s.tenantChanges()).keys()], ['globex'])
      await s.close()
    })

    test('plan changes: a version and a deletion', async () => {
      const s = await open()
      await s.setPlanChange('pro', { maxConnections: 10 })
      await s.setPlanChange('free', null)
      await s.setPlanChange('pro', { maxConnections: 20 })
      assert.deepEqual(
        await s.planChanges(),
        new Map<string, unknown>([
          ['pro', { maxConnections: 20 }],
          ['free', null],
        ]),
      )
      await s.close()
    })

    test('API keys: listed oldest first, per tenant, one by id, deleted alone or per tenant', async () => {
      const s = await open()
      await s.addApiKey(key('k2', 'acme', '2026-01-02T00:00:00.000Z'))
      await s.addApiKey(key('k1', 'acme', '2026-01-01T00:00:00.000Z'))
      await s.addApiKey(key('k3', 'globex', '2026-01-01T00:00:00.000Z'))
      await assert.rejects(s.addApiKey(key('k1', 'globex', '2026-01-03T00:00:00.000Z')), 'an id is never reused')
      assert.deepEqual(
        (await s.apiKeys()).map((k) => k.id),
        ['k1', 'k3', 'k2'],
      )
      assert.deepEqual(
        (await s.apiKeys('acme')).map((k) => k.id),
        ['k1', 'k2'],
      )
      assert.deepEqual(await s.apiKey('k3'), key('k3', 'globex', '2026-01-01T00:00:00.000Z'))
      assert.equal(await s.apiKey('nope'), undefined)
      assert.equal(await s.deleteApiKey('k1'), true)
      assert.equal(await s.deleteApiKey('k1'), false)
      await s.deleteApiKeysOf('acme')
      assert.deepEqual(
        (await s.apiKeys()).map((k) => k.id),
        ['k3'],
      )
      await s.close()
    })

    test('usage: deltas add up per tenant and hour, the peak is a maximum; queried by range and tenant; pruned', async () => {
      const s = await open()
      const h0 = 1_700_000_000_000 - (1_700_000_000_000 % HOUR)
      await s.addUsage([row('acme', h0, 1, 3), row('globex', h0, 5, 1)])
      await s.addUsage([row('acme', h0, 2, 2), row('acme', h0 + HOUR, 1, 7)])
      const all = await s.usage({ from: h0, to: h0 + 2 * HOUR })
      assert.deepEqual(all, [{ ...row('acme', h0, 3, 3) }, row('globex', h0, 5, 1), row('acme', h0 + HOUR, 1, 7)])
      assert.deepEqual(await s.usage({ tenant: 'acme', from: h0 + HOUR, to: h0 + 2 * HOUR }), [
        row('acme', h0 + HOUR, 1, 7),
      ])
      assert.deepEqual(
        await s.usage({ tenant: 'acme', from: h0, to: h0 + HOUR }),
        [row('acme', h0, 3, 3)],
        'to is exclusive',
      )
      assert.equal(await s.pruneUsage(h0 + HOUR), 2)
      assert.deepEqual(
        (await s.usage({ from: 0, to: h0 + 2 * HOUR })).map((u) => u.tenant),
        ['acme'],
      )
      await s.close()
    })
  })
}

test('redis store: a change made through one gateway reaches the other within a second', async () => {
  const database = ++db
  const a = openRedisStore(await redisConn(database), 'gw-a')
  const b = openRedisStore(await redisConn(database), 'gw-b')
  const seen: Array<StoreChange & { gateway: string }> = []
  const arrived = new Promise<void>((resolve) =>
    b.onChange((c) => {
      seen.push(c)
      if (seen.length === 2) resolve()
    }),
  )
  // A published message reaches only current subscribers.
  await b.subscribed
  const start = Date.now()
  await a.setTenantChanges('acme', { disabled: true })
  await a.addApiKey(key('kx', 'acme', '2026-01-01T00:00:00.000Z'))
  await arrived
  const took = Date.now() - start
  assert.deepEqual(seen, [
    { kind: 'tenant', name: 'acme', gateway: 'gw-a' },
    { kind: 'keys', name: 'acme', gateway: 'gw-a' },
  ])
  assert.ok(took < 1000, `applied after ${took} ms`)
  assert.deepEqual((await b.tenantChanges()).get('acme'), { disabled: true })
  assert.equal((await b.apiKey('kx'))?.tenant, 'acme')
  await a.close()
  await b.close()
})

test('redis store: after Redis was away, the feed says to re-read everything (what was published meanwhile is gone)', async () => {
  const s = openRedisStore(await redisConn(++db), 'gw-b')
  await s.subscribed
  const resync = new Promise<StoreChange>((resolve) =>
    s.onChange((c) => {
      if (c.kind === 'all') resolve(c)
    }),
  )
  await redis.stop()
  await redis.start()
  assert.deepEqual(await resync, { kind: 'all', name: '', gateway: 'gw-b' })
  await s.close()
})
