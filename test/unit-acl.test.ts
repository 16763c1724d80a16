// Authorization rules (SPEC §6) as pure functions: table tests and properties.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { AclRule, TenantConfig } from '../src/config/schema.js'
import { aclRulesFor, isAllowed, filterCovers, filtersIntersect } from '../src/policy/acl.js'
import { topicMatches } from '../src/tenancy/namespace.js'

const allow = (action: AclRule['action'], topic: string): AclRule => ({ effect: 'allow', action, topic })
const deny = (action: AclRule['action'], topic: string): AclRule => ({ effect: 'deny', action, topic })
const ctx = { username: 'alice', clientId: 'dev-1' }

function tenant (acl?: AclRule[], users: TenantConfig['users'] = {}): TenantConfig {
  return { limits: {}, hosts: [], anonymous: false, disabled: false, users, ...(acl !== undefined ? { acl } : {}) }
}

test('no acl anywhere allows everything; some acl without a match denies', () => {
  assert.equal(aclRulesFor(tenant(), 'alice'), null)
  assert.ok(isAllowed(null, 'publish', 'any/thing', ctx))
  const rules = aclRulesFor(tenant([allow('publish', 'a/#')]), 'alice')
  assert.ok(isAllowed(rules, 'publish', 'a/b', ctx))
  assert.ok(!isAllowed(rules, 'publish', 'b', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', 'a/b', ctx))
})

test('user rules come first, then tenant rules; first match wins', () => {
  const t = tenant([deny('all', 'secret/#'), allow('all', '#')], { alice: { password: 'x', acl: [allow('publish', 'secret/alice')] } })
  const alice = aclRulesFor(t, 'alice')
  const bob = aclRulesFor(t, 'bob')
  assert.ok(isAllowed(alice, 'publish', 'secret/alice', ctx))
  assert.ok(!isAllowed(alice, 'publish', 'secret/other', ctx))
  assert.ok(!isAllowed(bob, 'publish', 'secret/alice', { username: 'bob', clientId: 'x' }))
  assert.ok(isAllowed(bob, 'publish', 'open', { username: 'bob', clientId: 'x' }))
})

test('%u and %c placeholders; a name carrying wildcards or levels never widens a rule', () => {
  const rules = [allow('publish', 'devices/%u/#'), allow('subscribe', 'in/%c')]
  assert.ok(isAllowed(rules, 'publish', 'devices/alice/t', ctx))
  assert.ok(!isAllowed(rules, 'publish', 'devices/bob/t', ctx))
  assert.ok(isAllowed(rules, 'subscribe', 'in/dev-1', ctx))
  for (const username of ['+', '#', 'a/b']) {
    assert.ok(!isAllowed(rules, 'publish', `devices/${username}/t`, { username, clientId: 'c' }))
    assert.ok(!isAllowed(rules, 'publish', 'devices/x/t', { username, clientId: 'c' }))
  }
  assert.ok(!isAllowed(rules, 'publish', 'devices//t', { username: undefined, clientId: 'c' }))
})

test('a SUBSCRIBE filter is allowed only if everything it can match is', () => {
  const rules = [allow('subscribe', 'devices/#')]
  assert.ok(isAllowed(rules, 'subscribe', 'devices/+/temp', ctx))
  assert.ok(isAllowed(rules, 'subscribe', 'devices/#', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', '#', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', '+/temp', ctx))
  assert.ok(isAllowed(rules, 'subscribe', '$share/g/devices/x', ctx))
  const withHole = [deny('subscribe', 'devices/secret'), allow('subscribe', 'devices/#')]
  assert.ok(!isAllowed(withHole, 'subscribe', 'devices/#', ctx))
  assert.ok(!isAllowed(withHole, 'subscribe', 'devices/+', ctx))
  assert.ok(isAllowed(withHole, 'subscribe', 'devices/public', ctx))
  assert.ok(isAllowed(withHole, 'subscribe', 'devices/+/x', ctx))
})

test('filterCovers and filtersIntersect on + and #', () => {
  assert.ok(filterCovers('a/#', 'a'))
  assert.ok(filterCovers('a/#', 'a/+/b'))
  assert.ok(!filterCovers('a/+', 'a/#'))
  assert.ok(filterCovers('#', '+/x'))
  assert.ok(filtersIntersect('+/+', 'a/#'))
  assert.ok(!filtersIntersect('a/+', 'b/#'))
  assert.ok(!filtersIntersect('a/b', 'a/b/c'))
  assert.ok(filtersIntersect('a/#', 'a'))
})

const lvl = fc.constantFrom('a', 'b', 'c')
const topicArb = fc.array(lvl, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'))
const filterArb = fc.tuple(fc.array(fc.oneof(lvl, fc.constant('+')), { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([l, hash]) => [...l, ...(hash ? ['#'] : [])].join('/'))
const rulesArb = fc.array(fc.tuple(fc.boolean(), filterArb).map(([a, f]) => (a ? allow : deny)('all', f)), { maxLength: 5 })

test('property: filterCovers(a, b) and b matches t ⇒ a matches t', () => {
  fc.assert(fc.property(filterArb, filterArb, topicArb, (a, b, t) => {
    if (filterCovers(a, b) && topicMatches(b, t)) assert.ok(topicMatches(a, t))
  }), { numRuns: 3000 })
})

test('property: filters that do not intersect share no topic', () => {
  fc.assert(fc.property(filterArb, filterArb, topicArb, (a, b, t) => {
    if (!filtersIntersect(a, b)) assert.ok(!(topicMatches(a, t) && topicMatches(b, t)))
  }), { numRuns: 3000 })
})

test('property: every topic a granted subscription can deliver is allowed', () => {
  fc.assert(fc.property(rulesArb, filterArb, topicArb, (rules, f, t) => {
    if (isAllowed(rules, 'subscribe', f, ctx) && topicMatches(f, t)) assert.ok(isAllowed(rules, 'publish', t, ctx))
  }), { numRuns: 3000 })
})
