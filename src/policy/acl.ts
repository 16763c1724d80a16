// Authorization per tenant and user (SPEC §6): user rules, then tenant rules; first match wins.
// Rules are written on tenant-local topics; the session checks before mounting.
import type { AclRule, TenantConfig } from '../config/schema.js'
import { parseShared, topicMatches } from '../tenancy/namespace.js'

export type AclAction = 'publish' | 'subscribe'

export interface AclContext {
  username: string | undefined
  clientId: string
}

/**
 * The rules that apply to `user`, user rules first; null when neither the tenant nor this user has an
 * `acl` — then the whole namespace is allowed. Another user's rules do not restrict this one.
 */
export function aclRulesFor (tenant: TenantConfig, user: string | undefined): readonly AclRule[] | null {
  const userRules = user === undefined ? undefined : tenant.users[user]?.acl
  if (userRules === undefined && tenant.acl === undefined) return null
  return [...(userRules ?? []), ...(tenant.acl ?? [])]
}

/**
 * Substitutes %u and %c. A value containing `/`, `+` or `#` (or a missing username) makes the rule
 * match nothing: a device must not gain wildcard power, or another level, through its own name.
 */
function substitute (filter: string, ctx: AclContext): string | undefined {
  if (!filter.includes('%')) return filter
  let ok = true
  const out = filter.replace(/%([uc])/g, (_m, which: string) => {
    const value = which === 'u' ? ctx.username : ctx.clientId
    if (value === undefined || value === '' || /[/+#]/.test(value)) ok = false
    return value ?? ''
  })
  return ok ? out : undefined
}

/** Whether every topic matched by `sub` is matched by `rule` (both valid filters). */
export function filterCovers (rule: string, sub: string): boolean {
  const r = rule.split('/')
  const s = sub.split('/')
  if (sub.startsWith('$') !== rule.startsWith('$') && (r[0] === '+' || r[0] === '#')) {
    // a first-level wildcard in `rule` never matches `$` topics [MQTT-4.7.2-1]
    if (sub.startsWith('$')) return false
  }
  for (let i = 0; i < r.length; i++) {
    const rl = r[i]
    if (rl === '#') return true
    const sl = s[i]
    if (sl === undefined) return false
    if (sl === '#') return false
    if (rl === '+') {
      if (i === 0 && sl.startsWith('$')) return false
      continue
    }
    if (sl === '+' || rl !== sl) return false
  }
  return r.length === s.length
}

/** Whether some topic matches both filters. */
export function filtersIntersect (a: string, b: string): boolean {
  const x = a.split('/')
  const y = b.split('/')
  for (let i = 0; ; i++) {
    const xl = x[i]
    const yl = y[i]
    if (xl === '#' || yl === '#') {
      // `#` at the first level never meets a `$` topic
      if (i === 0) return !((xl === '#' && yl?.startsWith('$') === true) || (yl === '#' && xl?.startsWith('$') === true))
      return true
    }
    if (xl === undefined || yl === undefined) return xl === yl
    if (xl === '+' || yl === '+') {
      if (i === 0 && ((xl === '+' && yl.startsWith('$')) || (yl === '+' && xl.startsWith('$')))) return false
      continue
    }
    if (xl !== yl) return false
  }
}

function applies (rule: AclRule, action: AclAction): boolean {
  return rule.action === 'all' || rule.action === action
}

/** The decision for one topic (publish) or one filter (subscribe: allowed only if all it can match is). */
export function isAllowed (rules: readonly AclRule[] | null, action: AclAction, topicOrFilter: string, ctx: AclContext): boolean {
  if (rules === null) return true
  if (action === 'publish') {
    for (const rule of rules) {
      if (!applies(rule, action)) continue
      const f = substitute(rule.topic, ctx)
      if (f !== undefined && topicMatches(f, topicOrFilter)) return rule.effect === 'allow'
    }
    return false
  }
  const sub = parseShared(topicOrFilter)?.filter ?? topicOrFilter
  for (const rule of rules) {
    if (!applies(rule, action)) continue
    const f = substitute(rule.topic, ctx)
    if (f === undefined) continue
    if (filterCovers(f, sub)) return rule.effect === 'allow'
    // Partly overlapping: a deny takes some of the filter's topics away; an allow leaves the rest open.
    if (rule.effect === 'deny' && filtersIntersect(f, sub)) return false
  }
  return false
}

/** The check with placeholders bound to one connection, and publish decisions cached per topic. */
export function compileAcl (rules: readonly AclRule[], ctx: AclContext): (action: AclAction, topicOrFilter: string) => boolean {
  const cache = new Map<string, boolean>()
  return (action, topicOrFilter) => {
    if (action !== 'publish') return isAllowed(rules, action, topicOrFilter, ctx)
    let allowed = cache.get(topicOrFilter)
    if (allowed === undefined) {
      allowed = isAllowed(rules, action, topicOrFilter, ctx)
      if (cache.size >= 256) cache.clear() // bounded: a device cycling through topics cannot grow it
      cache.set(topicOrFilter, allowed)
    }
    return allowed
  }
}
