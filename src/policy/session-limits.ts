// One admitted session's share of its tenant's limits: its rates' verdicts, its counters and the
// filters it holds. It returns what the session should do and never touches a socket.
import type { ReasonName } from '../reason-codes.js'
import { countRefusal, type DropReason, type LimitName } from './counters.js'
import type { SharedBudget, TokenBucket } from './rate.js'
import { DISCONNECT, GO, type SessionPolicy, type SessionStats, type Verdict } from './session-policy.js'
import { bucket, dropSubscriptions, pruneExpired, type TenantState } from './tenant-state.js'

/**
 * Debt below this does not hold a client: each hold costs a timer, so a client at a high rate is held
 * in steps of a few ms rather than one per packet. The rate stays exact; the debt is paid by the next hold.
 */
const MIN_HOLD_MS = 5

/** A tenant's subscriptions counted across the cluster (the cluster's leases: src/cluster/leases.ts). */
export interface SharedSubscriptions {
  /** how many of `want` new filters fit under maxSubscriptions (none: all of them), taken at once */
  acquireSubscriptions(tenant: string, want: number, maxSubscriptions: number | undefined): Promise<number>
  /** filters counted by acquireSubscriptions that no longer are */
  releaseSubscriptions(tenant: string, n: number): void
}

/**
 * A clustered tenant's share of the cluster: its publishRate and bandwidth charged to the budget the
 * gateways share, its subscriptions counted across them.
 */
export interface SharedRates {
  readonly tenant: string
  readonly budget: SharedBudget
  readonly subscriptions: SharedSubscriptions
}

/** One admitted session's share of its tenant's limits. */
export class SessionLimits implements SessionPolicy {
  released = false
  /** tenant-local client ID, known at CONNACK */
  clientId: string | undefined
  /** mounted filters the broker holds for this client */
  filters: Set<string> | undefined
  readonly stats: SessionStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  /** filters the cluster granted for SUBSCRIBEs still waiting for their SUBACK */
  reserved = 0
  /** a takeover through another gateway: the session is there now, so its filters are not parked here */
  handedOff = false
  private clientPublish: TokenBucket | undefined

  constructor(
    readonly tenant: TenantState,
    private readonly shared?: SharedRates,
  ) {}

  /** the tenant's ID for the cluster's leases ('' outside a cluster, where nothing asks) */
  get tenantId(): string {
    return this.shared?.tenant ?? ''
  }

  get paced(): boolean {
    return this.tenant.paced
  }

  charge(publish: boolean, bytes: number, now: number): Verdict {
    const t = this.tenant
    const limits = t.limits
    let client = this.clientPublish
    if (client?.rate !== limits.clientPublishRate) client = this.clientPublish = bucket(limits.clientPublishRate, 1)
    if (this.shared !== undefined) return this.chargeShared(this.shared, client, publish, bytes, now)
    if (limits.rateAction === 'disconnect') {
      // The first packet beyond rate + burst ends the session, however many one read holds.
      const over: LimitName | undefined =
        publish && t.publish?.fits(1, now) === false
          ? 'publishRate'
          : publish && client?.fits(1, now) === false
            ? 'clientPublishRate'
            : t.bandwidth?.fits(bytes, now) === false
              ? 'bandwidth'
              : undefined
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
    if (c > wait) {
      wait = c
      limit = 'bandwidth'
    }
    return this.verdict(wait, limit)
  }

  /**
   * The same with the tenant's rates charged to the cluster's budget. The budget cannot say whether a
   * packet fits before taking it, so `rateAction: disconnect` ends the session on the first packet the
   * budget would hold for (the shared rate passed by more than the batch it took in advance).
   */
  private chargeShared(
    shared: SharedRates,
    client: TokenBucket | undefined,
    publish: boolean,
    bytes: number,
    now: number,
  ): Verdict {
    const limits = this.tenant.limits
    const disconnect = limits.rateAction === 'disconnect'
    let wait = 0
    let limit: LimitName = 'bandwidth'
    if (publish) {
      const a =
        limits.publishRate === undefined
          ? 0
          : shared.budget.charge(shared.tenant, 'publish', 1, {
              rate: limits.publishRate,
              burst: Math.max(limits.publishRate, 1),
            })
      const b = disconnect ? (client?.fits(1, now) === false ? 1 : 0) : (client?.take(1, now) ?? 0)
      if (disconnect && b === 0) client?.take(1, now)
      wait = Math.max(a, b)
      limit = a >= b ? 'publishRate' : 'clientPublishRate'
    }
    const c =
      limits.bandwidth === undefined
        ? 0
        : shared.budget.charge(shared.tenant, 'bytes', bytes, {
            rate: limits.bandwidth,
            burst: Math.max(limits.bandwidth, 1),
          })
    if (c > wait) {
      wait = c
      limit = 'bandwidth'
    }
    if (disconnect && wait > 0) {
      countRefusal(this.tenant.counters, 'messageRateTooHigh', limit)
      return DISCONNECT
    }
    return this.verdict(wait, limit)
  }

  private verdict(wait: number, limit: LimitName): Verdict {
    if (wait < MIN_HOLD_MS || this.tenant.limits.rateAction === 'disconnect') return GO
    countRefusal(this.tenant.counters, 'messageRateTooHigh', limit)
    return Math.ceil(wait)
  }

  countPublish(): void {
    this.tenant.counters.messagesIn++
    this.stats.messagesIn++
  }

  countIn(bytes: number): void {
    this.tenant.counters.bytesIn += bytes
    this.stats.bytesIn += bytes
  }

  countDelivery(bytes: number): void {
    const c = this.tenant.counters
    c.messagesOut++
    c.bytesOut += bytes
    this.stats.messagesOut++
    this.stats.bytesOut += bytes
  }

  countRefusal(reason: ReasonName): void {
    if (reason === 'notAuthorized') this.tenant.counters.aclDenials++
    countRefusal(this.tenant.counters, reason, reason === 'quotaExceeded' ? this.subscriptionLimit() : undefined)
  }

  /** Which subscription limit refused a filter: the client's own when it is full, else the tenant's. */
  private subscriptionLimit(): LimitName {
    const perClient = this.tenant.limits.maxSubscriptionsPerClient
    return perClient !== undefined && (this.filters?.size ?? 0) >= perClient
      ? 'maxSubscriptionsPerClient'
      : 'maxSubscriptions'
  }

  countIsolationFault(): void {
    this.tenant.counters.isolationFaults++
  }

  countDropped(reason: DropReason, n: number): void {
    const d = this.tenant.counters.dropped
    d[reason] = (d[reason] ?? 0) + n
  }

  resume(clientId: string, sessionPresent: boolean): void {
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
    if (!sessionPresent)
      dropSubscriptions(t, held.size) // the broker started afresh: they are gone
    else if (this.filters === undefined) this.filters = held
    else {
      let twice = 0
      for (const f of held) {
        if (this.filters.has(f)) twice++
        else this.filters.add(f)
      }
      dropSubscriptions(t, twice)
    }
  }

  subscriptionRoom(filters: readonly string[]): number {
    const t = this.tenant
    const limits = t.limits
    pruneExpired(t, Date.now())
    let room = filters.length
    if (limits.maxSubscriptionsPerClient !== undefined)
      room = Math.min(room, limits.maxSubscriptionsPerClient - (this.filters?.size ?? 0))
    if (limits.maxSubscriptions !== undefined) room = Math.min(room, limits.maxSubscriptions - t.subscriptions)
    return Math.max(0, room)
  }

  isSubscribed(filter: string): boolean {
    return this.filters?.has(filter) === true
  }

  reserveSubscriptions(n: number): Promise<number> | undefined {
    const shared = this.shared
    if (shared === undefined) return undefined
    return shared.subscriptions
      .acquireSubscriptions(shared.tenant, n, this.tenant.limits.maxSubscriptions)
      .catch(() => 0)
      .then((granted) => {
        // The session ended while Redis answered: nothing will be subscribed.
        if (this.released) shared.subscriptions.releaseSubscriptions(shared.tenant, granted)
        else this.reserved += granted
        return this.released ? 0 : granted
      })
  }

  subscribed(filters: readonly string[], reserved: number): void {
    // After the session ended its reservations were given back with it (TenantLimits.release), and its filters.
    if (this.released) return
    const fromReserve = Math.min(reserved, this.reserved)
    this.reserved -= fromReserve
    const set = (this.filters ??= new Set())
    let added = 0
    for (const f of filters) {
      if (!set.has(f)) {
        set.add(f)
        added++
      }
    }
    this.tenant.subscriptions += added
    // Reserved but not added (refused by the broker, or subscribed meanwhile by another SUBSCRIBE); and in
    // a cluster, filters added beyond the reservation are counted there too (the cluster only grows here).
    if (this.shared !== undefined) {
      if (fromReserve > added) this.shared.subscriptions.releaseSubscriptions(this.shared.tenant, fromReserve - added)
      else if (added > fromReserve)
        void this.shared.subscriptions
          .acquireSubscriptions(this.shared.tenant, added - fromReserve, undefined)
          .catch(() => 0)
    }
  }

  unsubscribed(filters: readonly string[]): void {
    if (this.filters === undefined) return
    let removed = 0
    for (const f of filters) if (this.filters.delete(f)) removed++
    dropSubscriptions(this.tenant, removed)
  }
}
