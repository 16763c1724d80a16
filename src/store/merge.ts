// How the admin API's stored changes combine with the YAML (the operator's bootstrap), as a pure function:
//   * a plan the API created or changed has the API's limits; one it deleted is gone (unless a tenant
//     still names it);
//   * a tenant the API created has the API's settings only, whether or not the YAML names it;
//   * a tenant the API deleted is gone, even if the YAML names it (until the API creates it again);
//   * otherwise each key the API changed (plan, limits, disabled, hosts, anonymous, acl) wins over the
//     YAML's, users are merged one by one (the API's version of a user wins; a user deleted through the
//     API is gone), and every key the API never touched follows the YAML, reloads included.
import type { GatewayConfig, Limits, TenantConfig } from '../config/schema.js'
import type { TenantChangeKey, TenantChanges } from './store.js'

export interface MergeResult {
  config: GatewayConfig
  /** stored changes that no longer fit the YAML (e.g. a plan it removed); they are left out */
  warnings: string[]
}

const EMPTY_TENANT: TenantConfig = { limits: {}, hosts: [], anonymous: false, disabled: false, users: {} }

/**
 * A copy of `from` keyed by name without a prototype: a key like `__proto__` or `constructor` (a user
 * named so through the API) is then a key like any other, never the object's prototype or one of its
 * methods (issue #17 item 13: a user `__proto__` could log in and was missing from the list).
 */
function keyed<T>(from: Readonly<Record<string, T>>): Record<string, T> {
  const out = Object.create(null) as Record<string, T>
  for (const [k, v] of Object.entries(from)) out[k] = v
  return out
}

export function mergeTenantChanges(
  base: GatewayConfig,
  changes: ReadonlyMap<string, TenantChanges>,
  planChanges: ReadonlyMap<string, Limits | null> = new Map(),
): MergeResult {
  // Plans first: the API's version of a plan wins over the YAML's, and one it deleted is gone.
  const plans = keyed(base.plans)
  for (const [name, limits] of planChanges) {
    if (limits === null) delete plans[name]
    else plans[name] = limits
  }
  const tenants = keyed(base.tenants)
  const warnings: string[] = []
  for (const [id, c] of changes) {
    if (c.deleted === true) {
      delete tenants[id]
      continue
    }
    const from = c.created === true ? EMPTY_TENANT : Object.hasOwn(base.tenants, id) ? base.tenants[id] : undefined
    if (from === undefined) continue // changes to a YAML tenant the YAML has since removed
    const t: TenantConfig = { ...from }
    if (c.plan !== undefined) {
      if (c.plan === null) delete t.plan
      else if (c.plan in plans) t.plan = c.plan
      else {
        const using = t.plan === undefined ? 'no plan' : JSON.stringify(t.plan)
        const plan = JSON.stringify(c.plan)
        warnings.push(`tenant ${id}: plan ${plan} set through the API is not in the configuration; using ${using}`)
      }
    }
    if (c.limits !== undefined) t.limits = c.limits
    if (c.disabled !== undefined) t.disabled = c.disabled
    if (c.hosts !== undefined) t.hosts = c.hosts
    if (c.anonymous !== undefined) t.anonymous = c.anonymous
    if (c.acl !== undefined) {
      if (c.acl === null) delete t.acl
      else t.acl = c.acl
    }
    if (c.users !== undefined) {
      const users = keyed(t.users)
      for (const [name, u] of Object.entries(c.users)) {
        if (u === null) delete users[name]
        else users[name] = u
      }
      t.users = users
    }
    tenants[id] = t
  }
  // A plan deleted through the API that a tenant names again (the YAML gave it to one since) comes back
  // as the YAML has it, rather than leaving that tenant without its limits.
  for (const [id, t] of Object.entries(tenants)) {
    const plan = t.plan
    if (plan === undefined || plan in plans) continue
    const fromYaml = Object.hasOwn(base.plans, plan) ? base.plans[plan] : undefined
    if (fromYaml !== undefined) {
      plans[plan] = fromYaml
      const name = JSON.stringify(plan)
      warnings.push(`plan ${name}, deleted through the API, is kept as the YAML has it: tenant ${id} uses it`)
    } else {
      const { plan: _gone, ...rest } = t
      tenants[id] = rest
      warnings.push(`tenant ${id}: plan ${JSON.stringify(plan)} no longer exists; using no plan`)
    }
  }
  return { config: { ...base, plans, tenants }, warnings }
}

export type TenantSource = 'yaml' | 'api' | 'yaml+api'

/** Where a tenant's settings come from, and which keys the API changed: shown by `check` and the API. */
export function tenantSource(changes: TenantChanges | undefined): { source: TenantSource; changed: string[] } {
  if (changes === undefined || changes.deleted === true) return { source: 'yaml', changed: [] }
  if (changes.created === true) return { source: 'api', changed: [] }
  const keys: TenantChangeKey[] = ['plan', 'limits', 'disabled', 'hosts', 'anonymous', 'acl']
  const changed: string[] = keys.filter((k) => changes[k] !== undefined)
  for (const name of Object.keys(changes.users ?? {})) changed.push(`users.${name}`)
  return { source: changed.length > 0 ? 'yaml+api' : 'yaml', changed }
}
