// A session's view of its tenant's ACL: compiled once per (tenant snapshot, user, client ID), so a
// reload that swaps the tenant applies new rules to existing connections, and the PUBLISH path only
// calls a prepared function.
import { aclRulesFor, compileAcl, type AclAction } from '../policy/acl.js'
import type { TenantRuntime } from '../tenancy/tenants.js'

export interface AclCheck {
  /** true when no rule applies to this user at all: the whole namespace is allowed */
  readonly open: boolean
  allows(action: AclAction, topicOrFilter: string): boolean
}

const OPEN: AclCheck = { open: true, allows: () => true }

export function compileAclCheck(tenant: TenantRuntime, user: string | undefined, clientId: string): AclCheck {
  const rules = aclRulesFor(tenant.config, user)
  if (rules === null) return OPEN
  return { open: false, allows: compileAcl(rules, { username: user, clientId }) }
}
