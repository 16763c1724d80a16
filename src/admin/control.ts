// The admin API's write side: a change to a tenant or a plan is merged with the YAML, applied to the running
// gateway like a reload (nobody is disconnected unless their tenant is disabled or deleted), and only
// then persisted. Changes run one at a time so two requests never overwrite each other's.
import type { GatewayConfig, Limits } from '../config/schema.js'
import type { Gateway } from '../gateway.js'
import type { Logger } from '../log.js'
import { mergeTenantChanges, tenantSource, type TenantSource } from '../store/merge.js'
import type { PlanChanges, Store, TenantChanges } from '../store/store.js'

/** An answer for the API client: HTTP status and a message meant for a person. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message)
  }
}

export class TenantControl {
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private base: GatewayConfig,
    private changes: Map<string, TenantChanges>,
    private planChanges: PlanChanges,
    private readonly store: Store,
    private readonly gateway: Gateway,
    private readonly log: Logger,
  ) {}

  /** The running configuration (YAML merged with the API's changes). */
  get config(): GatewayConfig {
    return this.gateway.config
  }

  exists(tenant: string): boolean {
    return Object.hasOwn(this.gateway.config.tenants, tenant)
  }

  source(tenant: string): { source: TenantSource; changed: string[] } {
    return tenantSource(this.changes.get(tenant))
  }

  /** Where a plan's limits come from: the YAML, or the API (created or changed through it). */
  planSource(plan: string): 'yaml' | 'api' {
    return this.planChanges.has(plan) ? 'api' : 'yaml'
  }

  /** A new YAML (SIGHUP, --watch): the API's changes are merged over it again. */
  setBase(base: GatewayConfig): Promise<void> {
    return this.serial(async () => {
      const merged = mergeTenantChanges(base, this.changes, this.planChanges)
      for (const w of merged.warnings) this.log.warn(w)
      await this.gateway.reload(merged.config)
      this.base = base
    })
  }

  /**
   * The shared store changed through another gateway of the cluster (or its feed was interrupted): the
   * changes are read again, merged and applied like a reload, so a tenant disabled there is disconnected here.
   */
  reread(): Promise<void> {
    return this.serial(async () => {
      const [changes, planChanges] = await Promise.all([this.store.tenantChanges(), this.store.planChanges()])
      const merged = mergeTenantChanges(this.base, changes, planChanges)
      for (const w of merged.warnings) this.log.warn(w)
      await this.gateway.reload(merged.config)
      this.changes = changes
      this.planChanges = planChanges
    })
  }

  /**
   * Applies `edit` to the tenant's stored changes (undefined: forget them), live, then stores it.
   * `check` sees the merged result first and may refuse it by throwing; it runs in turn with the other
   * changes, so a limit it checks holds however many requests arrive at once.
   */
  change(
    tenant: string,
    edit: (current: TenantChanges) => TenantChanges | undefined,
    check?: (config: GatewayConfig) => void,
  ): Promise<void> {
    return this.serial(async () => {
      const next = new Map(this.changes)
      const changed = edit(structuredClone(this.changes.get(tenant) ?? {}))
      if (changed === undefined) next.delete(tenant)
      else next.set(tenant, changed)
      const merged = mergeTenantChanges(this.base, next, this.planChanges)
      if (merged.warnings.length > 0) throw new ApiError(400, merged.warnings.join('; '))
      const { listeners, tenants } = merged.config
      const pinned = listeners.find((l) => l.tenant !== undefined && !Object.hasOwn(tenants, l.tenant))
      if (pinned !== undefined) {
        const only = `listener ${pinned.name} serves tenant ${pinned.tenant ?? ''} only`
        throw new ApiError(409, `${only}; change the YAML first`)
      }
      check?.(merged.config)
      await this.gateway.reload(merged.config)
      await this.store.setTenantChanges(tenant, changed)
      this.changes = next
    })
  }

  /**
   * Creates or replaces a plan (its limits apply live to every tenant on it), or deletes it (null) when
   * no tenant uses it, then stores the change.
   */
  changePlan(plan: string, limits: Limits | null): Promise<void> {
    return this.serial(async () => {
      if (limits === null) {
        const users = Object.entries(this.gateway.config.tenants)
          .filter(([, t]) => t.plan === plan)
          .map(([id]) => id)
        if (users.length > 0) {
          throw new ApiError(409, `plan ${plan} is used by ${users.join(', ')}; move them to another plan first`)
        }
      }
      const next: PlanChanges = new Map(this.planChanges)
      next.set(plan, limits)
      const merged = mergeTenantChanges(this.base, this.changes, next)
      if (merged.warnings.length > 0) throw new ApiError(409, merged.warnings.join('; '))
      await this.gateway.reload(merged.config)
      await this.store.setPlanChange(plan, limits)
      this.planChanges = next
    })
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work)
    this.queue = run.catch(() => {})
    return run
  }
}
