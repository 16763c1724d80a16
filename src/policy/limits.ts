// Quotas and rates per tenant (SPEC §7), for one gateway instance. A connection slot is taken at
// admission and given back exactly once when the session ends. Rates throttle by pausing the client's
// socket — back-pressure, so nothing is lost — or disconnect with 0x96 when `rateAction: disconnect`.
import type { Limits } from '../config/schema.js'
import type { ReasonName } from '../reason-codes.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import type { Session } from '../session/session.js'
import { Pause } from '../session/pause.js'
import { connectionsChanged, countRefusal, newCounters, type LimitName, type TenantCounters } from './counters.js'
import { memoryRateLimiter, type RateLimiter, type RateWait } from './rate.js'
import type { SessionPolicy, SessionStats } from './session-policy.js'

/** A tenant's live state: shared by its sessions, kept across reloads (limiters rebuilt as needed). */
interface TenantState {
  readonly counters: TenantCounters
  subscriptions: number
  limits: Limits
  publish: RateLimiter | undefined
  clientPublish: RateLimiter | undefined
  bandwidth: RateLimiter | undefined
  connect: RateLimiter | undefined
  /** PUBLISH a session forwards before it waits for the message rates' answer (Infinity: no rate) */
  paceBatch: number
  /** no longer configured (removed or deleted): forgotten by pruneRetired once its counters are read */
  retired: boolean
}

/**
 * Message rates are charged every 1/50 s worth of messages (at most 100), so a flooding client is
 * held in small steps rather than forwarding a whole socket read (hundreds of messages) at once.
 */
function paceBatch (limits: Limits): number {
  const rate = Math.min(limits.publishRate ?? Infinity, limits.clientPublishRate ?? Infinity)
  return rate === Infinity ? Infinity : Math.max(1, Math.min(100, Math.floor(rate / 50)))
}

function limiter (rate: number | undefined): RateLimiter | undefined {
  return rate === undefined ? undefined : memoryRateLimiter(rate)
}

function applyLimits (state: TenantState, limits: Limits): void {
  const old = state.limits
  if (old.publishRate !== limits.publishRate || state.publish === undefined) state.publish = limiter(limits.publishRate)
  if (old.clientPublishRate !== limits.clientPublishRate || state.clientPublish === undefined) state.clientPublish = limiter(limits.clientPublishRate)
  if (old.bandwidth !== limits.bandwidth || state.bandwidth === undefined) state.bandwidth = limiter(limits.bandwidth)
  if (old.connectRate !== limits.connectRate || state.connect === undefined) state.connect = limiter(limits.connectRate)
  state.paceBatch = paceBatch(limits)
  state.limits = limits
}

export class TenantLimits {
  private readonly tenants = new Map<string, TenantState>()
  private total = 0
  private nextSessionKey = 0

  constructor (public gatewayMax: number | undefined) {}

  private state (tenant: TenantRuntime): TenantState {
    let s = this.tenants.get(tenant.id)
    if (s === undefined) {
      s = { counters: newCounters(), subscriptions: 0, limits: {}, publish: undefined, clientPublish: undefined, bandwidth: undefined, connect: undefined, paceBatch: Infinity, retired: false }
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
    return new SessionLimits(s, `${tenant.id}\u0000${this.nextSessionKey++}`)
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

  release (policy: SessionPolicy): void {
    if (!(policy instanceof SessionLimits) || policy.released) return
    policy.released = true
    connectionsChanged(policy.tenant.counters, -1)
    policy.tenant.subscriptions -= policy.filters?.size ?? 0
    this.total--
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

  /** Subscriptions the tenant's clients hold now. */
  subscriptions (tenantId: string): number {
    return this.tenants.get(tenantId)?.subscriptions ?? 0
  }
}

/** One admitted session's share of its tenant's limits. */
class SessionLimits implements SessionPolicy {
  released = false
  /** mounted filters the broker granted this client */
  filters: Set<string> | undefined
  readonly stats: SessionStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  /** PUBLISH accepted since the last chunk, for the counters */
  private publishes = 0
  /** PUBLISH not yet charged to the message rates */
  private unpaced = 0
  private held: NodeJS.Timeout | undefined
  /** until when (ms) the client is held by a rate; 0 when it is not */
  private heldUntil = 0

  constructor (readonly tenant: TenantState, private readonly key: string) {}

  countPublish (session: Session): void {
    this.publishes++
    if (++this.unpaced >= this.tenant.paceBatch) this.chargePublishes(session, true)
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

  afterClientChunk (session: Session, bytes: number): void {
    const t = this.tenant
    const publishes = this.publishes
    this.publishes = 0
    t.counters.messagesIn += publishes
    t.counters.bytesIn += bytes
    this.stats.messagesIn += publishes
    this.stats.bytesIn += bytes
    if (this.unpaced > 0) this.chargePublishes(session, false)
    if (t.bandwidth !== undefined && bytes > 0) {
      t.bandwidth.take('tenant', bytes).then((wait) => { if (wait.exceeded) this.throttle(session, wait.ms, 'bandwidth') }, () => {})
    }
  }

  /**
   * Charges the PUBLISH forwarded since the last charge to the tenant's and the client's message rates.
   * A full batch stops reading the client until the rates answer, and holds it as long as
   * they say: a limit hit until the window reopens, or else a short pause that spreads the window's
   * remaining messages evenly. The tail of a read is charged without stopping, so a client within its
   * rate never waits for the limiter.
   */
  private chargePublishes (session: Session, fullBatch: boolean): void {
    const t = this.tenant
    const n = this.unpaced
    this.unpaced = 0
    const takes: Array<Promise<RateWait>> = []
    const limits: LimitName[] = []
    if (t.publish !== undefined) { takes.push(t.publish.take('tenant', n)); limits.push('publishRate') }
    if (t.clientPublish !== undefined) { takes.push(t.clientPublish.take(this.key, n)); limits.push('clientPublishRate') }
    if (takes.length === 0) return
    // Under `rateAction: disconnect` only passing the rate matters: a burst within it is not held.
    const pace = fullBatch && t.limits.rateAction !== 'disconnect'
    if (pace) session.pauseClient(Pause.throttle)
    Promise.all(takes).then((waits) => {
      let longest = 0
      for (let i = 1; i < waits.length; i++) {
        const [w, l] = [waits[i] as RateWait, waits[longest] as RateWait]
        if ((w.exceeded && !l.exceeded) || (w.exceeded === l.exceeded && w.ms > l.ms)) longest = i
      }
      const wait = waits[longest] as RateWait
      const limit = limits[longest] ?? 'publishRate'
      if (wait.exceeded) return this.throttle(session, wait.ms, limit)
      if (!pace) return
      // Held at the rate: a limit hit once the window is half used, not for a burst into a quiet one.
      if (wait.busy && wait.ms > 0 && session.state !== 'closed') countRefusal(t.counters, 'messageRateTooHigh', limit)
      this.holdFor(session, wait.ms)
    }, () => {
      if (pace) this.holdFor(session, 0) // a limiter that fails lets traffic through rather than stall it
    })
  }

  private throttle (session: Session, ms: number, limit: LimitName): void {
    if (session.state === 'closed') return
    countRefusal(this.tenant.counters, 'messageRateTooHigh', limit)
    if (this.tenant.limits.rateAction === 'disconnect') return session.close('messageRateTooHigh', 'rate limit reached')
    // Stop reading the client until the window reopens: the socket's buffers and TCP hold the rest.
    this.holdFor(session, ms)
  }

  /** Holds the client's reads for `ms` (0: lets it go on unless an earlier hold lasts longer). */
  private holdFor (session: Session, ms: number): void {
    const now = Date.now()
    if (ms <= 0) {
      if (this.heldUntil <= now) session.resumeClient(Pause.throttle)
      return
    }
    if (now + ms <= this.heldUntil) return
    this.heldUntil = now + ms
    session.pauseClient(Pause.throttle)
    clearTimeout(this.held)
    this.held = setTimeout(() => {
      this.heldUntil = 0
      session.resumeClient(Pause.throttle)
    }, ms)
    this.held.unref()
  }

  subscriptionRoom (_session: Session, filters: readonly string[]): number {
    const limits = this.tenant.limits
    let room = filters.length
    if (limits.maxSubscriptionsPerClient !== undefined) room = Math.min(room, limits.maxSubscriptionsPerClient - (this.filters?.size ?? 0))
    if (limits.maxSubscriptions !== undefined) room = Math.min(room, limits.maxSubscriptions - this.tenant.subscriptions)
    return Math.max(0, room)
  }

  isSubscribed (filter: string): boolean {
    return this.filters?.has(filter) === true
  }

  subscribed (filters: readonly string[]): void {
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
