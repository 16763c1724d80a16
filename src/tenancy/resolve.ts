// Which tenant a connection belongs to (SPEC §4), from the listener, the TLS SNI host and the username.
// Pure: the first source in `tenancy.resolve` that names a tenant decides it, and any other source
// naming a different tenant refuses the connection — never guessed.
import type { GatewayConfig, TenancyConfig } from '../config/schema.js'
import { TENANT_ID } from './tenant-id.js'

export interface ResolveInput {
  listenerTenant?: string
  sniHost?: string
  username?: string
}

/** Why no tenant was found, for the operator's log (the client hears bad credentials whatever it is). */
export type ResolutionFailure = 'noTenant' | 'unknownTenant' | 'tenantConflict'

export type Resolution =
  { ok: true; tenant: string; user: string | undefined } | { ok: false; cause: ResolutionFailure }

/**
 * Splits a username by a pattern like `{username}@{tenant}` (at the LAST separator, so `a@b@acme` is
 * user `a@b`) or `{tenant}/{username}` (at the FIRST). Undefined when the separator is absent or a side
 * is empty, or the tenant part is not a tenant ID.
 */
export function parseUsername(username: string, pattern: string): { user: string; tenant: string } | undefined {
  const tenantFirst = pattern.startsWith('{tenant}')
  const sep = tenantFirst
    ? pattern.slice('{tenant}'.length, -'{username}'.length)
    : pattern.slice('{username}'.length, -'{tenant}'.length)
  const at = tenantFirst ? username.indexOf(sep) : username.lastIndexOf(sep)
  if (sep === '' || at < 0) return undefined
  const left = username.slice(0, at)
  const right = username.slice(at + sep.length)
  const [tenant, user] = tenantFirst ? [left, right] : [right, left]
  if (user === '' || !TENANT_ID.test(tenant)) return undefined
  return { user, tenant }
}

function tenantFromSni(host: string, tenancy: TenancyConfig, tenants: GatewayConfig['tenants']): string | undefined {
  const name = host.toLowerCase()
  for (const [id, t] of Object.entries(tenants)) {
    if (t.hosts.some((h) => h.toLowerCase() === name)) return id
  }
  if (tenancy.sni === undefined) return undefined
  const [before, after] = tenancy.sni.toLowerCase().split('{tenant}') as [string, string]
  if (!name.startsWith(before) || !name.endsWith(after) || name.length <= before.length + after.length) return undefined
  const label = name.slice(before.length, name.length - after.length)
  return TENANT_ID.test(label) ? label : undefined
}

export function resolveTenant(
  input: ResolveInput,
  tenancy: TenancyConfig,
  tenants: GatewayConfig['tenants'],
): Resolution {
  const parsed = input.username === undefined ? undefined : parseUsername(input.username, tenancy.username)
  const fixed = new Set<string>()
  if (tenancy.resolve.includes('listener') && input.listenerTenant !== undefined) fixed.add(input.listenerTenant)
  if (tenancy.resolve.includes('sni') && input.sniHost !== undefined) {
    const t = tenantFromSni(input.sniHost, tenancy, tenants)
    if (t !== undefined) fixed.add(t)
  }
  if (fixed.size > 1) return { ok: false, cause: 'tenantConflict' }
  const [bound] = fixed
  if (bound !== undefined) {
    if (!(bound in tenants)) return { ok: false, cause: 'unknownTenant' }
    if (parsed === undefined) return { ok: true, tenant: bound, user: input.username }
    if (parsed.tenant === bound) return { ok: true, tenant: bound, user: parsed.user }
    // `alice@globex` on acme's listener names another tenant: a conflict. `bob@example.com` names
    // none, so the whole string is acme's user name.
    if (tenancy.resolve.includes('username') && parsed.tenant in tenants) return { ok: false, cause: 'tenantConflict' }
    return { ok: true, tenant: bound, user: input.username }
  }
  if (!tenancy.resolve.includes('username') || parsed === undefined) return { ok: false, cause: 'noTenant' }
  if (!(parsed.tenant in tenants)) return { ok: false, cause: 'unknownTenant' }
  return { ok: true, tenant: parsed.tenant, user: parsed.user }
}
