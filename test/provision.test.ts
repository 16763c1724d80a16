// mosquitto dynamic security provisioning, against Debian's mosquitto and its dynsec plugin: the broker
// gets one client per tenant that may touch only the tenant's prefix, a tenant created through the
// admin API connects at once, and a deleted tenant's broker client is gone.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { adminYaml, startTestService, type TestService } from './helpers/service.js'
import { connectClient, connectRefusal, quiet } from './helpers/clients.js'

const PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so'

let broker: Mosquitto
let svc: TestService

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-dynsec-'))
  const state = join(dir, 'dynamic-security.json')
  execFileSync('/usr/bin/mosquitto_ctrl', ['dynsec', 'init', state, 'gw-admin', 'admin-secret'], { stdio: 'ignore' })
  broker = await startMosquitto(`allow_anonymous false\nplugin ${PLUGIN}\nplugin_opt_config_file ${state}`)
  svc = await startTestService(
    adminYaml(
      broker.url,
      `
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
`,
    ).replace(
      `url: ${broker.url}\n`,
      `url: ${broker.url}
  username: "{tenant}"
  password: tenant-secret
  provision: { type: mosquitto-dynsec, username: gw-admin, password: admin-secret }
`,
    ),
  )
})
after(async () => {
  await svc?.close()
  await broker?.stop()
})

test('the dynsec plugin is where the test expects it', () => {
  assert.ok(existsSync(PLUGIN), `${PLUGIN} (dpkg -L mosquitto)`)
})

test('a YAML tenant is provisioned at start: its devices reach the broker, whose own ACL holds it to its prefix', async () => {
  const a = await connectClient(svc.mqttPort, { clientId: 'dev-1', username: 'alice@acme', password: 'a' })
  await a.client.subscribeAsync('sensors/#', { qos: 1 })
  await a.client.publishAsync('sensors/t1', 'hello', { qos: 1 })
  assert.equal((await a.next()).payload, 'hello')
  await a.end()
  // Straight to the broker as the tenant's client: its prefix is allowed, another tenant's is not.
  const direct = await connectClient(broker.port, { username: 'acme', password: 'tenant-secret', clientId: 'direct' })
  assert.deepEqual(
    (await direct.client.subscribeAsync('acme/#', { qos: 1 })).map((g) => g.qos),
    [1],
  )
  await assert.rejects(direct.client.subscribeAsync('globex/#', { qos: 1 }), /Subscribe error/) // SUBACK 0x80
  await direct.end()
})

test('a tenant created through the admin API connects at once; deleting it removes its broker client', async () => {
  assert.equal((await svc.api('/api/v1/tenants', { method: 'POST', body: { id: 'globex' } })).status, 201)
  assert.equal(
    (await svc.api('/api/v1/tenants/globex/users/alice', { method: 'PUT', body: { password: 'pw-g' } })).status,
    201,
  )
  // Both tenants use the same client ID and topics; each sees only its own.
  const a = await connectClient(svc.mqttPort, { clientId: 'dev-1', username: 'alice@acme', password: 'a' })
  const g = await connectClient(svc.mqttPort, { clientId: 'dev-1', username: 'alice@globex', password: 'pw-g' })
  for (const c of [a, g]) await c.client.subscribeAsync('sensors/#', { qos: 1 })
  await g.client.publishAsync('sensors/t1', 'from-globex', { qos: 1 })
  assert.equal((await g.next()).payload, 'from-globex')
  await quiet(a, 200)
  await Promise.all([a.end(), g.end()])
  const direct = await connectClient(broker.port, {
    username: 'globex',
    password: 'tenant-secret',
    clientId: 'direct-g',
  })
  await direct.end()

  assert.equal((await svc.api('/api/v1/tenants/globex', { method: 'DELETE' })).status, 204)
  assert.equal(
    await connectRefusal(broker.port, { username: 'globex', password: 'tenant-secret', clientId: 'direct-g' }),
    5,
  )
  const still = await connectClient(broker.port, { username: 'acme', password: 'tenant-secret', clientId: 'direct-a' })
  await still.end()
  assert.ok(
    svc.logs.some(
      (l) => l.msg === 'broker clients provisioned' && JSON.stringify(l.changes).includes('tenant globex removed'),
    ),
  )
  // Setting a dynsec password disconnects that client's connections: an unchanged one is never set again.
  assert.ok(!svc.logs.some((l) => JSON.stringify(l.changes ?? '').includes('password set')))
})
