// Issue #19, "Logs an operator can debug from": the lines an operator reads when a device cannot log in,
// hits a limit, connects or leaves — through the real gateway in front of a real mosquitto. The client
// hears one code for every failed login; the log line says which failure it was, never the password.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, drained, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { freePort } from './helpers/net.js'

type Line = Record<string, unknown>

const SECRET = 'hunter2-secret'
const INFO = 30 // pino's numeric level

// Two tenants, the same user name and client ID in both; one connection each.
const TENANTS = `
plans:
  single: { maxConnections: 1 }
tenants:
  acme:
    plan: single
    users: { alice: { password: "plain:${SECRET}" } }
  globex:
    plan: single
    users: { alice: { password: "plain:${SECRET}-globex" } }
`

let broker: Mosquitto
let gw: TestGateway

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(yamlConfig(broker.url, `auth: { maxFailuresPerMinute: 100000 }\n${TENANTS}`))
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

const bad = (v: 4 | 5): number => (v === 5 ? 0x86 : 0x04)

/** Lines written from index `from` on with message `msg`: waits (bounded) until `count` of them are there. */
async function linesSince(t: TestGateway, from: number, msg: string, count = 1, ms = 3000): Promise<Line[]> {
  const deadline = Date.now() + ms
  const matching = (): Line[] => t.logs.slice(from).filter((l) => l.msg === msg)
  while (matching().length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  return matching()
}

/** The one "connection refused" line a refused CONNECT wrote, after checking the client got `code`. */
async function refusalLine(
  t: TestGateway,
  v: 4 | 5,
  username: string,
  password: string,
  code = bad(v),
  clientId = 'dev-1',
): Promise<Line> {
  const from = t.logs.length
  assert.equal(await connectRefusal(t.port(), { protocolVersion: v, username, password, clientId }), code)
  const lines = await linesSince(t, from, 'connection refused')
  assert.equal(lines.length, 1, JSON.stringify(t.logs.slice(from)))
  return lines[0] as Line
}

function assertConnectionFields(line: Line, clientId: string): void {
  assert.equal(line.level, INFO)
  assert.equal(line.clientId, clientId)
  assert.equal(line.listener, 'mqtt')
  assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/)
}

for (const v of [4, 5] as const) {
  test(`v${v}: an unknown tenant is logged as such, naming no tenant; the client hears bad credentials`, async () => {
    const line = await refusalLine(gw, v, 'alice@nope', SECRET)
    assertConnectionFields(line, 'dev-1')
    assert.equal(line.reason, 'badCredentials')
    assert.equal(line.cause, 'unknownTenant')
    assert.equal(line.username, 'alice@nope')
    assert.ok(!('tenant' in line), `tenant named: ${JSON.stringify(line)}`)
  })

  test(`v${v}: a bad password names its tenant — acme's alice, not globex's — and the username as sent`, async () => {
    const acme = await refusalLine(gw, v, 'alice@acme', `${SECRET}-wrong`)
    assertConnectionFields(acme, 'dev-1')
    assert.equal(acme.reason, 'badCredentials')
    assert.equal(acme.cause, 'badPassword')
    assert.equal(acme.tenant, 'acme')
    assert.equal(acme.username, 'alice@acme')
    // globex's password sent to acme: still acme's failure.
    const crossed = await refusalLine(gw, v, 'alice@acme', `${SECRET}-globex`)
    assert.equal(crossed.tenant, 'acme')
    assert.equal(crossed.cause, 'badPassword')
    const globex = await refusalLine(gw, v, 'alice@globex', SECRET)
    assert.equal(globex.tenant, 'globex')
    assert.equal(globex.cause, 'badPassword')
    assert.equal(globex.username, 'alice@globex')
  })
}

test('throttled: the log says throttled and whose user it was; the client hears bad credentials like any failure', async () => {
  const t = await startTestGateway(
    yamlConfig(broker.url, `auth: { maxFailuresPerMinute: 2, cooldown: 60s }\n${TENANTS}`),
  )
  try {
    const first = await refusalLine(t, 4, 'alice@acme', 'wrong-1')
    assert.equal(first.cause, 'badPassword')
    await refusalLine(t, 5, 'alice@globex', 'wrong-2') // the second failure starts the cooldown
    for (const v of [4, 5] as const) {
      // The right password, refused with the same code as a wrong one.
      const acme = await refusalLine(t, v, 'alice@acme', SECRET)
      assertConnectionFields(acme, 'dev-1')
      assert.equal(acme.reason, 'badCredentials')
      assert.equal(acme.cause, 'throttled')
      assert.equal(acme.tenant, 'acme')
      assert.equal(acme.username, 'alice@acme')
      const globex = await refusalLine(t, v, 'alice@globex', `${SECRET}-globex`)
      assert.equal(globex.cause, 'throttled')
      assert.equal(globex.tenant, 'globex')
      const nobody = await refusalLine(t, v, 'alice@nope', SECRET)
      assert.equal(nobody.cause, 'throttled')
      assert.ok(!('tenant' in nobody), `tenant named: ${JSON.stringify(nobody)}`)
    }
    assert.ok(!JSON.stringify(t.logs).includes('hunter2'), "a password reached the throttled gateway's log")
  } finally {
    await t.close()
  }
})

for (const v of [4, 5] as const) {
  test(`v${v}: a maxConnections refusal names the limit, the tenant and the client ID; the other tenant is unaffected`, async () => {
    const held = await connectClient(gw.port(), {
      protocolVersion: v,
      username: 'alice@acme',
      password: SECRET,
      clientId: 'dev-1',
    })
    const other = await connectClient(gw.port(), {
      protocolVersion: v,
      username: 'alice@globex',
      password: `${SECRET}-globex`,
      clientId: 'dev-1',
    })
    try {
      const line = await refusalLine(gw, v, 'alice@acme', SECRET, v === 5 ? 0x97 : 0x03, 'dev-2')
      assertConnectionFields(line, 'dev-2')
      assert.equal(line.limit, 'maxConnections')
      assert.equal(line.tenant, 'acme')
    } finally {
      await held.end()
      await other.end()
      await drained(gw)
    }
  })
}

test('connect and disconnect are info lines with tenant, client ID, why and duration, per tenant', async () => {
  const from = gw.logs.length
  const acme = await connectClient(gw.port(), {
    protocolVersion: 5,
    username: 'alice@acme',
    password: SECRET,
    clientId: 'dev-1',
  })
  const globex = await connectClient(gw.port(), {
    username: 'alice@globex',
    password: `${SECRET}-globex`,
    clientId: 'dev-1',
  })
  const connected = await linesSince(gw, from, 'connected', 2)
  await acme.end()
  await globex.end()
  await drained(gw)
  const disconnected = await linesSince(gw, from, 'disconnected', 2)
  for (const tenant of ['acme', 'globex']) {
    const c = connected.find((l) => l.tenant === tenant)
    assert.ok(c !== undefined, `no connected line for ${tenant}: ${JSON.stringify(connected)}`)
    assertConnectionFields(c, 'dev-1')
    assert.equal(c.user, 'alice')
    assert.equal(c.protocol, tenant === 'acme' ? 5 : 4)
    const d = disconnected.find((l) => l.tenant === tenant)
    assert.ok(d !== undefined, `no disconnected line for ${tenant}: ${JSON.stringify(disconnected)}`)
    assertConnectionFields(d, 'dev-1')
    assert.equal(typeof d.why, 'string')
    assert.notEqual(d.why, '')
    assert.equal(typeof d.durationMs, 'number')
    assert.ok((d.durationMs as number) >= 0)
  }
})

test('no password, right or wrong, in any log line', () => {
  assert.ok(
    gw.logs.some((l) => l.msg === 'connected'),
    'the successful logins were logged',
  )
  for (const line of gw.logs)
    assert.ok(!JSON.stringify(line).includes('hunter2'), `password in ${JSON.stringify(line)}`)
})

test('at level warn, connects and disconnects are not logged; a broker that is down still is', async () => {
  const saved = process.env.TEST_LOG_LEVEL
  process.env.TEST_LOG_LEVEL = 'warn'
  // A tenant on a broker nobody listens for: its refusal is the warn line that shows the logger writes.
  const down = `upstreams:\n  down: { url: "mqtt://127.0.0.1:${await freePort()}" }\n${TENANTS}  down:\n    upstream: down\n    users: { alice: { password: "plain:${SECRET}" } }\n`
  let t: TestGateway
  try {
    t = await startTestGateway(yamlConfig(broker.url, down))
  } finally {
    if (saved === undefined) delete process.env.TEST_LOG_LEVEL
    else process.env.TEST_LOG_LEVEL = saved
  }
  try {
    const c = await connectClient(t.port(), { username: 'alice@acme', password: SECRET, clientId: 'dev-1' })
    await c.end()
    await drained(t)
    const chatty = t.logs.filter((l) => l.msg === 'connected' || l.msg === 'disconnected' || (l.level as number) < 40)
    assert.deepEqual(chatty, [])
    assert.equal(await connectRefusal(t.port(), { username: 'alice@down', password: SECRET, clientId: 'dev-1' }), 3)
    const warned = t.logs.filter((l) => l.msg === 'upstream unavailable')
    assert.equal(warned.length, 1, 'the refusal of the tenant whose broker is down is logged at warn')
    assert.equal(warned[0]?.level, 40)
  } finally {
    await t.close()
  }
})
