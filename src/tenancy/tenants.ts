// The tenants as the running gateway sees them: config, effective limits and namespace, rebuilt as a
// whole on every reload so a session always reads one consistent snapshot of its tenant.
import type { GatewayConfig, Limits, TenantConfig } from '../config/schema.js'
import { effectiveLimits } from '../policy/plans.js'
import { namespaceFor, type Namespace } from './namespace.js'

export interface TenantRuntime {
  readonly id: string
  readonly config: TenantConfig
  readonly limits: Limits
  readonly ns: Namespace
}

export function buildTenants (config: GatewayConfig): ReadonlyMap<string, TenantRuntime> {
  const tenants = new Map<string, TenantRuntime>()
  for (const [id, tenant] of Object.entries(config.tenants)) {
    tenants.set(id, { id, config: tenant, limits: effectiveLimits(config, id), ns: namespaceFor(id, config.tenancy.namespace) })
  }
  return tenants
}
