// Authorization rules (SPEC §6) as pure functions: table tests and properties.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { AclRule, TenantConfig } from '../src/config/schema.js'
import {
  aclRulesFor,
  isAllowed,
  compileAcl,
  filterCovers,
  filtersIntersect,
  type AclAction,
  type AclContext,
} from '../src/policy/acl.js'
import { topicMatches } from '../src/tenancy/namespace.js'

const allow = (action: AclRule['action'], topic: string): AclRule => ({ effect: 'allow', action, topic })
const deny = (action: AclRule['action'], topic: string): AclRule => ({ effect: 'deny', action, topic })
const ctx: AclContext = { username: 'alice', clientId: 'dev-1' }

function tenant(acl?: AclRule[], users: TenantConfig['users'] = {}): TenantConfig {
  return { limits: {}, hosts: [], anonymous: false, disabled: false, users, ...(acl !== undefined ? { acl } : {}) }
}

// ---- §6, rule by rule ------------------------------------------------------------------------------

test('§6: no acl anywhere → everything inside the namespace is allowed', () => {
  assert.equal(aclRulesFor(tenant(), 'alice'), null)
  assert.equal(aclRulesFor(tenant(), undefined), null)
  assert.equal(aclRulesFor(tenant(undefined, { alice: { password: 'x' } }), 'alice'), null)
  for (const action of ['publish', 'subscribe'] as const) {
    assert.ok(isAllowed(null, action, 'any/thing', ctx))
    assert.ok(compileAcl(null, ctx)(action, '#'))
  }
})

test('§6: some acl but no match → denied', () => {
  const rules = aclRulesFor(tenant([allow('publish', 'a/#')]), 'alice')
  assert.ok(isAllowed(rules, 'publish', 'a/b', ctx))
  assert.ok(!isAllowed(rules, 'publish', 'b', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', 'a/b', ctx)) // a publish rule says nothing about subscribing
  assert.ok(!isAllowed([], 'publish', 'a', ctx)) // an empty `acl: []` is "some acl": nothing allowed
  assert.ok(!isAllowed(aclRulesFor(tenant([]), 'bob'), 'subscribe', 'a', ctx))
})

test('§6: "no acl anywhere" is per user — another user\'s rules do not lock this one out', () => {
  const t = tenant(undefined, {
    alice: { password: 'x' },
    bob: { password: 'x', acl: [allow('publish', 'devices/bob/#')] },
  })
  assert.equal(aclRulesFor(t, 'alice'), null)
  assert.equal(aclRulesFor(t, 'carol'), null) // e.g. a user from passwordFile
  assert.equal(aclRulesFor(t, undefined), null) // anonymous
  assert.deepEqual(aclRulesFor(t, 'bob'), [allow('publish', 'devices/bob/#')])
  // user names that are Object.prototype keys are plain names, not lookups into the prototype
  assert.equal(aclRulesFor(t, 'constructor'), null)
  assert.equal(aclRulesFor(t, '__proto__'), null)
})

test('§6: user rules first, then tenant rules; first match wins', () => {
  const t = tenant([deny('all', 'secret/#'), allow('all', '#')], {
    alice: { password: 'x', acl: [allow('publish', 'secret/alice')] },
  })
  const alice = aclRulesFor(t, 'alice')
  const bob = aclRulesFor(t, 'bob')
  const bobCtx = { username: 'bob', clientId: 'x' }
  assert.deepEqual(alice, [allow('publish', 'secret/alice'), deny('all', 'secret/#'), allow('all', '#')])
  assert.ok(isAllowed(alice, 'publish', 'secret/alice', ctx))
  assert.ok(!isAllowed(alice, 'subscribe', 'secret/alice', ctx)) // her rule is publish-only; the tenant deny decides
  assert.ok(!isAllowed(alice, 'publish', 'secret/other', ctx))
  assert.ok(!isAllowed(bob, 'publish', 'secret/alice', bobCtx))
  assert.ok(isAllowed(bob, 'publish', 'open', bobCtx))
  assert.ok(isAllowed(aclRulesFor(t, undefined), 'publish', 'open', { username: undefined, clientId: 'x' }))
  // order matters: the same rules the other way round
  assert.ok(isAllowed([allow('all', '#'), deny('all', 'secret/#')], 'publish', 'secret/x', ctx))
})

test('§6: `all` applies to both actions; publish and subscribe rules only to their own', () => {
  const rules = [deny('publish', 'ro/#'), deny('subscribe', 'wo/#'), allow('all', '#')]
  assert.ok(!isAllowed(rules, 'publish', 'ro/x', ctx))
  assert.ok(isAllowed(rules, 'subscribe', 'ro/x', ctx))
  assert.ok(isAllowed(rules, 'publish', 'wo/x', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', 'wo/x', ctx))
})

test('§6: the example rules of SPEC §3 (allow publish devices/%u/#, allow subscribe devices/#)', () => {
  const rules = [allow('publish', 'devices/%u/#'), allow('subscribe', 'devices/#')]
  assert.ok(isAllowed(rules, 'publish', 'devices/alice/temp', ctx))
  assert.ok(isAllowed(rules, 'publish', 'devices/alice', ctx)) // `#` includes the parent level
  assert.ok(!isAllowed(rules, 'publish', 'devices/bob/temp', ctx))
  assert.ok(isAllowed(rules, 'subscribe', 'devices/+/temp', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', '#', ctx))
})

// ---- placeholders ----------------------------------------------------------------------------------

test('%u and %c are substituted in rule topics', () => {
  const rules = [allow('publish', 'devices/%u/#'), allow('subscribe', 'in/%c'), allow('publish', 'pair/%u/%c')]
  assert.ok(isAllowed(rules, 'publish', 'devices/alice/t', ctx))
  assert.ok(!isAllowed(rules, 'publish', 'devices/bob/t', ctx))
  assert.ok(isAllowed(rules, 'subscribe', 'in/dev-1', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', 'in/dev-2', ctx))
  assert.ok(isAllowed(rules, 'publish', 'pair/alice/dev-1', ctx))
  assert.ok(!isAllowed(rules, 'publish', 'pair/dev-1/alice', ctx))
  // one pass: a name that itself looks like a placeholder is taken literally
  assert.ok(isAllowed(rules, 'publish', 'pair/%c/dev-1', { username: '%c', clientId: 'dev-1' }))
  assert.ok(!isAllowed(rules, 'publish', 'pair/dev-1/dev-1', { username: '%c', clientId: 'dev-1' }))
  // other % sequences are literal
  assert.ok(isAllowed([allow('publish', '100%/%x')], 'publish', '100%/%x', ctx))
})

test('a name carrying wildcards or levels never widens a rule (injection through %u / %c)', () => {
  const rules = [allow('all', 'devices/%u/#'), allow('all', 'in/%c')]
  for (const username of ['+', '#', 'a/b', '/', 'a+', 'x#', '+/#']) {
    const c = { username, clientId: 'c' }
    for (const t of [`devices/${username}/t`, 'devices/x/t', 'devices/x', 'devices/a/b/t']) {
      assert.ok(!isAllowed(rules, 'publish', t, c), `${username}: ${t}`)
    }
    for (const f of ['devices/#', 'devices/+/t', `devices/${username}/#`])
      assert.ok(!isAllowed(rules, 'subscribe', f, c), `${username}: ${f}`)
  }
  for (const clientId of ['+', '#', 'a/b']) {
    assert.ok(!isAllowed(rules, 'subscribe', 'in/+', { username: 'alice', clientId }))
    assert.ok(!isAllowed(rules, 'publish', 'in/x', { username: 'alice', clientId }))
    assert.ok(!isAllowed(rules, 'publish', 'in/a/b', { username: 'alice', clientId }))
  }
  // a missing (anonymous) or empty user name: %u rules match nothing; later rules still apply
  const withFallback = [...rules, allow('publish', 'public/#')]
  for (const username of [undefined, '']) {
    assert.ok(!isAllowed(withFallback, 'publish', 'devices//t', { username, clientId: 'c' }))
    assert.ok(!isAllowed(withFallback, 'publish', 'devices/undefined/t', { username, clientId: 'c' }))
    assert.ok(isAllowed(withFallback, 'publish', 'public/x', { username, clientId: 'c' }))
  }
  // a deny rule whose placeholder cannot be bound is skipped too: it denies nothing it was not written for
  assert.ok(
    isAllowed([deny('publish', 'devices/%u/#'), allow('publish', '#')], 'publish', 'devices/x/t', {
      username: '+',
      clientId: 'c',
    }),
  )
})

// ---- subscriptions: every topic the filter can match must be allowed -----------------------------------

test('a SUBSCRIBE filter is allowed only if everything it can match is', () => {
  const rules = [allow('subscribe', 'devices/#')]
  assert.ok(isAllowed(rules, 'subscribe', 'devices/+/temp', ctx))
  assert.ok(isAllowed(rules, 'subscribe', 'devices/#', ctx))
  assert.ok(isAllowed(rules, 'subscribe', 'devices', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', '#', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', '+/temp', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', '+/#', ctx))
  assert.ok(isAllowed(rules, 'subscribe', '$share/g/devices/x', ctx))
  assert.ok(!isAllowed(rules, 'subscribe', '$share/g/#', ctx))

  const withHole = [deny('subscribe', 'devices/secret'), allow('subscribe', 'devices/#')]
  assert.ok(!isAllowed(withHole, 'subscribe', 'devices/#', ctx))
  assert.ok(!isAllowed(withHole, 'subscribe', 'devices/+', ctx))
  assert.ok(isAllowed(withHole, 'subscribe', 'devices/public', ctx))
  assert.ok(isAllowed(withHole, 'subscribe', 'devices/+/x', ctx))

  // partial allows add up until a later rule covers the rest
  const pieces = [
    allow('subscribe', 'a/b/#'),
    allow('subscribe', 'a/+/c'),
    deny('subscribe', 'a/x/#'),
    allow('subscribe', 'a/#'),
  ]
  assert.ok(!isAllowed(pieces, 'subscribe', 'a/#', ctx)) // the deny takes a/x/… away
  assert.ok(isAllowed(pieces, 'subscribe', 'a/+/c', ctx))
  assert.ok(isAllowed(pieces, 'subscribe', 'a/y/#', ctx))
  assert.ok(!isAllowed(pieces, 'subscribe', 'a/+/d', ctx)) // a/x/d is denied
  assert.ok(!isAllowed([allow('subscribe', 'a/b'), allow('subscribe', 'a/c')], 'subscribe', 'a/+', ctx)) // a/d: no rule
  // a partial allow before a covering deny: the deny decides
  assert.ok(!isAllowed([allow('subscribe', 'a/b'), deny('subscribe', 'a/#')], 'subscribe', 'a/+', ctx))
  // `+/#` covers `#`: both match every topic not starting with `$`
  assert.ok(isAllowed([allow('subscribe', '+/#')], 'subscribe', '#', ctx))
})

test('$ topics and first-level wildcards [MQTT-4.7.2-1]', () => {
  assert.ok(!isAllowed([allow('all', '#')], 'publish', '$SYS/x', ctx))
  assert.ok(!isAllowed([allow('all', '+/x')], 'publish', '$SYS/x', ctx))
  assert.ok(!isAllowed([allow('all', '#')], 'subscribe', '$SYS/#', ctx))
  assert.ok(isAllowed([allow('all', '$SYS/#')], 'subscribe', '$SYS/x', ctx))
  // a deny on `#` does not reach `$` topics either
  assert.ok(isAllowed([deny('all', '#'), allow('all', '$x/#')], 'subscribe', '$x/+', ctx))
})

const covers: Array<[string, string, boolean]> = [
  ['a/#', 'a', true],
  ['a/#', 'a/#', true],
  ['a/#', 'a/+/b', true],
  ['a/#', 'a/+', true],
  ['a/#', '+', false],
  ['a/+', 'a/#', false],
  ['a/+', 'a/b', true],
  ['a/+', 'a/+', true],
  ['a/b', 'a/+', false],
  ['a/+/#', 'a/#', false], // a/# matches a
  ['a/+/#', 'a/+', true],
  ['#', '+/x', true],
  ['#', '#', true],
  ['#', '$SYS/#', false],
  ['+/#', '#', true],
  ['+/#', 'a/#', true],
  ['+/+/#', '+/#', false],
  ['+', '+', true],
  ['+', '#', false],
  ['+', '$x', false],
  ['$x/#', '$x/+', true],
  ['a', 'a/b', false],
  ['a/b', 'a', false],
]
const intersects: Array<[string, string, boolean]> = [
  ['+/+', 'a/#', true],
  ['a/+', 'b/#', false],
  ['a/b', 'a/b/c', false],
  ['a/#', 'a', true],
  ['a/+', 'a', false],
  ['#', '$SYS/#', false],
  ['+/#', '$x', false],
  ['$x/#', '$x', true],
  ['#', '+', true],
  ['a/+/c', 'a/b/+', true],
  ['a/+/c', 'a/b/d', false],
]
test('filterCovers and filtersIntersect on + and #', () => {
  for (const [rule, sub, expected] of covers) assert.equal(filterCovers(rule, sub), expected, `${rule} covers ${sub}`)
  for (const [a, b, expected] of intersects) {
    assert.equal(filtersIntersect(a, b), expected, `${a} ∩ ${b}`)
    assert.equal(filtersIntersect(b, a), expected, `${b} ∩ ${a}`)
  }
})

test('compileAcl binds the placeholders once and decides like isAllowed, cache or not', () => {
  const rules = [
    deny('all', 'admin/#'),
    allow('publish', 'devices/%u/#'),
    allow('subscribe', 'devices/#'),
    allow('all', 'public/%c/+'),
  ]
  const check = compileAcl(rules, ctx)
  const cases: Array<[AclAction, string]> = [
    ['publish', 'devices/alice/t'],
    ['publish', 'devices/bob/t'],
    ['publish', 'admin/x'],
    ['publish', 'public/dev-1/x'],
    ['subscribe', 'devices/+/t'],
    ['subscribe', '#'],
    ['subscribe', 'public/dev-1/+'],
    ['subscribe', '$share/g/devices/#'],
  ]
  for (let round = 0; round < 3; round++) {
    // the second and third rounds hit the cache
    for (const [action, t] of cases) assert.equal(check(action, t), isAllowed(rules, action, t, ctx), `${action} ${t}`)
  }
  // many distinct topics, some long: the cache stays bounded and answers stay right
  for (let i = 0; i < 1000; i++) {
    const t = i % 3 === 0 ? `devices/alice/${'x'.repeat(i)}` : `devices/${i % 2 === 0 ? 'alice' : 'bob'}/${i}`
    assert.equal(check('publish', t), isAllowed(rules, 'publish', t, ctx), t)
  }
  // a publish answer is never served to a subscribe (and the other way round)
  const split = compileAcl([allow('publish', 'p')], ctx)
  assert.ok(split('publish', 'p'))
  assert.ok(!split('subscribe', 'p'))
})

// ---- properties -------------------------------------------------------------------------------------

const lvl = fc.constantFrom('a', 'b', '')
const firstLvl = fc.constantFrom('a', 'b', '', '$s')
const topicArb = fc
  .tuple(firstLvl, fc.array(lvl, { maxLength: 4 }))
  .map(([h, l]) => [h, ...l].join('/'))
  .filter((t) => t !== '')
const filterArb = fc
  .tuple(
    fc.oneof(firstLvl, fc.constant('+')),
    fc.array(fc.oneof(lvl, fc.constant('+')), { maxLength: 3 }),
    fc.boolean(),
  )
  .map(([h, l, hash]) => [h, ...l, ...(hash ? ['#'] : [])].join('/'))
  .filter((f) => f !== '') // the empty filter is invalid [MQTT-4.7.3-1]
  .chain((f) => fc.constantFrom(f, '#', '+/#'))
const actionArb = fc.constantFrom<AclRule['action']>('all', 'all', 'publish', 'subscribe')
const rulesArb = fc.array(
  fc.tuple(fc.boolean(), actionArb, filterArb).map(([a, action, f]) => (a ? allow : deny)(action, f)),
  { maxLength: 6 },
)

/** Every topic over the alphabet up to 6 levels: enough to witness any difference between filters of ≤ 5 levels. */
const ALL_TOPICS: string[] = (() => {
  const out: string[] = []
  const grow = (prefix: string[], depth: number): void => {
    if (prefix.length > 0) out.push(prefix.join('/'))
    if (depth === 0) return
    for (const l of prefix.length === 0 ? ['a', 'b', 'z', '', '$s'] : ['a', 'b', 'z', ''])
      grow([...prefix, l], depth - 1)
  }
  grow([], 6)
  return out.filter((t) => t !== '')
})()

test('property: filterCovers(a, b) and b matches t ⇒ a matches t (and it is exact)', () => {
  fc.assert(
    fc.property(filterArb, filterArb, (a, b) => {
      const truth = ALL_TOPICS.every((t) => !topicMatches(b, t) || topicMatches(a, t))
      assert.equal(filterCovers(a, b), truth, `${a} covers ${b}`)
    }),
    { numRuns: 1500 },
  )
})

test('filterCovers and filtersIntersect are exact over every pair of filters of up to 3 levels (a, empty, +, $s, then #)', () => {
  const filters: string[] = ['#']
  const grow = (prefix: string[], depth: number): void => {
    if (prefix.length > 0) filters.push(prefix.join('/'), [...prefix, '#'].join('/'))
    if (depth === 0) return
    for (const l of prefix.length === 0 ? ['a', '', '+', '$s'] : ['a', '', '+']) grow([...prefix, l], depth - 1)
  }
  grow([], 3)
  const valid = filters.filter((f) => f !== '')
  const matched = new Map(valid.map((f) => [f, ALL_TOPICS.filter((t) => topicMatches(f, t))]))
  for (const a of valid) {
    for (const b of valid) {
      const ofB = matched.get(b) ?? []
      assert.equal(
        filterCovers(a, b),
        ofB.every((t) => topicMatches(a, t)),
        `${a} covers ${b}`,
      )
      assert.equal(
        filtersIntersect(a, b),
        ofB.some((t) => topicMatches(a, t)),
        `${a} intersects ${b}`,
      )
    }
  }
})

test('property: filters that do not intersect share no topic (and it is exact)', () => {
  fc.assert(
    fc.property(filterArb, filterArb, (a, b) => {
      const truth = ALL_TOPICS.some((t) => topicMatches(a, t) && topicMatches(b, t))
      assert.equal(filtersIntersect(a, b), truth, `${a} ∩ ${b}`)
    }),
    { numRuns: 1500 },
  )
})

test('property: every topic a granted subscription can deliver is allowed by the first matching rule', () => {
  fc.assert(
    fc.property(rulesArb, filterArb, fc.option(fc.constant('$share/g/')), (rules, f, share) => {
      if (!isAllowed(rules, 'subscribe', (share ?? '') + f, ctx)) return
      for (const t of ALL_TOPICS) {
        if (!topicMatches(f, t)) continue
        const first = rules.find((r) => r.action !== 'publish' && topicMatches(r.topic, t))
        assert.equal(first?.effect, 'allow', `${f} granted but ${t} is not allowed`)
      }
    }),
    { numRuns: 1500 },
  )
})

test('property: with `all` rules, a granted subscription only delivers what may be published', () => {
  const allRules = fc.array(
    fc.tuple(fc.boolean(), filterArb).map(([a, f]) => (a ? allow : deny)('all', f)),
    { maxLength: 6 },
  )
  fc.assert(
    fc.property(allRules, filterArb, topicArb, (rules, f, t) => {
      if (isAllowed(rules, 'subscribe', f, ctx) && topicMatches(f, t))
        assert.ok(isAllowed(rules, 'publish', t, ctx), `${f} granted, ${t} not publishable`)
    }),
    { numRuns: 3000 },
  )
})

test('property: a subscription is refused only when some topic it matches would be refused (or no rule covers it)', () => {
  // the converse of the above, as far as first-match allows: a single-topic filter is granted iff that topic is
  fc.assert(
    fc.property(rulesArb, topicArb, (rules, t) => {
      const first = rules.find((r) => r.action !== 'publish' && topicMatches(r.topic, t))
      assert.equal(isAllowed(rules, 'subscribe', t, ctx), first?.effect === 'allow', t)
    }),
    { numRuns: 3000 },
  )
})

test('property: compileAcl agrees with isAllowed', () => {
  const name = fc.constantFrom<string | undefined>('alice', 'a', '+', '#', 'a/b', '', undefined)
  const placeholderRules = fc.array(
    fc
      .tuple(fc.boolean(), actionArb, filterArb, fc.constantFrom('', '%u/', '%c/', 'a/%u/'))
      .map(([a, action, f, p]) => (a ? allow : deny)(action, p + f)),
    { maxLength: 6 },
  )
  fc.assert(
    fc.property(
      placeholderRules,
      name,
      fc.constantFrom('c', 'a', '+'),
      fc.array(fc.tuple(fc.constantFrom<AclAction>('publish', 'subscribe'), fc.oneof(topicArb, filterArb)), {
        maxLength: 10,
      }),
      (rules, username, clientId, checks) => {
        const c = { username, clientId }
        const check = compileAcl(rules, c)
        for (const [action, t] of [...checks, ...checks])
          assert.equal(check(action, t), isAllowed(rules, action, t, c), `${action} ${t}`)
      },
    ),
    { numRuns: 1000 },
  )
})
