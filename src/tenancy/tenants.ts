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

export function buildTenants(config: GatewayConfig): ReadonlyMap<string, TenantRuntime> {
  const tenants = new Map<string, TenantRuntime>()
  for (const [id, tenant] of Object.entries(config.tenants)) {
    const limits = effectiveLimits(config, id)
    // The gateway-wide default bounds the tenants whose plan sets none: the session's frame reader and
    // the v5 CONNACK's Maximum Packet Size read it from here (SPEC §7).
    if (limits.maxPacketSize === undefined) limits.maxPacketSize = config.maxPacketSize
    tenants.set(id, { id, config: tenant, limits, ns: namespaceFor(id, config.tenancy.namespace) })
  }
  return tenants
}
