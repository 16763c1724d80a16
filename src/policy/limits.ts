// Connection quotas (SPEC §7): per tenant and for the whole gateway. A slot is taken at admission and
// given back exactly once when the session ends, on every close path.
import type { ReasonName } from '../reason-codes.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import { UNLIMITED, type SessionPolicy } from './session-policy.js'

export class ConnectionQuotas {
  private readonly perTenant = new Map<string, number>()
  private total = 0

  constructor (public gatewayMax: number | undefined) {}

  /** Takes a slot for a new connection of `tenant`, or names the limit that refuses it. */
  admit (tenant: TenantRuntime): SessionPolicy | ReasonName {
    if (this.gatewayMax !== undefined && this.total >= this.gatewayMax) return 'serverBusy'
    const current = this.perTenant.get(tenant.id) ?? 0
    const max = tenant.limits.maxConnections
    if (max !== undefined && current >= max) return 'quotaExceeded'
    this.perTenant.set(tenant.id, current + 1)
    this.total++
    return UNLIMITED
  }

  release (tenantId: string): void {
    const current = this.perTenant.get(tenantId) ?? 0
    if (current <= 1) this.perTenant.delete(tenantId)
    else this.perTenant.set(tenantId, current - 1)
    this.total--
  }

  connections (tenantId?: string): number {
    return tenantId === undefined ? this.total : (this.perTenant.get(tenantId) ?? 0)
  }
}
