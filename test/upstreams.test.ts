// Tenants placed on different brokers (`upstreams:` by name, `tenants.X.upstream`): each tenant's
// sessions, topics and retained messages live on its own broker — seen from the brokers themselves —
// tenants sharing a broker stay apart by namespace as ever, a broker that is down refuses only its
// tenants, readiness reports each broker, and a reload moves a tenant for its next connections.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import { parseConfigText } from '../src/config/load.js'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { adminYaml, startTestService, type TestService } from './helpers/service.js'
import { connectClient, connectRefusal, quiet, type TestClient } from './helpers/clients.js'

let first: Mosquitto
let second: Mosquitto
let svc: TestService

const tenants = (initechUpstream: string): string => `
upstreams:
  second: { url: ${second.url}, connectTimeout: 1s }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { upstream: second, users: { alice: { password: "plain:g" } } }
  initech: { ${initechUpstream}users: { alice: { password: "plain:i" } } }
`

before(async () => {
  first = await startMosquitto()
  second = await startMosquitto()
  svc = await startTestService(adminYaml(first.url, tenants('')))
})
after(async () => {
  await svc?.close()
  await first?.stop()
  await second?.stop()
})

const PASSWORDS: Record<string, string> = { acme: 'a', globex: 'g', initech: 'i' }
const join = (tenant: string, clientId: string, opts: mqtt.IClientOptions = {}): Promise<TestClient> =>
  connectClient(svc.mqttPort, { clientId, username: `alice@${tenant}`, password: PASSWORDS[tenant] as string, ...opts })

/** Everything published on a broker, seen by a subscriber connected to it directly (anonymous, `#`). */
async function watch(broker: Mosquitto): Promise<TestClient> {
  const c = await connectClient(broker.port, { clientId: `watch-${Date.now()}` })
  await c.client.subscribeAsync('#', { qos: 1 })
  return c
}

test('each tenant lives on its broker: the same client ID and topics, retained included, reach only that broker', async () => {
  const [onFirst, onSecond] = await Promise.all([watch(first), watch(second)])
  const a = await join('acme', 'dev-1')
  const g = await join('globex', 'dev-1')
  for (const c of [a, g]) await c.client.subscribeAsync('#', { qos: 1 })
  await a.client.publishAsync('sensors/t1', 'A', { qos: 1, retain: true })
  await g.client.publishAsync('sensors/t1', 'G', { qos: 1, retain: true })
  assert.equal((await a.next()).payload, 'A')
  assert.equal((await g.next()).payload, 'G')
  assert.deepEqual(
    [(await onFirst.next()).topic, (await onSecond.next()).topic],
    ['acme/sensors/t1', 'globex/sensors/t1'],
  )
  await Promise.all([quiet(onFirst, 200), quiet(onSecond, 0), quiet(a, 0), quiet(g, 0)])
  // The retained message is kept by the tenant's broker: a late subscriber there gets it.
  const late = await connectClient(second.port, { clientId: 'late' })
  await late.client.subscribeAsync('globex/#', { qos: 1 })
  assert.equal((await late.next()).payload, 'G')
  for (const c of [a, g]) await c.client.publishAsync('sensors/t1', '', { qos: 1, retain: true })
  await Promise.all([a, g, late, onFirst, onSecond].map((c) => c.end()))
})

test('two tenants on one broker stay apart by namespace, as without upstreams', async () => {
  const a = await join('acme', 'same')
  const i = await join('initech', 'same')
  for (const c of [a, i]) await c.client.subscribeAsync(['#', 'x/+'], { qos: 1 })
  await a.client.publishAsync('x/y', 'from-acme', { qos: 1 })
  assert.equal((await a.next()).payload, 'from-acme')
  await quiet(i, 200)
  assert.ok(a.client.connected && i.client.connected, 'the same client ID in two tenants on one broker: no takeover')
  await Promise.all([a.end(), i.end()])
})

test('a broker that is down refuses only its tenants (0x88 / 0x03); readiness names it; back up, its tenants are served again', async () => {
  await second.stop()
  try {
    assert.equal(
      await connectRefusal(svc.mqttPort, { protocolVersion: 5, username: 'alice@globex', password: 'g' }),
      0x88,
    )
    assert.equal(await connectRefusal(svc.mqttPort, { username: 'alice@globex', password: 'g' }), 0x03)
    const a = await join('acme', 'unaffected')
    await a.end()
    const ready = await svc.api('/api/v1/ready', { token: null })
    assert.deepEqual(
      [ready.status, ready.body],
      [200, { ready: true, upstream: 'reachable', upstreams: { second: 'unreachable' } }],
    )
  } finally {
    await second.restart()
  }
  const g = await join('globex', 'back')
  await g.end()
  // The operator sees where each tenant lives (null: the default upstream).
  const placed = (await svc.api('/api/v1/tenants')).body as Array<{ id: string; upstream: string | null }>
  assert.deepEqual(
    placed.map((t) => [t.id, t.upstream]),
    [
      ['acme', null],
      ['globex', 'second'],
      ['initech', null],
    ],
  )
  assert.deepEqual((await svc.api('/api/v1/ready', { token: null })).body, {
    ready: true,
    upstream: 'reachable',
    upstreams: { second: 'reachable' },
  })
})

test('a reload moves a tenant to another broker for its next connections; a connected client stays where it is', async () => {
  const [onFirst, onSecond] = await Promise.all([watch(first), watch(second)])
  const before = await join('initech', 'before')
  await svc.reload(parseConfigText(adminYaml(first.url, tenants('upstream: second, ')), { baseDir: svc.dir }).config)
  const after = await join('initech', 'after')
  await after.client.publishAsync('moved', 'new', { qos: 1 })
  const moved = await onSecond.next()
  assert.deepEqual([moved.topic, moved.payload], ['initech/moved', 'new'])
  await before.client.publishAsync('stayed', 'old', { qos: 1 })
  assert.equal((await onFirst.next()).topic, 'initech/stayed')
  await Promise.all([before, after, onFirst, onSecond].map((c) => c.end()))
  await svc.reload(parseConfigText(adminYaml(first.url, tenants('')), { baseDir: svc.dir }).config)
})
