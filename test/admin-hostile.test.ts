// The admin API against a hostile tenant (issue #17 items 5, 9, 12, 13, 14), through the real gateway and
// a real mosquitto: encoded paths cannot skip authentication, query parameters that no Date can hold are
// 400, user names that are object internals are refused, a tenant key's writes are rationed per key, a
// plan's maxUsers holds however many requests race, and a client list stays small whatever its clients hold.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { adminYaml, startTestService, type TestService } from './helpers/service.js'
import { connectClient } from './helpers/clients.js'

let broker: Mosquitto
let svc: TestService

const TENANTS = `
auth: { maxFailuresPerMinute: 100000 }
plans:
  small: { maxUsers: 2 }
tenants:
  acme:
    plan: small
    users: { alice: { password: "plain:pw-acme" } }
  globex:
    users: { alice: { password: "plain:pw-globex" } }
`

async function newKey(tenant: string): Promise<string> {
  const res = await svc.api(`/api/v1/tenants/${tenant}/keys`, { method: 'POST', body: { label: 'test' } })
  assert.equal(res.status, 201, res.text)
  return (res.body as { key: string }).key
}

before(async () => {
  broker = await startMosquitto()
  svc = await startTestService(adminYaml(broker.url, TENANTS))
})
after(async () => {
  await svc?.close()
  await broker?.stop()
})

test('percent-encoded paths are authenticated like the routes they reach (401/403, never the handler)', async () => {
  const tenantKey = await newKey('globex')
  for (const path of ['/%61pi/v1/tenants', '/api/v1/%74enants', '/%6detrics', '/api/v1/tenants/%61cme/users']) {
    const res = await svc.api(path, { token: null })
    assert.equal(res.status, 401, `${path} without a token: ${res.text}`)
  }
  // The HEAD routes fastify adds for each GET carry the same check.
  for (const path of ['/api/v1/tenants', '/%6detrics', '/api/v1/tenants/acme/clients']) {
    assert.equal((await svc.api(path, { method: 'HEAD', token: null })).status, 401, `HEAD ${path}`)
  }
  assert.equal((await svc.api('/%6detrics', { token: tenantKey })).status, 403)
  assert.equal((await svc.api('/api/v1/tenants/%61cme/users', { token: tenantKey })).status, 404)
  // The operator reaches the same handlers through the same paths.
  assert.equal((await svc.api('/%61pi/v1/tenants')).status, 200)
  assert.equal((await svc.api('/%6detrics')).status, 200)
})

test('usage: a time no Date can hold, or not a time at all, is 400 naming the parameter', async () => {
  for (const query of [
    'from=99999999999999999999999',
    'to=8640000000000001',
    'from=yesterday',
    'to=+275760-09-14T00:00:00.001Z',
  ]) {
    for (const path of [`/api/v1/usage?${query}`, `/api/v1/tenants/acme/usage?${query}`]) {
      const res = await svc.api(path)
      assert.equal(res.status, 400, `${path}: ${res.text}`)
      assert.match(res.text, new RegExp(query.split('=')[0] ?? ''))
    }
  }
  assert.equal((await svc.api('/api/v1/usage?from=0&to=8640000000000000')).status, 200)
})

test('user names: object internals, wildcards and control characters are refused; GET users lists every user who logs in', async () => {
  for (const name of ['__proto__', 'constructor', 'hasOwnProperty', 'a+b', 'a#', 'a/b', 'tab\there']) {
    const res = await svc.api(`/api/v1/tenants/globex/users/${encodeURIComponent(name)}`, {
      method: 'PUT',
      body: { password: 'pw' },
    })
    assert.equal(res.status, 400, `${JSON.stringify(name)}: ${res.text}`)
  }
  // Nothing of them reached the tenant: the users are the YAML's, and __proto__ cannot log in.
  const users = (await svc.api('/api/v1/tenants/globex/users')).body as Array<{ username: string }>
  assert.deepEqual(
    users.map((u) => u.username),
    ['alice'],
  )
  await assert.rejects(
    connectClient(svc.mqttPort, { username: '__proto__@globex', password: 'pw', reconnectPeriod: 0 }),
  )
})

test("a tenant key's writes are rationed per key (429 with Retry-After); other keys and the operator are not", async () => {
  const acme = await newKey('globex')
  const other = await newKey('globex')
  const acl = { method: 'PUT', body: { rules: null } }
  const statuses: number[] = []
  for (let i = 0; i < 12; i++)
    statuses.push((await svc.api('/api/v1/tenants/globex/acl', { ...acl, token: acme })).status)
  assert.deepEqual(statuses, [...Array(10).fill(200), 429, 429])
  const refused = await fetch(`${svc.adminUrl}/api/v1/tenants/globex/acl`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${acme}`, 'content-type': 'application/json' },
    body: '{"rules":null}',
  })
  assert.equal(refused.status, 429)
  assert.ok(Number(refused.headers.get('retry-after')) >= 1)
  // Reads are not rationed; another key of the same tenant and the operator still write.
  assert.equal((await svc.api('/api/v1/tenants/globex/acl', { token: acme })).status, 200)
  assert.equal((await svc.api('/api/v1/tenants/globex/acl', { ...acl, token: other })).status, 200)
  for (let i = 0; i < 12; i++) assert.equal((await svc.api('/api/v1/tenants/globex/acl', acl)).status, 200)
})

test('maxUsers: one more user than the plan allows is 409 naming the limit, even when the requests race', async () => {
  // acme has alice from the YAML and room for one more; five creations at once: exactly one lands.
  const names = ['u1', 'u2', 'u3', 'u4', 'u5']
  const results = await Promise.all(
    names.map((n) => svc.api(`/api/v1/tenants/acme/users/${n}`, { method: 'PUT', body: { password: 'pw' } })),
  )
  assert.deepEqual(results.map((r) => r.status).sort(), [201, 409, 409, 409, 409])
  assert.match(results.find((r) => r.status === 409)?.text ?? '', /maxUsers/)
  const users = (await svc.api('/api/v1/tenants/acme/users')).body as Array<{ username: string }>
  assert.equal(users.length, 2)
  // Replacing a user is not one more; globex (no plan) is not limited.
  assert.equal(
    (await svc.api('/api/v1/tenants/acme/users/alice', { method: 'PUT', body: { password: 'pw2' } })).status,
    200,
  )
  for (const n of names)
    assert.equal(
      (await svc.api(`/api/v1/tenants/globex/users/${n}`, { method: 'PUT', body: { password: 'pw' } })).status,
      201,
    )
})

test('a client list stays small whatever the clients hold: counts in the list, filters paged per client, tenants apart', async () => {
  const long = (i: number): string => `big/${String(i).padStart(4, '0')}/${'f'.repeat(4000)}`
  const filters = Array.from({ length: 300 }, (_, i) => long(i))
  const reset = await svc.api('/api/v1/tenants/acme/users/alice/password', {
    method: 'PUT',
    body: { password: 'pw-big' },
  })
  assert.equal(reset.status, 204)
  const clients = await Promise.all(
    ['dev-a', 'dev-b', 'dev-c'].map((clientId) =>
      connectClient(svc.mqttPort, { clientId, username: 'alice@acme', password: 'pw-big', protocolVersion: 5 }),
    ),
  )
  // Same client ID in globex, with a filter of its own.
  const foreign = await connectClient(svc.mqttPort, {
    clientId: 'dev-a',
    username: 'alice@globex',
    password: 'pw-globex',
    protocolVersion: 5,
  })
  try {
    // In SUBSCRIBEs of 50 (200 KB each), under the gateway's default maximum packet size.
    for (const c of clients) {
      for (let i = 0; i < filters.length; i += 50) await c.client.subscribeAsync(filters.slice(i, i + 50))
    }
    await foreign.client.subscribeAsync('globex/only')
    // 3 × 300 × 4 KB held: the list is the three summaries.
    const list = await svc.api('/api/v1/tenants/acme/clients')
    assert.equal(list.status, 200)
    assert.ok(list.text.length < 4096, `list is ${list.text.length} bytes`)
    const body = list.body as {
      total: number
      clients: Array<{ clientId: string; subscriptions: number }>
      next: string | null
    }
    assert.deepEqual(
      body.clients.map((c) => [c.clientId, c.subscriptions]),
      [
        ['dev-a', 300],
        ['dev-b', 300],
        ['dev-c', 300],
      ],
    )
    // Pages of clients.
    const first = (await svc.api('/api/v1/tenants/acme/clients?limit=2')).body as typeof body
    assert.deepEqual([first.total, first.clients.map((c) => c.clientId), first.next], [3, ['dev-a', 'dev-b'], 'dev-b'])
    const second = (await svc.api('/api/v1/tenants/acme/clients?limit=2&after=dev-b')).body as typeof body
    assert.deepEqual([second.clients.map((c) => c.clientId), second.next], [['dev-c'], null])
    // One client's filters, a bounded page at a time, every one exactly once and in order.
    const seen: string[] = []
    let after: string | null = ''
    while (after !== null) {
      const page = await svc.api(
        `/api/v1/tenants/acme/clients/dev-a/subscriptions${after === '' ? '' : `?after=${encodeURIComponent(after)}`}`,
      )
      const p = page.body as { total: number; subscriptions: string[]; next: string | null }
      assert.ok(p.subscriptions.length <= 100 && page.text.length < 500_000)
      seen.push(...p.subscriptions)
      after = p.next
    }
    assert.deepEqual(seen, filters)
    for (const bad of ['limit=0', 'limit=100000', 'limit=x']) {
      assert.equal((await svc.api(`/api/v1/tenants/acme/clients?${bad}`)).status, 400, bad)
      assert.equal((await svc.api(`/api/v1/tenants/acme/clients/dev-a/subscriptions?${bad}`)).status, 400, bad)
    }
    // globex's dev-a is its own: its one filter, nothing of acme's, and acme's key cannot ask.
    const theirs = (await svc.api('/api/v1/tenants/globex/clients/dev-a/subscriptions')).body as {
      subscriptions: string[]
    }
    assert.deepEqual(theirs.subscriptions, ['globex/only'])
    const acmeKey = await newKey('acme')
    assert.equal((await svc.api('/api/v1/tenants/globex/clients/dev-a/subscriptions', { token: acmeKey })).status, 404)
    assert.equal((await svc.api('/api/v1/tenants/globex/clients', { token: acmeKey })).status, 404)
  } finally {
    await Promise.all([...clients, foreign].map((c) => c.end()))
  }
})
