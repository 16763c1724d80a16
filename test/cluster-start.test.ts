// A gateway's membership of a cluster started from its config (src/cluster/cluster.ts), on a real
// redis-server: two members share a tenant's limit, readiness follows Redis, and leaving frees the
// leaving gateway's slots at once (not after the lease TTL).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../src/log.js'
import { startCluster } from '../src/cluster/cluster.js'
import { startRedis, type RedisServer } from './helpers/redis.js'

const log = createLogger({ level: 'silent' })
let redis: RedisServer

before(async () => {
  redis = await startRedis()
})
after(async () => {
  await redis.stop()
})

test("two members share acme's maxConnections; one leaving frees its slots at once; readiness follows Redis", async () => {
  const a = startCluster({ redis: redis.url, name: 'gw-a', leaseTtl: 15_000 }, { log })
  const b = startCluster({ redis: redis.url, name: 'gw-b', leaseTtl: 15_000 }, { log })
  try {
    assert.ok(await a.redis.ready(5000))
    assert.ok(await b.redis.ready(5000))
    assert.equal(a.readiness(), 'reachable')
    const limits = { maxConnections: 2 }
    assert.ok((await a.leases.acquireConnection('acme', limits)).ok)
    assert.ok((await a.leases.acquireConnection('acme', limits)).ok)
    assert.deepEqual(await b.leases.acquireConnection('acme', limits), { ok: false, limit: 'maxConnections' })
    assert.ok((await b.leases.acquireConnection('globex', limits)).ok, 'globex has its own two')
    await a.close()
    assert.ok((await b.leases.acquireConnection('acme', limits)).ok, "gw-a's slots free as it leaves")
    const store = b.openStore(redis.url)
    await store.setTenantChanges('acme', { disabled: true })
    assert.deepEqual((await store.tenantChanges()).get('acme'), { disabled: true })
    await store.close()
    const gone = new Promise<void>((resolve) => {
      const off = b.redis.onState((s) => {
        if (s === 'unreachable') {
          off()
          resolve()
        }
      })
    })
    await redis.stop()
    await gone
    assert.equal(b.readiness(), 'unreachable')
  } finally {
    await a.close()
    await b.close()
    await redis.start()
  }
})
