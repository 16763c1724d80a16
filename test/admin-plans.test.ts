// Plans through the admin API: the operator creates, changes and deletes plans at run time; a plan's
// limits apply live to the tenants on it and to no other tenant; a plan in use cannot be deleted; tenant
// keys may not touch plans; the changes outlive a restart and win over the YAML's plans.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { adminYaml, startTestService, type TestService } from './helpers/service.js'
import { connectClient, connectRefusal, type TestClient } from './helpers/clients.js'

let broker: Mosquitto
let svc: TestService

const YAML = (): string =>
  adminYaml(
    broker.url,
    `
plans:
  free: { maxConnections: 1 }
tenants:
  acme: { plan: free, users: { alice: { password: "plain:a" } } }
  globex: { plan: free, users: { alice: { password: "plain:g" } } }
`,
  )

before(async () => {
  broker = await startMosquitto()
  svc = await startTestService(YAML())
})
after(async () => {
  await svc?.close()
  await broker?.stop()
})

const join = (tenant: string, clientId: string): Promise<TestClient> =>
  connectClient(svc.mqttPort, {
    clientId,
    username: `alice@${tenant}`,
    password: tenant === 'acme' ? 'a' : 'g',
    protocolVersion: 5,
  })
const refusal = (tenant: string): Promise<number> =>
  connectRefusal(svc.mqttPort, {
    clientId: 'extra',
    username: `alice@${tenant}`,
    password: tenant === 'acme' ? 'a' : 'g',
    protocolVersion: 5,
  })

test('a new plan through the API, a tenant moved onto it, its limits changed live; the tenant left on the old plan keeps the old limits', async () => {
  const created = await svc.api('/api/v1/plans/gold', { method: 'PUT', body: { limits: { maxConnections: 2 } } })
  assert.deepEqual(
    [created.status, created.body],
    [201, { name: 'gold', limits: { maxConnections: 2 }, source: 'api' }],
  )
  assert.equal((await svc.api('/api/v1/tenants/acme', { method: 'PATCH', body: { plan: 'gold' } })).status, 200)

  const held = [await join('acme', 'a1'), await join('acme', 'a2'), await join('globex', 'g1')]
  assert.equal(await refusal('acme'), 0x97) // gold: 2
  assert.equal(await refusal('globex'), 0x97) // free: 1
  // Gold raised to 3: acme's third client gets in at once; globex, on free, still cannot.
  const changed = await svc.api('/api/v1/plans/gold', { method: 'PUT', body: { limits: { maxConnections: 3 } } })
  assert.equal(changed.status, 200)
  held.push(await join('acme', 'a3'))
  assert.equal(await refusal('globex'), 0x97)
  const view = (await svc.api('/api/v1/tenants/acme')).body as { plan: string; effectiveLimits: object }
  assert.deepEqual([view.plan, view.effectiveLimits], ['gold', { maxConnections: 3 }])
  await Promise.all(held.map((c) => c.end()))
})

test('a plan in use cannot be deleted (409, naming its tenants); unused, it goes; unknown plans are 404; tenant keys get 403', async () => {
  const inUse = await svc.api('/api/v1/plans/gold', { method: 'DELETE' })
  assert.equal(inUse.status, 409)
  assert.match(inUse.text, /used by acme/)
  assert.equal((await svc.api('/api/v1/plans/nothing', { method: 'DELETE' })).status, 404)
  assert.equal((await svc.api('/api/v1/plans/bad name!', { method: 'PUT', body: { limits: {} } })).status, 400)
  assert.equal(
    (await svc.api('/api/v1/plans/gold', { method: 'PUT', body: { limits: { maxConnections: 'lots' } } })).status,
    400,
  )

  const key = (
    (await svc.api('/api/v1/tenants/acme/keys', { method: 'POST', body: { label: 'plans' } })).body as { key: string }
  ).key
  for (const [method, path] of [
    ['GET', '/api/v1/plans'],
    ['PUT', '/api/v1/plans/gold'],
    ['DELETE', '/api/v1/plans/free'],
  ] as const) {
    const res = await svc.api(path, {
      method,
      token: key,
      ...(method === 'PUT' ? { body: { limits: { maxConnections: 1000 } } } : {}),
    })
    assert.equal(res.status, 403, `${method} ${path} with a tenant key`)
  }

  assert.equal((await svc.api('/api/v1/tenants/acme', { method: 'PATCH', body: { plan: 'free' } })).status, 200)
  assert.equal((await svc.api('/api/v1/plans/gold', { method: 'DELETE' })).status, 204)
  assert.deepEqual((await svc.api('/api/v1/plans')).body, [
    { name: 'free', limits: { maxConnections: 1 }, source: 'yaml' },
  ])
  assert.equal((await svc.api('/api/v1/tenants/acme', { method: 'PATCH', body: { plan: 'gold' } })).status, 400)
})

test('plan changes outlive a restart and win over the YAML, whose own plans still come back when the API never touched them', async () => {
  assert.equal(
    (await svc.api('/api/v1/plans/free', { method: 'PUT', body: { limits: { maxConnections: 2 } } })).status,
    200,
  )
  assert.equal(
    (await svc.api('/api/v1/plans/silver', { method: 'PUT', body: { limits: { publishRate: 10 } } })).status,
    201,
  )
  const dir = svc.dir
  await svc.close()
  svc = await startTestService(YAML(), dir)
  assert.deepEqual((await svc.api('/api/v1/plans')).body, [
    { name: 'free', limits: { maxConnections: 2 }, source: 'api' },
    { name: 'silver', limits: { publishRate: 10 }, source: 'api' },
  ])
  const held = [await join('globex', 'g1'), await join('globex', 'g2')]
  assert.equal(await refusal('globex'), 0x97)
  await Promise.all(held.map((c) => c.end()))
})
