// publishRate as one budget across two gateways (issue #18 item 2), against a real redis-server: a
// flood through both passes at most rate × time + burst + the documented overshoot without a pause,
// where two separate budgets would let twice the burst through; another tenant's budget is its own.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import { createLogger } from '../src/log.js'
import { connectRedis, type ClusterRedis } from '../src/cluster/redis.js'
import { SharedBudget } from '../src/cluster/budget.js'
import { overshootBound } from '../src/cluster/batch.js'
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

async function budget(): Promise<SharedBudget> {
  const c = connectRedis(redis.url, { log })
  conns.push(c)
  assert.ok(await c.ready(5000))
  return new SharedBudget(c, { gateways: () => 2 })
}

/** PUBLISHes through both gateways alternately; how many went on without a pause, and in how long. */
async function flood(
  a: SharedBudget,
  b: SharedBudget,
  tenant: string,
  n: number,
  limits: { rate: number },
): Promise<{ free: number; ms: number }> {
  const start = Date.now()
  let free = 0
  for (let i = 0; i < n; i++) {
    if ((i % 2 === 0 ? a : b).charge(tenant, 'publish', 1, limits) === 0) free++
    await tick() // the batches' answers come in between, as between a socket's reads
  }
  return { free, ms: Date.now() - start }
}

test('a burst through two gateways stays within rate × time + burst + overshootBound (measured)', async () => {
  const a = await budget()
  const b = await budget()
  const limits = { rate: 100 }
  const { free, ms } = await flood(a, b, 'acme', 600, limits)
  const bound = limits.rate + (limits.rate * ms) / 1000 + overshootBound(limits.rate, 2)
  assert.ok(free <= bound, `${free} PUBLISH without a pause in ${ms} ms; bound ${bound}`)
  // A batch that takes the bucket into debt waits whole, so each gateway may pause up to a batch early.
  assert.ok(free >= limits.rate - overshootBound(limits.rate, 2), `the burst itself passes (${free})`)
  // The same flood for another tenant right after: its own budget, untouched by acme's debt.
  const other = await flood(a, b, 'globex', 100, limits)
  assert.ok(other.free >= limits.rate - overshootBound(limits.rate, 2), `globex passed ${other.free} of 100`)
})
