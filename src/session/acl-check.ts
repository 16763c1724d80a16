// The session's view of its tenant's ACL: compiled once per (tenant snapshot, user, client ID), so a
// reload that swaps the tenant applies new rules to existing connections, and the PUBLISH path only
// calls a prepared function.
import { aclRulesFor, compileAcl, type AclAction } from '../policy/acl.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import type { Session } from './session.js'

export interface AclCheck {
  /** true when no rule applies to this user at all: the whole namespace is allowed */
  readonly open: boolean
  allows (action: AclAction, topicOrFilter: string): boolean
}

const OPEN: AclCheck = { open: true, allows: () => true }
const compiled = new WeakMap<Session, { tenant: TenantRuntime; check: AclCheck }>()

export function aclFor (session: Session): AclCheck {
  const tenant = session.tenant
  if (tenant === undefined) return OPEN
  const cached = compiled.get(session)
  if (cached !== undefined && cached.tenant === tenant) return cached.check
  const rules = aclRulesFor(tenant.config, session.user)
  let check = OPEN
  if (rules !== null) {
    const fn = compileAcl(rules, { username: session.user, clientId: session.clientId })
    check = { open: false, allows: fn }
  }
  compiled.set(session, { tenant, check })
  return check
}
