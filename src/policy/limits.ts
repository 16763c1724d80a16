// Quotas and rates per tenant (SPEC §7), for one gateway instance. A connection slot is taken at
// admission and given back exactly once when the session ends. Rates are token buckets charged before
// a packet is forwarded; the policy returns what to do (go on, hold N ms, disconnect) and the session
// does it — nothing here touches a socket.
//
// In a cluster (SPEC §11) the tenant's maxConnections, connectRate and maxSubscriptions are checked by
// the cluster's leases, and its publishRate and bandwidth charged to the shared budget; the gateway's own
// maxConnections, clientPublishRate, maxSubscriptionsPerClient and the tenant's counters stay local.
import type { ReasonName } from '../reason-codes.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import { connectionsChanged, countRefusal, type LimitName, type TenantCounters } from './counters.js'
import type { SharedBudget } from './rate.js'
import type { SessionPolicy } from './session-policy.js'
import { SessionLimits, type SharedSubscriptions } from './session-limits.js'
import { applyLimits, dropSubscriptions, newTenantState, pruneExpired, type TenantState } from './tenant-state.js'

/** A tenant's connection slot across gateways (the cluster's leases: src/cluster/leases.ts). */
export interface SharedConnections {
  acquireConnection(
    tenant: string,
    limits: { maxConnections?: number | undefined; connectRate?: number | undefined },
  ): Promise<{ ok: true } | { ok: false; limit: 'maxConnections' | 'connectRate' }>
  /** once per admitted connection, at its end */
  releaseConnection(tenant: string): void
}

export interface SharedLimits {
  connections: SharedConnections
  budget: SharedBudget
  subscriptions: SharedSubscriptions
}

export class TenantLimits {
  private readonly tenants = new Map<string, TenantState>()
  private total = 0

  constructor(
    public gatewayMax: number | undefined,
    private readonly shared?: SharedLimits,
  ) {}

  private state(tenant: TenantRuntime): TenantState {
    let s = this.tenants.get(tenant.id)
    if (s === undefined) {
      s = newTenantState(tenant.limits)
      const shared = this.shared
      if (shared !== undefined) {
        const id = tenant.id
        s.giveBackSubscriptions = (n) => shared.subscriptions.releaseSubscriptions(id, n)
      }
      this.tenants.set(tenant.id, s)
    } else if (s.limits !== tenant.limits) {
      applyLimits(s, tenant.limits)
    }
    return s
  }

  /** After a reload: new limits for every tenant still configured (existing sessions included). */
  update(tenants: ReadonlyMap<string, TenantRuntime>, gatewayMax: number | undefined): void {
    this.gatewayMax = gatewayMax
    for (const [id, s] of this.tenants) s.retired = !tenants.has(id)
    for (const tenant of tenants.values()) if (this.tenants.has(tenant.id)) this.state(tenant)
  }

  /**
   * Forgets the tenants no longer configured whose last client is gone, and names them: their series
   * leave /metrics, and a tenant created again under the same ID starts from zero. Called right after
   * their counters were read for usage, so the last of it is not lost.
   */
  pruneRetired(): string[] {
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
  async admit(tenant: TenantRuntime): Promise<SessionPolicy | ReasonName> {
    const s = this.state(tenant)
    const refusal = await this.refusal(tenant, s)
    if (refusal !== undefined) {
      countRefusal(s.counters, refusal[0], refusal[1])
      return refusal[0]
    }
    connectionsChanged(s.counters, 1)
    s.counters.connects++
    this.total++
    const shared = this.shared
    return new SessionLimits(
      s,
      shared === undefined
        ? undefined
        : { tenant: tenant.id, budget: shared.budget, subscriptions: shared.subscriptions },
    )
  }

  private async refusal(tenant: TenantRuntime, s: TenantState): Promise<[ReasonName, LimitName] | undefined> {
    if (this.gatewayMax !== undefined && this.total >= this.gatewayMax) return ['serverBusy', 'gatewayMaxConnections']
    if (this.shared !== undefined) return this.sharedRefusal(tenant)
    const max = tenant.limits.maxConnections
    if (max !== undefined && s.counters.connections >= max) return ['quotaExceeded', 'maxConnections']
    if (s.connect !== undefined && (await s.connect.take(tenant.id, 1)).exceeded)
      return ['connectionRateExceeded', 'connectRate']
    // The slot may have gone while the rate limiter answered.
    if (max !== undefined && s.counters.connections >= max) return ['quotaExceeded', 'maxConnections']
    if (this.gatewayMax !== undefined && this.total >= this.gatewayMax) return ['serverBusy', 'gatewayMaxConnections']
    return undefined
  }

  /** The cluster's check-and-take; the gateway's own maximum is checked again after its round trip. */
  private async sharedRefusal(tenant: TenantRuntime): Promise<[ReasonName, LimitName] | undefined> {
    const shared = this.shared as SharedLimits
    const { maxConnections, connectRate } = tenant.limits
    const admission = await shared.connections.acquireConnection(tenant.id, { maxConnections, connectRate })
    if (!admission.ok)
      return admission.limit === 'maxConnections'
        ? ['quotaExceeded', 'maxConnections']
        : ['connectionRateExceeded', 'connectRate']
    if (this.gatewayMax !== undefined && this.total >= this.gatewayMax) {
      shared.connections.releaseConnection(tenant.id)
      return ['serverBusy', 'gatewayMaxConnections']
    }
    return undefined
  }

  /**
   * Gives the session's slot back. `expirySeconds` is how long the broker keeps its session (0: gone
   * with the connection; Infinity: never expires): until then its filters stay counted (SPEC §7).
   */
  release(policy: SessionPolicy, expirySeconds: number, now = Date.now()): void {
    if (!(policy instanceof SessionLimits) || policy.released) return
    policy.released = true
    const t = policy.tenant
    connectionsChanged(t.counters, -1)
    this.total--
    if (this.shared !== undefined) {
      this.shared.connections.releaseConnection(policy.tenantId)
      // SUBSCRIBEs granted by the cluster whose SUBACK will not be counted now
      if (policy.reserved > 0) this.shared.subscriptions.releaseSubscriptions(policy.tenantId, policy.reserved)
      policy.reserved = 0
    }
    const filters = policy.filters
    policy.filters = undefined
    const id = policy.clientId
    if (id !== undefined && t.live.get(id) === policy) {
      t.live.delete(id)
      if (expirySeconds > 0 && !policy.handedOff && filters !== undefined && filters.size > 0) {
        const expiresAt = now + expirySeconds * 1000
        t.parked.set(id, { filters, expiresAt })
        if (expiresAt < t.nextExpiry) t.nextExpiry = expiresAt
        return
      }
    }
    dropSubscriptions(t, filters?.size ?? 0)
  }

  /**
   * The tenant's client ID connected through another gateway of the cluster: the broker's session (and
   * its filters) goes with it, so this gateway stops counting them — a parked session's now, a live
   * one's when it ends. The other gateway counts them as its client subscribes them again.
   */
  handOff(tenantId: string, clientId: string): void {
    const t = this.tenants.get(tenantId)
    if (t === undefined) return
    const live = t.live.get(clientId)
    if (live instanceof SessionLimits) live.handedOff = true
    const parked = t.parked.get(clientId)
    if (parked !== undefined) {
      t.parked.delete(clientId)
      dropSubscriptions(t, parked.filters.size)
    }
  }

  connections(tenantId?: string): number {
    return tenantId === undefined ? this.total : (this.tenants.get(tenantId)?.counters.connections ?? 0)
  }

  counters(tenantId: string): Readonly<TenantCounters> | undefined {
    return this.tenants.get(tenantId)?.counters
  }

  /** Every tenant that has had a connection attempt since the process started, with its counters. */
  allCounters(): IterableIterator<[string, TenantCounters]> {
    const states = this.tenants.entries()
    return (function* () {
      for (const [id, s] of states) yield [id, s.counters] as [string, TenantCounters]
    })()
  }

  /** Subscriptions the tenant holds at the broker now: its clients' and its persistent sessions'. */
  subscriptions(tenantId: string, now = Date.now()): number {
    const s = this.tenants.get(tenantId)
    if (s === undefined) return 0
    pruneExpired(s, now)
    return s.subscriptions
  }
}
