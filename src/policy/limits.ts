// Quotas and rates per tenant (SPEC §7), for one gateway instance. A connection slot is taken at
// admission and given back exactly once when the session ends. Rates are token buckets charged before
// a packet is forwarded; the policy returns what to do (go on, hold N ms, disconnect) and the session
// does it — nothing here touches a socket.
import type { Limits } from '../config/schema.js'
import type { ReasonName } from '../reason-codes.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import { connectionsChanged, countRefusal, newCounters, type DropReason, type LimitName, type TenantCounters } from './counters.js'
import { memoryRateLimiter, TokenBucket, type RateLimiter } from './rate.js'
import { DISCONNECT, GO, type SessionPolicy, type SessionStats, type Verdict } from './session-policy.js'

/**
 * Debt below this does not hold a client: each hold costs a timer, so a client at a high rate is held
 * in steps of a few ms rather than one per packet. The rate stays exact; the debt is paid by the next hold.
 */
const MIN_HOLD_MS = 5

/** A persistent session that ended: its filters stay at the broker, and counted, until it expires. */
interface ParkedSession {
  readonly filters: Set<string>
  readonly expiresAt: number
}

/** A tenant's live state: shared by its sessions, kept across reloads (buckets rebuilt as needed). */
interface TenantState {
  readonly counters: TenantCounters
  /** filters held at the broker: live sessions' and parked persistent sessions' */
  subscriptions: number
  limits: Limits
  publish: TokenBucket | undefined
  bandwidth: TokenBucket | undefined
  connect: RateLimiter | undefined
  /** some rate applies: sessions charge every packet */
  paced: boolean
  /** the live session of each client ID (the newest, when one took over another) */
  readonly live: Map<string, SessionLimits>
  readonly parked: Map<string, ParkedSession>
  /** the earliest expiry among `parked` (Infinity when none can expire) */
  nextExpiry: number
  /** no longer configured (removed or deleted): forgotten by pruneRetired once its counters are read */
  retired: boolean
}

/** Message rates may be fractional (0.5/s): the bucket still holds one message. */
function bucket (rate: number | undefined, minBurst: number): TokenBucket | undefined {
  return rate === undefined ? undefined : new TokenBucket(rate, Math.max(rate, minBurst))
}

function applyLimits (state: TenantState, limits: Limits): void {
  const old = state.limits
  if (old.publishRate !== limits.publishRate || state.publish === undefined) state.publish = bucket(limits.publishRate, 1)
  if (old.bandwidth !== limits.bandwidth || state.bandwidth === undefined) state.bandwidth = bucket(limits.bandwidth, 1)
  if (old.connectRate !== limits.connectRate || state.connect === undefined) {
    state.connect = limits.connectRate === undefined ? undefined : memoryRateLimiter(limits.connectRate)
  }
  state.paced = limits.publishRate !== undefined || limits.clientPublishRate !== undefined || limits.bandwidth !== undefined
  state.limits = limits
}

/** Parked sessions past their expiry are gone at the broker: their filters stop counting. */
function pruneExpired (s: TenantState, now: number): void {
  if (now < s.nextExpiry) return
  s.nextExpiry = Infinity
  for (const [id, p] of s.parked) {
    if (p.expiresAt <= now) {
      s.parked.delete(id)
      s.subscriptions -= p.filters.size
    } else if (p.expiresAt < s.nextExpiry) {
      s.nextExpiry = p.expiresAt
    }
  }
}

export class TenantLimits {
  private readonly tenants = new Map<string, TenantState>()
  private total = 0

  constructor (public gatewayMax: number | undefined) {}

  private state (tenant: TenantRuntime): TenantState {
    let s = this.tenants.get(tenant.id)
    if (s === undefined) {
      s = {
        counters: newCounters(), subscriptions: 0, limits: {}, publish: undefined, bandwidth: undefined, connect: undefined,
        paced: false, live: new Map(), parked: new Map(), nextExpiry: Infinity, retired: false,
      }
      applyLimits(s, tenant.limits)
      this.tenants.set(tenant.id, s)
    } else if (s.limits !== tenant.limits) {
      applyLimits(s, tenant.limits)
    }
    return s
  }

  /** After a reload: new limits for every tenant still configured (existing sessions included). */
  update (tenants: ReadonlyMap<string, TenantRuntime>, gatewayMax: number | undefined): void {
    this.gatewayMax = gatewayMax
    for (const [id, s] of this.tenants) s.retired = !tenants.has(id)
    for (const tenant of tenants.values()) if (this.tenants.has(tenant.id)) this.state(tenant)
  }

  /**
   * Forgets the tenants no longer configured whose last client is gone, and names them: their series
   * leave /metrics, and a tenant created again under the same ID starts from zero. Called right after
   * their counters were read for usage, so the last of it is not lost.
   */
  pruneRetired (): string[] {
    const gone: string[] = []
    for (const [id, s] of this.tenants) {
      if (s.retired && s.counters.connections === 0) {
        this.tenants.delete(id)
        gone.push(id)
      }
    }
    return gone
  }

  /** Takes a slot for a new connection of `tenant`, or names the limit that refuses it. */
  async admit (tenant: TenantRuntime): Promise<SessionPolicy | ReasonName> {
    const s = this.state(tenant)
    const refusal = await this.refusal(tenant, s)
    if (refusal !== undefined) {
      countRefusal(s.counters, refusal[0], refusal[1])
      return refusal[0]
    }
    connectionsChanged(s.counters, 1)
    s.counters.connects++
    this.total++
    return new SessionLimits(s)
  }

  private async refusal (tenant: TenantRuntime, s: TenantState): Promise<[ReasonName, LimitName] | undefined> {
    if (this.gatewayMax !== undefined && this.total >= this.gatewayMax) return ['serverBusy', 'gatewayMaxConnections']
    const max = tenant.limits.maxConnections
    if (max !== undefined && s.counters.connections >= max) return ['quotaExceeded', 'maxConnections']
    if (s.connect !== undefined && (await s.connect.take(tenant.id, 1)).exceeded) return ['connectionRateExceeded', 'connectRate']
    // The slot may have gone while the rate limiter answered.
    if (max !== undefined && s.counters.connections >= max) return ['quotaExceeded', 'maxConnections']
    if (this.gatewayMax !== undefined && this.total >= this.gatewayMax) return ['serverBusy', 'gatewayMaxConnections']
    return undefined
  }

  /**
   * Gives the session's slot back. `expirySeconds` is how long the broker keeps its session (0: gone
   * with the connection; Infinity: never expires): until then its filters stay counted (SPEC §7).
   */
  release (policy: SessionPolicy, expirySeconds: number, now = Date.now()): void {
    if (!(policy instanceof SessionLimits) || policy.released) return
    policy.released = true
    const t = policy.tenant
    connectionsChanged(t.counters, -1)
    this.total--
    const filters = policy.filters
    policy.filters = undefined
    const id = policy.clientId
    if (id !== undefined && t.live.get(id) === policy) {
      t.live.delete(id)
      if (expirySeconds > 0 && filters !== undefined && filters.size > 0) {
        const expiresAt = now + expirySeconds * 1000
        t.parked.set(id, { filters, expiresAt })
        if (expiresAt < t.nextExpiry) t.nextExpiry = expiresAt
        return
      }
    }
    t.subscriptions -= filters?.size ?? 0
  }

  connections (tenantId?: string): number {
    return tenantId === undefined ? this.total : (this.tenants.get(tenantId)?.counters.connections ?? 0)
  }

  counters (tenantId: string): Readonly<TenantCounters> | undefined {
    return this.tenants.get(tenantId)?.counters
  }

  /** Every tenant that has had a connection attempt since the process started, with its counters. */
  allCounters (): IterableIterator<[string, TenantCounters]> {
    const states = this.tenants.entries()
    return (function * () { for (const [id, s] of states) yield [id, s.counters] as [string, TenantCounters] })()
  }

  /** Subscriptions the tenant holds at the broker now: its clients' and its persistent sessions'. */
  subscriptions (tenantId: string, now = Date.now()): number {
    const s = this.tenants.get(tenantId)
    if (s === undefined) return 0
    pruneExpired(s, now)
    return s.subscriptions
  }
}

/** One admitted session's share of its tenant's limits. */
class SessionLimits implements SessionPolicy {
  released = false
  /** tenant-local client ID, known at CONNACK */
  clientId: string | undefined
  /** mounted filters the broker holds for this client */
  filters: Set<string> | undefined
  readonly stats: SessionStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  private clientPublish: TokenBucket | undefined

  constructor (readonly tenant: TenantState) {}

  get paced (): boolean { return this.tenant.paced }

  charge (publish: boolean, bytes: number, now: number): Verdict {
    const t = this.tenant
    const limits = t.limits
    let client = this.clientPublish
    if (client?.rate !== limits.clientPublishRate) client = this.clientPublish = bucket(limits.clientPublishRate, 1)
    if (limits.rateAction === 'disconnect') {
      // The first packet beyond rate + burst ends the session, however many one read holds.
      const over: LimitName | undefined = publish && t.publish?.fits(1, now) === false
        ? 'publishRate'
        : publish && client?.fits(1, now) === false ? 'clientPublishRate' : t.bandwidth?.fits(bytes, now) === false ? 'bandwidth' : undefined
      if (over !== undefined) {
        countRefusal(t.counters, 'messageRateTooHigh', over)
        return DISCONNECT
      }
    }
    let wait = 0
    let limit: LimitName = 'bandwidth'
    if (publish) {
      const a = t.publish?.take(1, now) ?? 0
      const b = client?.take(1, now) ?? 0
      wait = Math.max(a, b)
      limit = a >= b ? 'publishRate' : 'clientPublishRate'
    }
    const c = t.bandwidth?.take(bytes, now) ?? 0
    if (c > wait) { wait = c; limit = 'bandwidth' }
    if (wait < MIN_HOLD_MS || limits.rateAction === 'disconnect') return GO
    countRefusal(t.counters, 'messageRateTooHigh', limit)
    return Math.ceil(wait)
  }

  countPublish (): void {
    this.tenant.counters.messagesIn++
    this.stats.messagesIn++
  }

  countIn (bytes: number): void {
    this.tenant.counters.bytesIn += bytes
    this.stats.bytesIn += bytes
  }

  countDelivery (bytes: number): void {
    const c = this.tenant.counters
    c.messagesOut++
    c.bytesOut += bytes
    this.stats.messagesOut++
    this.stats.bytesOut += bytes
  }

  countRefusal (reason: ReasonName): void {
    if (reason === 'notAuthorized') this.tenant.counters.aclDenials++
    countRefusal(this.tenant.counters, reason, reason === 'quotaExceeded' ? this.subscriptionLimit() : undefined)
  }

  /** Which subscription limit refused a filter: the client's own when it is full, else the tenant's. */
  private subscriptionLimit (): LimitName {
    const perClient = this.tenant.limits.maxSubscriptionsPerClient
    return perClient !== undefined && (this.filters?.size ?? 0) >= perClient ? 'maxSubscriptionsPerClient' : 'maxSubscriptions'
  }

  countIsolationFault (): void {
    this.tenant.counters.isolationFaults++
  }

  countDropped (reason: DropReason, n: number): void {
    const d = this.tenant.counters.dropped
    d[reason] = (d[reason] ?? 0) + n
  }

  resume (clientId: string, sessionPresent: boolean): void {
    const t = this.tenant
    this.clientId = clientId
    // The filters the broker holds for this client ID: a live session's this one takes over, or a parked one's.
    let held: Set<string> | undefined
    const previous = t.live.get(clientId)
    if (previous !== undefined && previous !== this) {
      held = previous.filters
      previous.filters = undefined
    } else {
      held = t.parked.get(clientId)?.filters
      t.parked.delete(clientId)
    }
    t.live.set(clientId, this)
    if (held === undefined) return
    if (!sessionPresent) t.subscriptions -= held.size // the broker started afresh: they are gone
    else if (this.filters === undefined) this.filters = held
    else {
      for (const f of held) {
        if (this.filters.has(f)) t.subscriptions--
        else this.filters.add(f)
      }
    }
  }

  subscriptionRoom (filters: readonly string[]): number {
    const t = this.tenant
    const limits = t.limits
    pruneExpired(t, Date.now())
    let room = filters.length
    if (limits.maxSubscriptionsPerClient !== undefined) room = Math.min(room, limits.maxSubscriptionsPerClient - (this.filters?.size ?? 0))
    if (limits.maxSubscriptions !== undefined) room = Math.min(room, limits.maxSubscriptions - t.subscriptions)
    return Math.max(0, room)
  }

  isSubscribed (filter: string): boolean {
    return this.filters?.has(filter) === true
  }

  subscribed (filters: readonly string[]): void {
    if (this.released) return // a SUBACK after the session ended: its filters were already given back
    const set = (this.filters ??= new Set())
    for (const f of filters) {
      if (!set.has(f)) { set.add(f); this.tenant.subscriptions++ }
    }
  }

  unsubscribed (filters: readonly string[]): void {
    if (this.filters === undefined) return
    for (const f of filters) {
      if (this.filters.delete(f)) this.tenant.subscriptions--
    }
  }
}
