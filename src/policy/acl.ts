// Authorization per tenant and user (SPEC §6): user rules, then tenant rules; first match wins.
// Rules are written on tenant-local topics; the session checks before mounting.
import type { AclRule, TenantConfig } from '../config/schema.js'
import { levelsMatch, parseShared } from '../tenancy/namespace.js'

export type AclAction = 'publish' | 'subscribe'

export interface AclContext {
  /** the tenant-local user name; undefined for an anonymous client */
  username: string | undefined
  /** the tenant-local (unmounted) client ID */
  clientId: string
}

/**
 * The rules that apply to `user`, user rules first; null when neither the tenant nor this user has an
 * `acl`, and then the whole namespace is allowed. "No `acl` anywhere" is read per user: rules written
 * for one user do not lock out the others (gateway.example.yaml gives bob rules and leaves alice
 * open), and a tenant-level `acl` applies to every user, users from `passwordFile` and anonymous ones.
 */
export function aclRulesFor(tenant: TenantConfig, user: string | undefined): readonly AclRule[] | null {
  const userRules = user === undefined || !Object.hasOwn(tenant.users, user) ? undefined : tenant.users[user]?.acl
  if (userRules === undefined && tenant.acl === undefined) return null
  return [...(userRules ?? []), ...(tenant.acl ?? [])]
}

/**
 * Substitutes %u and %c in one pass (a value is never substituted again). A value that is missing or
 * empty, or holds `/`, `+` or `#`, makes the rule match nothing: a device must not gain wildcard power,
 * or another level, through its own name (`devices/%u/#` with user `+` would be `devices/+/#`).
 */
function substitute(filter: string, ctx: AclContext): string | undefined {
  if (!filter.includes('%')) return filter
  let ok = true
  const out = filter.replace(/%([uc])/g, (_m, which: string) => {
    const value = which === 'u' ? ctx.username : ctx.clientId
    if (value === undefined || value === '' || /[/+#]/.test(value)) ok = false
    return value ?? ''
  })
  return ok ? out : undefined
}

/** Whether every topic matched by `sub` is matched by `rule` (both valid, non-shared filters). */
export function filterCovers(rule: string, sub: string): boolean {
  const r = rule.split('/')
  const s = sub.split('/')
  // a first-level wildcard in `rule` never matches `$` topics [MQTT-4.7.2-1]; `sub` may name some
  if (sub.startsWith('$') && (r[0] === '+' || r[0] === '#')) return false
  for (let i = 0; i < r.length; i++) {
    const rl = r[i]
    if (rl === '#') return true
    const sl = s[i]
    if (sl === undefined) return false // `sub` matches a topic with fewer levels than `rule` needs
    if (sl === '#') {
      // `sub` matches every tail here: the empty one too, unless that would leave the empty topic (no topic
      // is empty: `#`, `/#`). The rest of `rule` covers all of them only if it is `+`s then `#`, with no
      // more `+`s than the shortest tail has levels.
      const shortestTail = i === 0 || (i === 1 && s[0] === '') ? 1 : 0
      const rest = r.length - 1 - i // levels of `rule` before its last
      if (r[r.length - 1] !== '#' || rest > shortestTail) return false
      for (let j = i; j < r.length - 1; j++) if (r[j] !== '+') return false
      return true
    }
    if (rl === '+') continue
    if (sl === '+' || rl !== sl) return false
  }
  return r.length === s.length
}

/** Whether some topic matches both filters (valid, non-shared). */
export function filtersIntersect(a: string, b: string): boolean {
  const x = a.split('/')
  const y = b.split('/')
  for (let i = 0; ; i++) {
    const xl = x[i]
    const yl = y[i]
    if (xl === '#' || yl === '#') {
      // `#` at the first level never meets a `$` topic
      if (i === 0)
        return !((xl === '#' && yl?.startsWith('$') === true) || (yl === '#' && xl?.startsWith('$') === true))
      // the other filter ends here: only `#`'s parent is shared, and at one level it must not be the empty topic
      if (i === 1 && (xl === undefined || yl === undefined)) return x[0] !== '' && y[0] !== ''
      return true
    }
    if (xl === undefined || yl === undefined) return xl === yl
    if (xl === '+' || yl === '+') {
      if (i === 0 && (xl.startsWith('$') || yl.startsWith('$'))) return false
      continue
    }
    if (xl !== yl) return false
  }
}

/** One rule with its placeholders bound to a connection; `levels` is its filter split once. */
interface BoundRule {
  readonly allow: boolean
  readonly publish: boolean
  readonly subscribe: boolean
  readonly filter: string
  readonly levels: readonly string[]
}

/** Rules whose placeholders cannot be bound match nothing, so they are left out. */
function bind(rules: readonly AclRule[], ctx: AclContext): BoundRule[] {
  const bound: BoundRule[] = []
  for (const rule of rules) {
    const filter = substitute(rule.topic, ctx)
    if (filter === undefined) continue
    bound.push({
      allow: rule.effect === 'allow',
      publish: rule.action !== 'subscribe',
      subscribe: rule.action !== 'publish',
      filter,
      levels: filter.split('/'),
    })
  }
  return bound
}

function mayPublish(rules: readonly BoundRule[], topic: string): boolean {
  for (const rule of rules) {
    if (rule.publish && levelsMatch(rule.levels, topic)) return rule.allow
  }
  return false
}

/**
 * Every topic the filter can match must be allowed under first-match semantics: a rule covering the
 * whole filter decides; a deny covering part of it refuses (that part would be denied); an allow
 * covering part of it lets the walk go on for the rest; nothing covering the rest refuses.
 */
function maySubscribe(rules: readonly BoundRule[], filter: string): boolean {
  const sub = parseShared(filter)?.filter ?? filter
  for (const rule of rules) {
    if (!rule.subscribe) continue
    if (filterCovers(rule.filter, sub)) return rule.allow
    if (!rule.allow && filtersIntersect(rule.filter, sub)) return false
  }
  return false
}

/** The decision for one topic (publish) or one filter (subscribe: allowed only if all it can match is). */
export function isAllowed(
  rules: readonly AclRule[] | null,
  action: AclAction,
  topicOrFilter: string,
  ctx: AclContext,
): boolean {
  if (rules === null) return true
  const bound = bind(rules, ctx)
  return action === 'publish' ? mayPublish(bound, topicOrFilter) : maySubscribe(bound, topicOrFilter)
}

/** Entries kept per connection, and the longest topic kept: at most ~16K characters per connection. */
const CACHE_ENTRIES = 64
const CACHE_TOPIC_LENGTH = 256

/**
 * isAllowed with the placeholders bound once per connection (SPEC §6), for the PUBLISH hot path: each
 * rule's filter is substituted and split here, so a PUBLISH walks the topic in place and builds no
 * strings; publish decisions for short topics are also kept in a small bounded map.
 */
export function compileAcl(
  rules: readonly AclRule[] | null,
  ctx: AclContext,
): (action: AclAction, topicOrFilter: string) => boolean {
  if (rules === null) return () => true
  const bound = bind(rules, ctx)
  const cache = new Map<string, boolean>()
  return (action, topicOrFilter) => {
    if (action === 'subscribe') return maySubscribe(bound, topicOrFilter)
    let allowed = cache.get(topicOrFilter)
    if (allowed === undefined) {
      allowed = mayPublish(bound, topicOrFilter)
      if (topicOrFilter.length <= CACHE_TOPIC_LENGTH) {
        if (cache.size >= CACHE_ENTRIES) cache.clear() // a device cycling through topics cannot grow it
        cache.set(topicOrFilter, allowed)
      }
    }
    return allowed
  }
}
