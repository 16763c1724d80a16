// A tenant's limits: its plan, overridden key by key by its own `limits` (SPEC §7). Absent = unlimited.
import type { GatewayConfig, Limits } from '../config/schema.js'

export function effectiveLimits(config: GatewayConfig, tenantId: string): Limits {
  const tenant = config.tenants[tenantId]
  if (tenant === undefined) return {}
  const plan = tenant.plan === undefined ? {} : (config.plans[tenant.plan] ?? {})
  const merged: Limits = { ...plan }
  for (const [key, value] of Object.entries(tenant.limits)) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value
  }
  return merged
}
