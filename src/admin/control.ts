// The admin API's write side: a change to a tenant is merged with the YAML, applied to the running
// gateway like a reload (nobody is disconnected unless their tenant is disabled or deleted), and only
// then persisted. Changes run one at a time so two requests never overwrite each other's.
import type { GatewayConfig } from '../config/schema.js'
import type { Gateway } from '../gateway.js'
import type { Logger } from '../log.js'
import { mergeTenantChanges, tenantSource, type TenantSource } from '../store/merge.js'
import type { Store, TenantChanges } from '../store/store.js'

/** An answer for the API client: HTTP status and a message meant for a person. */
export class ApiError extends Error {
  constructor (readonly statusCode: number, message: string) { super(message) }
}

export class TenantControl {
  private queue: Promise<unknown> = Promise.resolve()

  constructor (
    private base: GatewayConfig,
    private changes: Map<string, TenantChanges>,
    private readonly store: Store,
    private readonly gateway: Gateway,
    private readonly log: Logger,
  ) {}

  /** The running configuration (YAML merged with the API's changes). */
  get config (): GatewayConfig { return this.gateway.config }

  exists (tenant: string): boolean { return Object.hasOwn(this.gateway.config.tenants, tenant) }

  source (tenant: string): { source: TenantSource; changed: string[] } {
    return tenantSource(this.changes.get(tenant))
  }

  /** A new YAML (SIGHUP, --watch): the API's changes are merged over it again. */
  setBase (base: GatewayConfig): Promise<void> {
    return this.serial(async () => {
      const merged = mergeTenantChanges(base, this.changes)
      for (const w of merged.warnings) this.log.warn(w)
      await this.gateway.reload(merged.config)
      this.base = base
    })
  }

  /** Applies `edit` to the tenant's stored changes (undefined: forget them), live, then stores it. */
  change (tenant: string, edit: (current: TenantChanges) => TenantChanges | undefined): Promise<void> {
    return this.serial(async () => {
      const next = new Map(this.changes)
      const changed = edit(structuredClone(this.changes.get(tenant) ?? {}))
      if (changed === undefined) next.delete(tenant)
      else next.set(tenant, changed)
      const merged = mergeTenantChanges(this.base, next)
      if (merged.warnings.length > 0) throw new ApiError(400, merged.warnings.join('; '))
      const pinned = merged.config.listeners.find((l) => l.tenant !== undefined && !Object.hasOwn(merged.config.tenants, l.tenant))
      if (pinned !== undefined) throw new ApiError(409, `listener ${pinned.name} serves tenant ${pinned.tenant ?? ''} only; change the YAML first`)
      await this.gateway.reload(merged.config)
      await this.store.setTenantChanges(tenant, changed)
      this.changes = next
    })
  }

  private serial<T> (work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work)
    this.queue = run.catch(() => {})
    return run
  }
}
