// Pure rules of the admin side: how the API's stored changes merge over the YAML, where a tenant's
// settings come from, API key shapes, and how usage between two samples is counted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseConfigText } from '../src/config/load.js'
import { mergeTenantChanges, tenantSource } from '../src/store/merge.js'
import type { Store, TenantChanges } from '../src/store/store.js'
import { newApiKey, parseApiKey, secretMatches, tokenMatches } from '../src/admin/keys.js'
import { hourStart, usageBetween } from '../src/metering/meter.js'
import Fastify from 'fastify'
import { declareAccess } from '../src/admin/access.js'
import type { TenantControl } from '../src/admin/control.js'
import { parsePasswordFile } from '../src/tenancy/passwords.js'

const { config: base } = parseConfigText(
  `
listeners: [{ name: m, type: tcp, bind: "127.0.0.1:1883" }]
upstream: { url: embedded }
plans: { free: { maxConnections: 5 }, pro: { maxConnections: 100 } }
tenants:
  acme:
    plan: free
    limits: { publishRate: 10 }
    users: { alice: { password: "plain:a" }, bob: { password: "plain:b" } }
    acl: [{ allow: all, topic: "devices/#" }]
  globex:
    users: { carol: { password: "plain:c" } }
`,
  { baseDir: '.' },
)

test('merge: keys the API changed win, the others follow the YAML; users merge one by one', () => {
  const changes = new Map<string, TenantChanges>([
    ['acme', { plan: 'pro', users: { bob: null, dave: { password: 'plain:d' } } }],
  ])
  const { config, warnings } = mergeTenantChanges(base, changes)
  assert.deepEqual(warnings, [])
  const acme = config.tenants.acme
  assert.equal(acme?.plan, 'pro')
  assert.deepEqual(acme?.limits, { publishRate: 10 }) // untouched: still the YAML's
  assert.deepEqual(acme?.acl, base.tenants.acme?.acl)
  assert.deepEqual(Object.keys(acme?.users ?? {}).sort(), ['alice', 'dave'])
  assert.equal(config.tenants.globex, base.tenants.globex)
  assert.deepEqual(tenantSource(changes.get('acme')), {
    source: 'yaml+api',
    changed: ['plan', 'users.bob', 'users.dave'],
  })
  // The YAML's own object is never modified.
  assert.deepEqual(Object.keys(base.tenants.acme?.users ?? {}).sort(), ['alice', 'bob'])
})

test('merge: created tenants have the API settings only; deleted ones are gone even if the YAML names them', () => {
  const changes = new Map<string, TenantChanges>([
    ['globex', { deleted: true }],
    ['acme', { created: true, plan: 'free' }], // deleted then created again through the API: a fresh tenant
    ['initech', { created: true, disabled: true }],
  ])
  const { config } = mergeTenantChanges(base, changes)
  assert.equal(config.tenants.globex, undefined)
  assert.deepEqual(config.tenants.acme, {
    limits: {},
    hosts: [],
    anonymous: false,
    disabled: false,
    users: {},
    plan: 'free',
  })
  assert.equal(config.tenants.initech?.disabled, true)
  assert.equal(tenantSource(changes.get('initech')).source, 'api')
  assert.equal(tenantSource(undefined).source, 'yaml')
})

test('merge: plans the API created, changed or deleted; a tenant may take an API plan; a deleted plan a YAML tenant names comes back', () => {
  const plans = new Map([
    ['gold', { maxConnections: 1000 }],
    ['pro', { maxConnections: 200 }],
    ['free', null],
  ] as const)
  const { config, warnings } = mergeTenantChanges(base, new Map([['globex', { plan: 'gold' }]]), new Map(plans))
  assert.deepEqual(config.plans.gold, { maxConnections: 1000 })
  assert.deepEqual(config.plans.pro, { maxConnections: 200 })
  assert.equal(config.tenants.globex?.plan, 'gold')
  // acme's YAML plan is free, deleted through the API: free stays as the YAML has it, and says so.
  assert.deepEqual(config.plans.free, { maxConnections: 5 })
  assert.equal(config.tenants.acme?.plan, 'free')
  assert.match(warnings.join(), /plan "free", deleted through the API, is kept as the YAML has it: tenant acme uses it/)
  // Nobody on it: a deleted plan is gone, and the YAML's plans object is left as it was.
  const moved = mergeTenantChanges(base, new Map([['acme', { plan: 'pro' }]]), new Map([['free', null]]))
  assert.deepEqual([moved.config.plans.free, moved.warnings], [undefined, []])
  assert.deepEqual(base.plans.free, { maxConnections: 5 })
})

test('merge: a stored plan the YAML no longer has is left out with a warning; acl null removes the ACL', () => {
  const { config, warnings } = mergeTenantChanges(base, new Map([['acme', { plan: 'gold', acl: null }]]))
  assert.equal(config.tenants.acme?.plan, 'free')
  assert.equal(config.tenants.acme?.acl, undefined)
  assert.match(warnings[0] ?? '', /plan "gold" set through the API is not in the configuration/)
  // Changes to a tenant the YAML has since removed are ignored, not resurrected.
  assert.equal(mergeTenantChanges(base, new Map([['gone', { plan: 'free' }]])).config.tenants.gone, undefined)
})

test('API keys: shown once as mtg_<id>_<secret>, stored as a hash, compared in constant time', () => {
  const { key, record } = newApiKey('acme', 'ci')
  const parsed = parseApiKey(key)
  assert.ok(parsed !== undefined)
  assert.equal(parsed.id, record.id)
  assert.ok(!JSON.stringify(record).includes(parsed.secret))
  assert.ok(secretMatches(record, parsed.secret))
  assert.ok(
    !secretMatches(
      record,
      parsed.secret.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')),
    ),
  )
  for (const bad of ['', 'mtg_', `${key}x`, key.replace('mtg_', 'abc_'), 'mtg_zz_zz'])
    assert.equal(parseApiKey(bad), undefined)
  assert.ok(tokenMatches('operator-token-123456', 'operator-token-123456'))
  assert.ok(!tokenMatches('operator-token-123456', 'operator-token-12345'))
})

test('usage between samples: differences, attributed to the hour the interval began in', () => {
  const hour = hourStart(Date.UTC(2026, 10, 25, 10, 59, 59))
  assert.equal(hour, Date.UTC(2026, 10, 25, 10))
  const before = { connectedMs: 1000, messagesIn: 5, messagesOut: 1, bytesIn: 100, bytesOut: 10, limitHits: 0 }
  const after = { connectedMs: 61_000, messagesIn: 15, messagesOut: 4, bytesIn: 300, bytesOut: 40, limitHits: 2 }
  assert.deepEqual(usageBetween('acme', before, after, hour, 3), {
    tenant: 'acme',
    hour,
    sessionMs: 60_000,
    messagesIn: 10,
    messagesOut: 3,
    bytesIn: 200,
    bytesOut: 30,
    peakConnections: 3,
    limitHits: 2,
  })
  assert.equal(usageBetween('acme', undefined, after, hour, 1).messagesIn, 15)
})

test('merge: a stored user named like an object internal is a user like any other, listed and found', () => {
  // JSON from the store makes `__proto__` an own key; the merge must keep it one.
  const users = JSON.parse(
    '{"__proto__": {"password": "plain:p"}, "constructor": {"password": "plain:c"}}',
  ) as TenantChanges['users']
  const { config } = mergeTenantChanges(base, new Map([['globex', { users }]]))
  const merged = config.tenants.globex?.users ?? {}
  assert.deepEqual(Object.keys(merged).sort(), ['__proto__', 'carol', 'constructor'])
  assert.equal(Object.hasOwn(merged, '__proto__') && merged.__proto__?.password, 'plain:p')
  assert.equal(Object.getPrototypeOf(merged), null)
  assert.equal(merged.toString, undefined, 'no inherited members to mistake for users')
})

test('password files: a `__proto__:` line is a user, not the prototype', () => {
  const users = parsePasswordFile('__proto__:plain:x\nbob:plain:y\n')
  assert.deepEqual(Object.keys(users).sort(), ['__proto__', 'bob'])
})

test('admin routes: a route that declares no access is refused when it is registered', async () => {
  const app = Fastify()
  // Only the auth settings are read at setup; nothing here authenticates.
  const control = { config: base, exists: () => true } as unknown as TenantControl
  declareAccess(app, { operatorToken: () => 'x'.repeat(16), control, store: {} as Store })
  app.get('/declared', { config: { access: 'open' } }, async () => 'ok')
  await assert.rejects(async () => {
    await app.register(async (child) => {
      child.get('/forgotten', async () => 'hole')
    })
  }, /declares no access/)
  await app.close()
})
