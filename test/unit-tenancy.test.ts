// Tenant resolution (SPEC §4), password hashes and the Authenticator, as pure(ish) units.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { parseConfigText } from '../src/config/load.js'
import { resolveTenant, parseUsername } from '../src/tenancy/resolve.js'
import { hashPassword, verifyPassword, parsePasswordFile } from '../src/tenancy/passwords.js'
import { Authenticator } from '../src/tenancy/auth.js'

const cfg = (extra = '') =>
  parseConfigText(
    `
listeners: [{ name: m, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: embedded }
tenancy: { sni: "{tenant}.mqtt.example.com" }
${extra}
tenants:
  acme: { hosts: [MQTT.Acme.com], anonymous: true, users: { alice: { password: "plain:a" }, "bob@example.com": { password: "plain:b" } } }
  globex: { users: { alice: { password: "plain:g" } } }
  off: { disabled: true, users: { alice: { password: "plain:o" } } }
`,
    { baseDir: tmpdir() },
  ).config

test('resolution: every source and every conflict', () => {
  const c = cfg()
  const r = (input: Parameters<typeof resolveTenant>[0]) => resolveTenant(input, c.tenancy, c.tenants)
  assert.deepEqual(r({ username: 'alice@acme' }), { ok: true, tenant: 'acme', user: 'alice' })
  assert.deepEqual(r({ username: 'a@b@acme' }), { ok: true, tenant: 'acme', user: 'a@b' })
  assert.deepEqual(r({ listenerTenant: 'acme', username: 'alice' }), { ok: true, tenant: 'acme', user: 'alice' })
  assert.deepEqual(r({ listenerTenant: 'acme', username: 'alice@acme' }), { ok: true, tenant: 'acme', user: 'alice' })
  assert.deepEqual(r({ listenerTenant: 'acme', username: 'alice@globex' }), { ok: false, cause: 'tenantConflict' })
  assert.deepEqual(r({ listenerTenant: 'acme', username: 'bob@example.com' }), {
    ok: true,
    tenant: 'acme',
    user: 'bob@example.com',
  })
  assert.deepEqual(r({ sniHost: 'acme.mqtt.example.com', username: 'alice' }), {
    ok: true,
    tenant: 'acme',
    user: 'alice',
  })
  assert.deepEqual(r({ sniHost: 'mqtt.acme.COM', username: 'alice' }), { ok: true, tenant: 'acme', user: 'alice' })
  assert.deepEqual(r({ sniHost: 'globex.mqtt.example.com', listenerTenant: 'acme' }), {
    ok: false,
    cause: 'tenantConflict',
  })
  assert.deepEqual(r({ sniHost: 'x.y.mqtt.example.com', username: 'alice' }), { ok: false, cause: 'noTenant' })
  assert.deepEqual(r({ username: 'alice@nope' }), { ok: false, cause: 'unknownTenant' })
  assert.deepEqual(r({ username: 'alice' }), { ok: false, cause: 'noTenant' })
  assert.deepEqual(r({}), { ok: false, cause: 'noTenant' })
  assert.deepEqual(r({ listenerTenant: 'acme' }), { ok: true, tenant: 'acme', user: undefined })
})

test('username patterns: {username}@{tenant} splits at the last @, {tenant}/{username} at the first /', () => {
  assert.deepEqual(parseUsername('a@b@acme', '{username}@{tenant}'), { user: 'a@b', tenant: 'acme' })
  assert.deepEqual(parseUsername('acme/a/b', '{tenant}/{username}'), { user: 'a/b', tenant: 'acme' })
  assert.equal(parseUsername('alice', '{username}@{tenant}'), undefined)
  assert.equal(parseUsername('@acme', '{username}@{tenant}'), undefined)
  fc.assert(
    fc.property(
      fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/),
      fc.string({ minLength: 1 }),
      (tenant, user) => {
        assert.deepEqual(parseUsername(`${user}@${tenant}`, '{username}@{tenant}'), { user, tenant })
      },
    ),
  )
})

test('password hashes: scrypt, plain, mosquitto $6$ and $7$; anything else is false, never a throw', async () => {
  const h = await hashPassword('s3cret')
  assert.ok(h.startsWith('scrypt$'))
  assert.ok(await verifyPassword(h, 's3cret'))
  assert.ok(!(await verifyPassword(h, 's3cret!')))
  assert.ok(await verifyPassword('plain:x', 'x'))
  assert.ok(!(await verifyPassword('plain:x', 'y')))
  const dir = mkdtempSync(join(tmpdir(), 'mtg-pw-'))
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', join(dir, 'pw'), 'carol', 'pass'])
  const seven = parsePasswordFile(readFileSync(join(dir, 'pw'), 'utf8')).carol as string
  assert.ok(seven.startsWith('$7$'))
  assert.ok(await verifyPassword(seven, 'pass'))
  assert.ok(!(await verifyPassword(seven, 'Pass')))
  const salt = randomBytes(12)
  const six = `$6$${salt.toString('base64')}$${createHash('sha512').update('pass').update(salt).digest('base64')}`
  assert.ok(await verifyPassword(six, 'pass'))
  assert.ok(!(await verifyPassword(six, 'nope')))
  // Any stored string: never a throw, and never a match unless it is that very password in plain text.
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string(),
        fc.string().map((s) => `plain:${s}`),
      ),
      fc.string(),
      async (stored, pw) => {
        assert.equal(await verifyPassword(stored, pw), stored === `plain:${pw}`)
      },
    ),
    { numRuns: 300 },
  )
})

test('Authenticator: identical refusals, disabled only after good credentials, anonymous, cache', async () => {
  const auth = new Authenticator(cfg('auth: { maxFailuresPerMinute: 1000 }'))
  const req = (username: string | undefined, password?: string, extra = {}) =>
    auth.authenticate({
      remoteAddress: '10.0.0.1',
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password: Buffer.from(password) } : {}),
      ...extra,
    })
  // one code for the client, a cause for the operator's log
  const bad = (cause: string, tenant?: string) => ({
    ok: false,
    reason: 'badCredentials',
    cause,
    ...(tenant !== undefined ? { tenant } : {}),
  })
  assert.deepEqual(await req('alice@acme', 'wrong'), bad('badPassword', 'acme'))
  assert.deepEqual(await req('mallory@acme', 'a'), bad('unknownUser', 'acme'))
  assert.deepEqual(await req('alice@nope', 'a'), bad('unknownTenant'))
  assert.deepEqual(await req(undefined), bad('noTenant'))
  assert.deepEqual(await req(undefined, undefined, { listenerTenant: 'off' }), bad('anonymousNotAllowed', 'off'))
  assert.deepEqual(await req('alice@acme', 'a', { listenerTenant: 'off' }), bad('tenantConflict'))
  assert.deepEqual(await req('alice@off', 'x'), bad('badPassword', 'off'))
  assert.deepEqual(await req('alice@off', 'o'), {
    ok: false,
    reason: 'notAuthorized',
    cause: 'disabled',
    tenant: 'off',
  })
  assert.deepEqual(await req(undefined, undefined, { listenerTenant: 'acme' }), {
    ok: true,
    tenant: 'acme',
    user: undefined,
  })
  assert.deepEqual(await req('alice@acme', 'a'), { ok: true, tenant: 'acme', user: 'alice' })
  assert.equal(auth.cacheSize, 2) // alice@off and alice@acme, both verified
  await req('alice@acme', 'a')
  assert.equal(auth.cacheSize, 2) // a reconnect hits the cache
})

test('Authenticator throttle: past the limit even the right password is refused, until the cooldown ends', async () => {
  const auth = new Authenticator(cfg('auth: { maxFailuresPerMinute: 3, cooldown: 500ms }'))
  const as = (password: string) =>
    auth.authenticate({ remoteAddress: '10.0.0.2', username: 'alice@acme', password: Buffer.from(password) })
  for (let i = 0; i < 3; i++) assert.equal((await as('x')).ok, false)
  assert.deepEqual(await as('a'), { ok: false, reason: 'badCredentials', cause: 'throttled', tenant: 'acme' })
  assert.equal(
    (await auth.authenticate({ remoteAddress: '10.0.0.3', username: 'alice@acme', password: Buffer.from('a') })).ok,
    true,
  )
  await new Promise((resolve) => setTimeout(resolve, 1100))
  assert.equal((await as('a')).ok, true)
})
