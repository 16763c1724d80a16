// Tenant counts that hold across the cluster, exactly: connections (maxConnections, connectRate) and
// subscriptions (maxSubscriptions). Each gateway holds a lease per tenant in Redis: its count, and a
// deadline its heartbeat pushes forward. A check-and-take is one Lua script (one round trip), so two
// gateways can never both take the last slot. A gateway that dies stops its heartbeat; its leases run
// out after `ttlMs` and the next check drops them, so a SIGKILLed gateway's slots are free within ttlMs.
//
// Redis unreachable: each gateway admits against its last known share — the limit split evenly among
// the gateways alive at the last heartbeat, floor(limit / gateways), and connectRate / gateways —
// counting its own connections; connections it already holds stay whatever the share. The cluster
// total then stays within max(limit, what was held when Redis went). When Redis is back, each gateway
// writes its live counts (a sync), and the limits are cluster-wide again without dropping anyone.
// Longer than ~300 lines because the Lua scripts and the TypeScript that calls them are read together.
import type { Logger } from '../log.js'
import { perTurn } from './per-turn.js'
import { luaScript, type ClusterRedis } from './redis.js'

export type LeaseResource = 'conn' | 'subs'

export type Admission = { ok: true } | { ok: false; limit: 'maxConnections' | 'connectRate' }

export interface ConnectionLimits {
  maxConnections?: number | undefined
  connectRate?: number | undefined
}

/** What the session core calls; the Redis implementation below, a memory one is the gateway's own counting. */
export interface ClusterLeases {
  /** at CONNECT, after authentication and before dialing the broker; one `releaseConnection` per ok */
  acquireConnection(tenant: string, limits: ConnectionLimits): Promise<Admission>
  /** at session end (any cause), once per admitted connection */
  releaseConnection(tenant: string): void
  /**
   * at SUBSCRIBE: how many of `want` new filters fit under maxSubscriptions (tenant total); release what was granted
   */
  acquireSubscriptions(tenant: string, want: number, maxSubscriptions: number | undefined): Promise<number>
  /** at UNSUBSCRIBE and session end, for filters counted by acquireSubscriptions */
  releaseSubscriptions(tenant: string, n: number): void
  close(): Promise<void>
}

const KEY = (resource: LeaseResource, tenant: string): [string, string, string] =>
  // The hash tag keeps one tenant's keys in one slot (Redis Cluster): one script touches them together.
  [`mtg:{${tenant}}:${resource}:counts`, `mtg:{${tenant}}:${resource}:leases`, `mtg:{${tenant}}:${resource}:rate`]
const GATEWAYS = 'mtg:gateways'

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`
// KEYS: counts (hash gateway → held), leases (zset gateway → deadline ms), rate bucket (hash)
// ARGV: gateway, want, max (-1: none), rate (-1: none), ttlMs, each (1: `want` connections, each one
// rate token, as `want` takes one after the other; 0: `want` subscriptions, one token in all)
// → { granted, total after, why the rest was refused (0 | 1 max | 2 rate) }
const TAKE = luaScript(`${NOW}
local gw, want, max, rate, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local each = ARGV[6] == '1'
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, g in ipairs(dead) do redis.call('HDEL', KEYS[1], g) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
local grant, cut = want, 0
if max >= 0 and max - total < want then grant, cut = math.max(0, max - total), 1 end
if grant == 0 then return {0, total, 1} end
if rate > 0 then
  local burst = math.max(1, rate)
  local b = redis.call('HMGET', KEYS[3], 'tokens', 'ts')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  -- one after the other, the take that finds no token is refused for the rate, and so is every later one
  local spend = 1
  if each then spend = math.min(grant, math.floor(tokens)) elseif tokens < 1 then spend = 0 end
  if each and spend < grant then grant, cut = spend, 2 end
  if spend > 0 then tokens = tokens - spend end
  redis.call('HSET', KEYS[3], 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[3], math.ceil(burst * 1000 / rate) + 1000)
  if spend == 0 then return {0, total, 2} end
end
redis.call('HINCRBY', KEYS[1], gw, grant)
redis.call('ZADD', KEYS[2], now + ttl, gw)
return {grant, total + grant, cut}`)

// KEYS: counts, leases; ARGV: gateway, n
const GIVE_BACK = luaScript(`
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('ZREM', KEYS[2], ARGV[1]) end
return left`)

// KEYS: counts, leases; ARGV: gateway, held, ttlMs — this gateway's count as its live sessions say
const SET = luaScript(`${NOW}
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
else
  redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1`)

// KEYS: gateways; ARGV: gateway, ttlMs → gateways alive
const BEAT = luaScript(`${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])`)

/** What a take got: the first `granted` of those asked for; the rest were refused for `refusal`. */
interface Taken {
  granted: number
  refusal: 'max' | 'rate'
}

export interface RedisLeasesOptions {
  /** this gateway's name in the cluster */
  gateway: string
  log: Logger
  /** how long a silent gateway's leases last (default 15 s); the heartbeat runs every third of it */
  ttlMs?: number
}

/** A gateway's even share of a limit while Redis is unreachable (see the file's head). */
export function degradedShare(limit: number, gateways: number): number {
  return Math.floor(limit / Math.max(1, gateways))
}

export class RedisLeases implements ClusterLeases {
  readonly ttlMs: number
  /** held by this gateway, by `${resource} ${tenant}`: the truth a sync writes to Redis */
  private readonly held = new Map<string, number>()
  /** gateways alive at the last heartbeat, for the degraded share */
  private gateways = 1
  /** Redis may disagree with `held` (a failed command, admissions while unreachable, a restart) */
  private dirty = false
  private inFlight = 0
  private drained: (() => void) | undefined
  private syncing: Promise<void> | undefined
  private beating: Promise<void> | undefined
  /** local connectRate buckets used while Redis is unreachable */
  private readonly localRate = new Map<string, { tokens: number; at: number }>()
  /** given back in `held` and not yet in Redis, by `${resource} ${tenant}` (see giveBack) */
  private readonly givingBack = new Map<string, number>()
  private flushing = false
  private readonly timer: NodeJS.Timeout
  private readonly offState: () => void

  constructor(
    private readonly redis: ClusterRedis,
    private readonly opts: RedisLeasesOptions,
  ) {
    this.ttlMs = opts.ttlMs ?? 15_000
    this.timer = setInterval(
      () => {
        void this.heartbeat()
      },
      Math.max(100, Math.floor(this.ttlMs / 3)),
    )
    this.timer.unref()
    this.offState = redis.onState((s) => {
      if (s === 'reachable') {
        this.dirty = true
        void this.heartbeat()
      }
    })
    void this.heartbeat()
  }

  /**
   * The CONNECTs of one turn of the event loop for the same tenant and limits are checked together: one
   * TAKE of n, which decides them as n takes one after the other would (in arrival order), instead of n
   * round trips. Under a connection storm that is one command for many CONNECTs.
   */
  async acquireConnection(tenant: string, limits: ConnectionLimits): Promise<Admission> {
    const answer = await this.admitTurn({ tenant, limits })
    if ('failed' in answer) throw answer.failed
    return answer
  }

  /** One TAKE per tenant and limits among a turn's CONNECTs (per-turn.ts); a failed TAKE fails its own only. */
  private readonly admitTurn = perTurn<{ tenant: string; limits: ConnectionLimits }, Admission | { failed: unknown }>(
    async (asks) => {
      const groups = new Map<string, number[]>()
      asks.forEach(({ tenant, limits }, at) => {
        const key = `${tenant} ${limits.maxConnections ?? -1} ${limits.connectRate ?? -1}`
        const group = groups.get(key)
        if (group === undefined) groups.set(key, [at])
        else group.push(at)
      })
      const answers: Array<Admission | { failed: unknown }> = []
      await Promise.all(
        [...groups.values()].map(async (group) => {
          const { tenant, limits } = asks[group[0] as number] as { tenant: string; limits: ConnectionLimits }
          try {
            const { granted, refusal } = await this.take(
              'conn',
              tenant,
              group.length,
              limits.maxConnections,
              limits.connectRate,
              true,
            )
            const limit = refusal === 'rate' ? 'connectRate' : 'maxConnections'
            group.forEach((at, i) => (answers[at] = i < granted ? { ok: true } : { ok: false, limit }))
          } catch (failed) {
            for (const at of group) answers[at] = { failed }
          }
        }),
      )
      return answers
    },
  )

  releaseConnection(tenant: string): void {
    this.giveBack('conn', tenant, 1)
  }

  async acquireSubscriptions(tenant: string, want: number, maxSubscriptions: number | undefined): Promise<number> {
    return (await this.take('subs', tenant, want, maxSubscriptions, undefined, false)).granted
  }

  releaseSubscriptions(tenant: string, n: number): void {
    if (n > 0) this.giveBack('subs', tenant, n)
  }

  /** gateways alive at the last heartbeat: the divisor of the degraded share */
  get gatewaysAlive(): number {
    return this.gateways
  }

  /** this gateway's count of a tenant's resource (for tests and the sync) */
  heldBy(resource: LeaseResource, tenant: string): number {
    return this.held.get(`${resource} ${tenant}`) ?? 0
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    this.offState()
    // Leaving cleanly frees this gateway's slots at once instead of after the TTL.
    if (this.redis.state === 'reachable') {
      for (const k of this.held.keys()) this.held.set(k, 0)
      await this.sync().catch(() => {})
    }
  }

  private async take(
    resource: LeaseResource,
    tenant: string,
    want: number,
    max: number | undefined,
    rate: number | undefined,
    each: boolean,
  ): Promise<Taken> {
    const key = `${resource} ${tenant}`
    // Redis back, or a command failed: write the truth first, then check against it.
    if (this.dirty && this.redis.state === 'reachable') await this.heartbeat()
    while (this.syncing !== undefined) await this.syncing
    if (this.redis.state === 'reachable' && !this.dirty) {
      this.inFlight++
      try {
        const [granted, , refusal] = (await TAKE(this.redis.commands, KEY(resource, tenant), [
          this.opts.gateway,
          want,
          max ?? -1,
          rate ?? -1,
          this.ttlMs,
          each ? 1 : 0,
        ])) as [number, number, number]
        if (granted > 0) this.held.set(key, (this.held.get(key) ?? 0) + granted)
        return { granted, refusal: refusal === 2 ? 'rate' : 'max' }
      } catch {
        // The outcome is unknown (a timeout may still have taken the slot): the next sync writes the truth.
        this.dirty = true
      } finally {
        this.done()
      }
    }
    if (!each) {
      const granted = this.takeLocally(key, want, max, rate)
      return granted === 'rate' ? { granted: 0, refusal: 'rate' } : { granted, refusal: 'max' }
    }
    // One after the other; the first refused ends the batch, the rest refused for the same reason.
    let granted = 0
    for (; granted < want; granted++) {
      const one = this.takeLocally(key, 1, max, rate)
      if (one !== 1) return { granted, refusal: one === 'rate' ? 'rate' : 'max' }
    }
    return { granted, refusal: 'max' }
  }

  private takeLocally(key: string, want: number, max: number | undefined, rate: number | undefined): number | 'rate' {
    const held = this.held.get(key) ?? 0
    const grant = max === undefined ? want : Math.max(0, Math.min(want, degradedShare(max, this.gateways) - held))
    if (grant === 0) return 0
    if (rate !== undefined && !this.localRateOk(key, rate / this.gateways)) return 'rate'
    this.held.set(key, held + grant)
    this.dirty = true
    return grant
  }

  private localRateOk(key: string, rate: number): boolean {
    const now = Date.now()
    const burst = Math.max(1, rate)
    const b = this.localRate.get(key) ?? { tokens: burst, at: now }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000)
    b.at = now
    this.localRate.set(key, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /**
   * Gives back at once in `held`, and in Redis with the other give-backs of this turn of the event loop:
   * one command per tenant and resource for all the sessions that ended meanwhile (under a connection
   * storm, many), instead of one each. Until then Redis counts them still: a take may be refused that
   * would have passed a moment later, never the reverse.
   */
  private giveBack(resource: LeaseResource, tenant: string, n: number): void {
    const key = `${resource} ${tenant}`
    this.held.set(key, Math.max(0, (this.held.get(key) ?? 0) - n))
    this.givingBack.set(key, (this.givingBack.get(key) ?? 0) + n)
    if (this.flushing) return
    this.flushing = true
    setImmediate(() => void this.flushGiveBacks())
  }

  private async flushGiveBacks(): Promise<void> {
    this.flushing = false
    // A sync meanwhile wrote `held`, which counts these give-backs already: it empties `givingBack`.
    while (this.syncing !== undefined) await this.syncing
    if (this.givingBack.size === 0) return
    const batch = [...this.givingBack]
    this.givingBack.clear()
    if (this.redis.state !== 'reachable' || this.dirty) {
      this.dirty = true
      return
    }
    for (const [key, n] of batch) {
      const [resource, tenant] = key.split(' ') as [LeaseResource, string]
      this.inFlight++
      GIVE_BACK(this.redis.commands, KEY(resource, tenant).slice(0, 2), [this.opts.gateway, n])
        .catch(() => {
          this.dirty = true
        })
        .finally(() => this.done())
    }
  }

  private done(): void {
    this.inFlight--
    if (this.inFlight === 0) this.drained?.()
  }

  private heartbeat(): Promise<void> {
    if (this.redis.state !== 'reachable') return Promise.resolve()
    this.beating ??= this.beat().finally(() => {
      this.beating = undefined
    })
    return this.beating
  }

  private async beat(): Promise<void> {
    try {
      this.gateways = Number(await BEAT(this.redis.commands, [GATEWAYS], [this.opts.gateway, this.ttlMs]))
      await this.sync()
    } catch (err) {
      this.dirty = true
      this.opts.log.debug({ err }, 'cluster: lease heartbeat failed')
    }
  }

  /**
   * Writes every count this gateway holds, which also pushes its leases' deadlines forward. Takes and
   * give-backs wait meanwhile, and the sync waits for those under way: a count written while a take is in
   * flight could lose or double that take.
   */
  private async sync(): Promise<void> {
    let release!: () => void
    this.syncing = new Promise<void>((resolve) => {
      release = resolve
    })
    try {
      if (this.inFlight > 0)
        await new Promise<void>((resolve) => {
          this.drained = resolve
        })
      this.drained = undefined
      this.dirty = false
      this.givingBack.clear()
      const writes: Array<Promise<unknown>> = []
      for (const [key, n] of this.held) {
        const [resource, tenant] = key.split(' ') as [LeaseResource, string]
        writes.push(SET(this.redis.commands, KEY(resource, tenant).slice(0, 2), [this.opts.gateway, n, this.ttlMs]))
        if (n === 0) this.held.delete(key)
      }
      await Promise.all(writes)
    } catch (err) {
      this.dirty = true
      throw err
    } finally {
      this.syncing = undefined
      release()
    }
  }
}
