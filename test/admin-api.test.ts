// The admin API from the outside (issue #7): every route with the operator token, the tenant's own key
// and a foreign tenant's key; changes applied live to real MQTT clients through a real mosquitto; the
// store kept across a restart. A foreign key must learn nothing: 404, byte for byte as for no tenant.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { adminYaml, startTestService, type TestService } from './helpers/service.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { nextEvent } from './helpers/events.js'

let broker: Mosquitto
type ClientPage = { total: number; clients: Array<Record<string, unknown>>; next: string | null }
let svc: TestService
const keys: Record<string, string> = {}

// These tests send many wrong tokens on purpose; the throttle on them has its own test (below), with its own gateway.
const TENANTS = `
auth: { maxFailuresPerMinute: 100000 }
plans:
  free: { maxConnections: 5 }
  pro: { maxConnections: 100 }
tenants:
  acme:
    plan: free
    users: { alice: { password: "plain:pw-acme" } }
  globex:
    plan: free
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
  keys.acme = await newKey('acme')
  keys.globex = await newKey('globex')
})
after(async () => {
  await svc?.close()
  await broker?.stop()
})

/** Every route of one tenant, as [method, path, body]. Reads first; writes that change nothing harmful. */
function routesOf(tenant: string): Array<[string, string, unknown?]> {
  return [
    ['GET', `/api/v1/tenants/${tenant}`],
    ['PATCH', `/api/v1/tenants/${tenant}`, { disabled: false }],
    ['POST', `/api/v1/tenants/${tenant}/disable`],
    ['POST', `/api/v1/tenants/${tenant}/enable`],
    ['DELETE', `/api/v1/tenants/${tenant}`],
    ['GET', `/api/v1/tenants/${tenant}/users`],
    ['PUT', `/api/v1/tenants/${tenant}/users/mallory`, { password: 'x' }],
    ['PUT', `/api/v1/tenants/${tenant}/users/alice/password`, { password: 'x' }],
    ['DELETE', `/api/v1/tenants/${tenant}/users/alice`],
    ['GET', `/api/v1/tenants/${tenant}/users/alice/acl`],
    ['PUT', `/api/v1/tenants/${tenant}/users/alice/acl`, { rules: [{ deny: 'all', topic: '#' }] }],
    ['GET', `/api/v1/tenants/${tenant}/acl`],
    ['PUT', `/api/v1/tenants/${tenant}/acl`, { rules: [{ deny: 'all', topic: '#' }] }],
    ['GET', `/api/v1/tenants/${tenant}/keys`],
    ['POST', `/api/v1/tenants/${tenant}/keys`, {}],
    ['DELETE', `/api/v1/tenants/${tenant}/keys/0123456789abcdef`],
    ['GET', `/api/v1/tenants/${tenant}/clients`],
    ['GET', `/api/v1/tenants/${tenant}/clients/dev`],
    ['DELETE', `/api/v1/tenants/${tenant}/clients/dev`],
    ['POST', `/api/v1/tenants/${tenant}/clients/dev/kick`],
    ['GET', `/api/v1/tenants/${tenant}/clients/dev/subscriptions`],
    ['GET', `/api/v1/tenants/${tenant}/usage`],
    ['GET', `/api/v1/usage?tenant=${tenant}`],
  ]
}

test('a foreign tenant key gets exactly the 404 of a tenant that does not exist, on every route, and changes nothing', async () => {
  const dev = await connectClient(svc.mqttPort, {
    clientId: 'dev',
    username: 'alice@acme',
    password: 'pw-acme',
    protocolVersion: 5,
  })
  try {
    const before = await svc.api('/api/v1/tenants/acme')
    for (const [method, path, body] of routesOf('acme')) {
      const foreign = await svc.api(path, { method, body, token: keys.globex })
      const missing = await svc.api(path.replaceAll('acme', 'no-such-tenant'), { method, body, token: keys.globex })
      assert.equal(foreign.status, 404, `${method} ${path} with globex's key: ${foreign.text}`)
      assert.equal(foreign.text, missing.text, `${method} ${path}: foreign and missing tenants must answer alike`)
      // The operator may still read a deleted tenant's usage (it is billed); every other route is 404.
      if (!path.startsWith('/api/v1/usage')) {
        const asOperatorMissing = await svc.api(path.replaceAll('acme', 'no-such-tenant'), { method, body })
        assert.equal(asOperatorMissing.status, 404, `${method} ${path} for a missing tenant as operator`)
      }
    }
    // Nothing above reached acme: same settings, same users, its device still connected.
    assert.deepEqual((await svc.api('/api/v1/tenants/acme')).body, before.body)
    assert.equal(dev.client.connected, true)
    const users = (await svc.api('/api/v1/tenants/acme/users')).body as Array<{ username: string }>
    assert.deepEqual(
      users.map((u) => u.username),
      ['alice'],
    )
  } finally {
    await dev.end()
  }
})

test('without credentials, or with a wrong token, every API route answers 401; health and readiness are open', async () => {
  for (const [method, path, body] of [
    ...routesOf('acme'),
    ['GET', '/api/v1/tenants'],
    ['POST', '/api/v1/tenants', { id: 'x' }],
    ['GET', '/metrics'],
  ] as Array<[string, string, unknown?]>) {
    for (const token of [
      null,
      'wrong-token',
      'mtg_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      `${keys.acme ?? ''}x`,
    ]) {
      const res = await svc.api(path, { method, body, token })
      assert.equal(res.status, 401, `${method} ${path} with ${String(token)}`)
    }
  }
  assert.equal((await svc.api('/api/v1/health', { token: null })).status, 200)
  const ready = await svc.api('/api/v1/ready', { token: null })
  assert.deepEqual([ready.status, (ready.body as { ready: boolean }).ready], [200, true])
  const doc = await svc.api('/api/v1/openapi.json', { token: null })
  assert.equal(doc.status, 200)
  assert.ok(Object.keys((doc.body as { paths: object }).paths).includes('/api/v1/tenants/{tenant}/clients/{clientId}'))
})

test('a tenant key sees only its own tenant and may not use operator routes', async () => {
  const list = await svc.api('/api/v1/tenants', { token: keys.acme })
  assert.deepEqual(
    (list.body as Array<{ id: string }>).map((t) => t.id),
    ['acme'],
  )
  const own = await svc.api('/api/v1/tenants/acme', { token: keys.acme })
  assert.equal(own.status, 200)
  assert.deepEqual((own.body as { effectiveLimits: object }).effectiveLimits, { maxConnections: 5 })
  for (const [method, path, body] of [
    ['POST', '/api/v1/tenants', { id: 'sneaky' }],
    ['PATCH', '/api/v1/tenants/acme', { plan: 'pro' }],
    ['DELETE', '/api/v1/tenants/acme'],
    ['POST', '/api/v1/tenants/acme/disable'],
    ['POST', '/api/v1/tenants/acme/keys', {}],
    ['GET', '/metrics'],
    ['GET', '/api/v1/plans'],
  ] as Array<[string, string, unknown?]>) {
    const res = await svc.api(path, { method, body, token: keys.acme })
    assert.equal(res.status, 403, `${method} ${path}: ${res.text}`)
  }
  const usage = await svc.api('/api/v1/usage', { token: keys.acme })
  assert.ok((usage.body as { rows: Array<{ tenant: string }> }).rows.every((r) => r.tenant === 'acme'))
  // The key list names keys, never their secrets.
  const listed = await svc.api('/api/v1/tenants/acme/keys', { token: keys.acme })
  assert.ok(!listed.text.includes((keys.acme ?? '').split('_')[2] ?? 'x'))
})

test('clients: same client ID in two tenants, listed per tenant; kicking one sends MQTT 5 DISCONNECT 0x98 and leaves the other', async () => {
  const a = await connectClient(svc.mqttPort, {
    clientId: 'dev',
    username: 'alice@acme',
    password: 'pw-acme',
    protocolVersion: 5,
  })
  const g = await connectClient(svc.mqttPort, {
    clientId: 'dev',
    username: 'alice@globex',
    password: 'pw-globex',
    protocolVersion: 5,
  })
  try {
    await new Promise<void>((resolve) => a.client.subscribe('rooms/+/temp', { qos: 1 }, () => resolve()))
    const page = (await svc.api('/api/v1/tenants/acme/clients', { token: keys.acme })).body as ClientPage
    const listed = page.clients
    assert.deepEqual([page.total, listed.length, page.next], [1, 1, null])
    assert.equal(listed[0]?.clientId, 'dev')
    assert.equal(listed[0]?.username, 'alice')
    assert.equal(listed[0]?.protocol, 'MQTT 5')
    // The list counts subscriptions; the filters are one client's own route.
    assert.equal(listed[0]?.subscriptions, 1)
    const filters = await svc.api('/api/v1/tenants/acme/clients/dev/subscriptions', { token: keys.acme })
    assert.deepEqual(filters.body, { clientId: 'dev', total: 1, subscriptions: ['rooms/+/temp'], next: null })
    assert.equal(listed[0]?.remoteAddress, '127.0.0.1')
    const gone = nextEvent<{ reasonCode?: number }>(a.client, 'disconnect')
    const kicked = await svc.api('/api/v1/tenants/acme/clients/dev', { method: 'DELETE', token: keys.acme })
    assert.equal(kicked.status, 204)
    assert.equal((await gone).reasonCode, 0x98)
    assert.equal(g.client.connected, true)
    assert.equal(
      ((await svc.api('/api/v1/tenants/globex/clients', { token: keys.globex })).body as ClientPage).clients.length,
      1,
    )
    assert.equal((await svc.api('/api/v1/tenants/acme/clients/dev', { token: keys.acme })).status, 404)
  } finally {
    a.client.end(true)
    await g.end()
  }
})

test('users and ACL changed through the API apply to the next CONNECT and PUBLISH, in that tenant only', async () => {
  const created = await svc.api('/api/v1/tenants/acme/users/bob', {
    method: 'PUT',
    body: { password: 'pw-bob' },
    token: keys.acme,
  })
  assert.equal(created.status, 201, created.text)
  const bob = await connectClient(svc.mqttPort, { username: 'bob@acme', password: 'pw-bob' })
  await bob.end()
  assert.equal(await connectRefusal(svc.mqttPort, { username: 'bob@globex', password: 'pw-bob' }), 4)
  assert.equal(
    (
      await svc.api('/api/v1/tenants/acme/users/bob/password', {
        method: 'PUT',
        body: { password: 'new' },
        token: keys.acme,
      })
    ).status,
    204,
  )
  assert.equal(await connectRefusal(svc.mqttPort, { username: 'bob@acme', password: 'pw-bob' }), 4)
  await (await connectClient(svc.mqttPort, { username: 'bob@acme', password: 'new' })).end()

  // Tenant ACL: only devices/# may be published; checked with a v5 PUBACK reason code.
  const acl = await svc.api('/api/v1/tenants/acme/acl', {
    method: 'PUT',
    body: { rules: [{ allow: 'all', topic: 'devices/#' }] },
    token: keys.acme,
  })
  assert.deepEqual(acl.body, { rules: [{ allow: 'all', topic: 'devices/#' }] })
  const c = await connectClient(svc.mqttPort, { username: 'bob@acme', password: 'new', protocolVersion: 5 })
  const g = await connectClient(svc.mqttPort, { username: 'alice@globex', password: 'pw-globex', protocolVersion: 5 })
  try {
    const denied = await new Promise<unknown>((resolve) =>
      c.client.publish('other/x', 'm', { qos: 1 }, (err) => resolve(err)),
    )
    assert.equal((denied as { code?: number } | undefined)?.code, 0x87)
    const allowed = await new Promise<unknown>((resolve) =>
      c.client.publish('devices/x', 'm', { qos: 1 }, (err) => resolve(err)),
    )
    assert.equal(allowed ?? undefined, undefined)
    // globex has no ACL: untouched.
    assert.equal(
      await new Promise<unknown>((resolve) =>
        g.client.publish('other/x', 'm', { qos: 1 }, (err) => resolve(err ?? undefined)),
      ),
      undefined,
    )
  } finally {
    await c.end()
    await g.end()
  }
  assert.equal(
    (await svc.api('/api/v1/tenants/acme/acl', { method: 'PUT', body: { rules: null }, token: keys.acme })).status,
    200,
  )
  assert.equal((await svc.api('/api/v1/tenants/acme/users/bob', { method: 'DELETE', token: keys.acme })).status, 204)
  assert.equal(await connectRefusal(svc.mqttPort, { username: 'bob@acme', password: 'new' }), 4)
})

test('operator: a plan change applies live and disconnects nobody; disable disconnects; create and delete tenants', async () => {
  const a = await connectClient(svc.mqttPort, {
    clientId: 'keeper',
    username: 'alice@acme',
    password: 'pw-acme',
    protocolVersion: 5,
  })
  try {
    const patched = await svc.api('/api/v1/tenants/acme', { method: 'PATCH', body: { limits: { maxConnections: 1 } } })
    assert.equal(patched.status, 200, patched.text)
    assert.deepEqual((patched.body as { effectiveLimits: object }).effectiveLimits, { maxConnections: 1 })
    assert.ok((patched.body as { changed: string[] }).changed.includes('limits'))
    // Over the new limit: refused with Quota exceeded; the one already connected stays.
    assert.equal(
      await connectRefusal(svc.mqttPort, { username: 'alice@acme', password: 'pw-acme', protocolVersion: 5 }),
      0x97,
    )
    assert.equal(a.client.connected, true)
    const plan = await svc.api('/api/v1/tenants/acme', { method: 'PATCH', body: { plan: 'pro', limits: {} } })
    assert.deepEqual((plan.body as { effectiveLimits: object }).effectiveLimits, { maxConnections: 100 })
    assert.equal(a.client.connected, true)
    assert.equal((await svc.api('/api/v1/tenants/acme', { method: 'PATCH', body: { plan: 'nope' } })).status, 400)

    const gone = nextEvent(a.client, 'close')
    assert.equal((await svc.api('/api/v1/tenants/acme/disable', { method: 'POST' })).status, 200)
    await gone
    assert.equal(
      await connectRefusal(svc.mqttPort, { username: 'alice@acme', password: 'pw-acme', protocolVersion: 5 }),
      0x87,
    )
    assert.equal((await svc.api('/api/v1/tenants/acme/enable', { method: 'POST' })).status, 200)
    await (await connectClient(svc.mqttPort, { username: 'alice@acme', password: 'pw-acme' })).end()
  } finally {
    a.client.end(true)
  }

  const made = await svc.api('/api/v1/tenants', { method: 'POST', body: { id: 'initech', plan: 'free' } })
  assert.equal(made.status, 201, made.text)
  assert.equal((made.body as { source: string }).source, 'api')
  assert.equal((await svc.api('/api/v1/tenants', { method: 'POST', body: { id: 'initech' } })).status, 409)
  assert.equal((await svc.api('/api/v1/tenants', { method: 'POST', body: { id: 'Bad/Id' } })).status, 400)
  await svc.api('/api/v1/tenants/initech/users/alice', { method: 'PUT', body: { password: 'pw-initech' } })
  // No body at all is fine too (curl -X POST): the label is optional.
  const created = await svc.api('/api/v1/tenants/initech/keys', { method: 'POST' })
  assert.equal(created.status, 201, created.text)
  const key = (created.body as { key: string }).key
  const i = await connectClient(svc.mqttPort, { username: 'alice@initech', password: 'pw-initech' })
  const closed = nextEvent(i.client, 'close')
  assert.equal((await svc.api('/api/v1/tenants/initech', { method: 'DELETE' })).status, 204)
  await closed
  assert.equal((await svc.api('/api/v1/tenants/initech')).status, 404)
  // Its keys went with it.
  assert.equal((await svc.api('/api/v1/tenants', { token: key })).status, 401)
})

test('changes persist in the store across a restart, keys included, and win over the YAML', async () => {
  const dir = svc.dir
  await svc.api('/api/v1/tenants/globex', { method: 'PATCH', body: { plan: 'pro' } })
  await svc.api('/api/v1/tenants', { method: 'POST', body: { id: 'hooli' } })
  await svc.close()
  svc = await startTestService(adminYaml(broker.url, TENANTS), dir)
  const globex = (await svc.api('/api/v1/tenants/globex', { token: keys.globex })).body as {
    plan: string
    source: string
    changed: string[]
  }
  assert.equal(globex.plan, 'pro')
  assert.equal(globex.source, 'yaml+api')
  assert.deepEqual(globex.changed, ['plan'])
  assert.equal((await svc.api('/api/v1/tenants/hooli')).status, 200)
  assert.equal((await svc.api('/api/v1/tenants/initech')).status, 404)
})

test('wrong tokens are throttled per address: after auth.maxFailuresPerMinute the admin API answers 429, even to the right token, until the cooldown ends; MQTT logins are counted apart', async () => {
  const throttled = await startTestService(
    adminYaml(broker.url, TENANTS.replace('maxFailuresPerMinute: 100000', 'maxFailuresPerMinute: 3, cooldown: 1s')),
  )
  try {
    // No token at all is not a guess: never counted.
    for (let i = 0; i < 5; i++) assert.equal((await throttled.api('/api/v1/tenants', { token: null })).status, 401)
    assert.equal((await throttled.api('/api/v1/tenants')).status, 200)
    for (let i = 0; i < 3; i++)
      assert.equal((await throttled.api('/api/v1/tenants', { token: `guess-${i}` })).status, 401)
    const blocked = await throttled.api('/api/v1/tenants')
    assert.equal(blocked.status, 429)
    assert.match(blocked.text, /too many wrong credentials/)
    assert.equal((await throttled.api('/metrics', { token: 'guess-again' })).status, 429)
    // The MQTT side has its own count: a device with the right password still connects.
    const device = await connectClient(throttled.mqttPort, { username: 'alice@acme', password: 'pw-acme' })
    await device.end()
    await new Promise((resolve) => setTimeout(resolve, 1200))
    assert.equal((await throttled.api('/api/v1/tenants')).status, 200)
  } finally {
    await throttled.close()
  }
})
