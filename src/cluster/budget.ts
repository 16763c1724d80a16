// A tenant's publishRate and bandwidth as one budget across the cluster: a token bucket with debt in
// Redis, taken in batches (see batch.ts for the arithmetic and the overshoot bound). charge() answers at
// once from the local pool — how long to stop reading the client, as the single-gateway limiter does
// (SPEC §7: nothing lost, back-pressure) — and takes the next batch from Redis in the background.
// Redis unreachable: each gateway paces alone at rate / gateways (its share), with the same debt rule.
import { batchSize, chargeBucket, lowWater, maxBatch } from './batch.js'
import { luaScript, type ClusterRedis } from './redis.js'

export type BudgetKind = 'publish' | 'bytes'

export interface BudgetLimits {
  /** tokens per second: PUBLISH packets (publishRate) or inbound bytes (bandwidth) */
  rate: number
  /** default: one second's worth */
  burst?: number
}

// KEYS: bucket; ARGV: rate, burst, n → { wait ms, tokens left }. Mirrors chargeBucket (batch.ts).
const CHARGE = luaScript(`local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000) - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
local wait = 0
if tokens < 0 then wait = math.ceil(-tokens * 1000 / rate) end
return {wait, tostring(tokens)}`)

interface Pool {
  /** tokens taken from Redis and not spent; negative: spent on credit */
  tokens: number
  /** the budget's debt says: nothing more before this time (ms) */
  notBefore: number
  taking: boolean
  /** spending in the current second, and the last second's, for the batch size */
  spent: number
  lastRate: number
  windowStart: number
  /** the local bucket used while Redis is unreachable */
  local: { tokens: number; at: number } | undefined
}

export interface SharedBudgetOptions {
  /** gateways alive (RedisLeases.gatewaysAlive): the share while Redis is away, and the batch bound */
  gateways: () => number
  now?: () => number
}

export class SharedBudget {
  /** by kind, then tenant: no key string built per PUBLISH */
  private readonly pools: Record<BudgetKind, Map<string, Pool>> = { publish: new Map(), bytes: new Map() }
  private readonly now: () => number

  constructor(
    private readonly redis: ClusterRedis,
    private readonly opts: SharedBudgetOptions,
  ) {
    this.now = opts.now ?? Date.now
  }

  /**
   * Charges `n` tokens (1 per PUBLISH, or its size in bytes) to the tenant's budget before forwarding.
   * Returns how long to stop reading the client's socket (0: go on). Never waits for Redis.
   */
  charge(tenant: string, kind: BudgetKind, n: number, limits: BudgetLimits): number {
    const now = this.now()
    let pool = this.pools[kind].get(tenant)
    if (pool === undefined) {
      pool = { tokens: 0, notBefore: 0, taking: false, spent: 0, lastRate: 0, windowStart: now, local: undefined }
      this.pools[kind].set(tenant, pool)
    }
    if (now - pool.windowStart >= 1000) {
      pool.lastRate = (pool.spent * 1000) / (now - pool.windowStart)
      pool.spent = 0
      pool.windowStart = now
    }
    pool.spent += n
    pool.tokens -= n
    const burst = limits.burst ?? limits.rate
    const gateways = Math.max(1, this.opts.gateways())
    const batch = batchSize({
      rate: limits.rate,
      burst,
      gateways,
      recentRate: Math.max(pool.lastRate, pool.spent),
      horizonMs: 100,
    })
    if (pool.tokens < lowWater(batch) && !pool.taking)
      this.take(kind, tenant, pool, Math.max(batch, batch - pool.tokens), limits.rate, burst, gateways)
    let wait = Math.max(0, pool.notBefore - now)
    // Credit is one batch: past it, pace on this gateway's share until Redis answers.
    const credit = maxBatch(burst, gateways)
    if (pool.tokens < -credit)
      wait = Math.max(wait, Math.ceil(((-pool.tokens - credit) * 1000 * gateways) / limits.rate))
    return wait
  }

  private take(
    kind: BudgetKind,
    tenant: string,
    pool: Pool,
    want: number,
    rate: number,
    burst: number,
    gateways: number,
  ): void {
    pool.taking = true
    const done = (waitMs: number): void => {
      pool.tokens += want
      pool.notBefore = Math.max(pool.notBefore, this.now() + waitMs)
      pool.taking = false
    }
    if (this.redis.state !== 'reachable') {
      done(this.takeLocally(pool, want, rate / gateways, burst / gateways))
      return
    }
    CHARGE(this.redis.commands, [`mtg:{${tenant}}:budget:${kind}`], [rate, burst, want]).then(
      (reply) => {
        done(Number((reply as [number, string])[0]))
      },
      () => {
        done(this.takeLocally(pool, want, rate / gateways, burst / gateways))
      },
    )
  }

  private takeLocally(pool: Pool, want: number, rate: number, burst: number): number {
    const now = this.now()
    const local = pool.local ?? { tokens: burst, at: now }
    const charged = chargeBucket(local.tokens, now - local.at, rate, burst, want)
    pool.local = { tokens: charged.tokens, at: now }
    return charged.waitMs
  }
}
