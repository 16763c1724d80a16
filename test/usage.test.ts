// Usage metering and Prometheus metrics (issue #7), observed as an operator would: through the admin
// API and /metrics of a real gateway, with real clients; the process killed mid-traffic loses at most
// one flush interval, and a clean SIGTERM loses nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adminYaml, OPERATOR_TOKEN, startTestService, type TestService } from './helpers/service.js'
import { openSqliteStore } from '../src/store/sqlite.js'
import type { UsageRecord } from '../src/store/store.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { freePort, waitForPort } from './helpers/net.js'

const TENANTS = `
tenants:
  acme:
    limits: { maxConnections: 2 }
    users: { alice: { password: "plain:pw-a" } }
  globex:
    users: { alice: { password: "plain:pw-g" } }
`
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface UsageRow {
  tenant: string
  hour: string
  sessionSeconds: number
  sessionMinutes: number
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  peakConnections: number
  limitHits: number
}

function total(rows: UsageRow[], tenant: string): Omit<UsageRow, 'tenant' | 'hour'> {
  const t = {
    sessionSeconds: 0,
    sessionMinutes: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    peakConnections: 0,
    limitHits: 0,
  }
  for (const r of rows.filter((x) => x.tenant === tenant)) {
    for (const k of [
      'sessionSeconds',
      'sessionMinutes',
      'messagesIn',
      'messagesOut',
      'bytesIn',
      'bytesOut',
      'limitHits',
    ] as const)
      t[k] += r[k]
    t.peakConnections = Math.max(t.peakConnections, r.peakConnections)
  }
  return t
}

async function publishAll(c: Awaited<ReturnType<typeof connectClient>>, topic: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await c.client.publishAsync(topic, `m${i}`, { qos: 1 })
}

test('usage per tenant and hour: session time, messages and bytes both ways, peak connections, limit hits; JSON and CSV; tenants apart', async () => {
  const svc = await startTestService(adminYaml('embedded', TENANTS))
  try {
    const sub = await connectClient(svc.mqttPort, { clientId: 'same', username: 'alice@acme', password: 'pw-a' })
    await sub.client.subscribeAsync('t/#', { qos: 1 })
    const pub = await connectClient(svc.mqttPort, { username: 'alice@acme', password: 'pw-a' })
    // globex uses the same client ID and topic: none of it may show up in acme's usage.
    const other = await connectClient(svc.mqttPort, { clientId: 'same', username: 'alice@globex', password: 'pw-g' })
    await publishAll(other, 't/x', 3)
    // maxConnections: 2
    assert.equal(await connectRefusal(svc.mqttPort, { username: 'alice@acme', password: 'pw-a' }), 3)
    await publishAll(pub, 't/x', 10)
    await sub.next((m) => m.payload === 'm9')
    await sleep(1500)
    await Promise.all([sub.end(), pub.end(), other.end()])

    const res = await svc.api('/api/v1/usage')
    const rows = (res.body as { rows: UsageRow[] }).rows
    const acme = total(rows, 'acme')
    assert.equal(acme.messagesIn, 10)
    assert.equal(acme.messagesOut, 10)
    assert.ok(acme.bytesIn > 10 * 'm0'.length && acme.bytesOut > 10 * 'm0'.length, JSON.stringify(acme))
    assert.ok(
      acme.sessionSeconds >= 3 && acme.sessionSeconds <= 8,
      `two clients for ~1.5 s or more: ${acme.sessionSeconds}`,
    )
    assert.equal(acme.sessionMinutes, Math.round((acme.sessionSeconds / 60) * 100) / 100)
    assert.equal(acme.peakConnections, 2)
    assert.equal(acme.limitHits, 1)
    const globex = total(rows, 'globex')
    assert.deepEqual([globex.messagesIn, globex.messagesOut, globex.peakConnections, globex.limitHits], [3, 0, 1, 0])
    assert.ok(rows.every((r) => /^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z$/.test(r.hour)))

    const csv = await svc.api('/api/v1/tenants/acme/usage?format=csv')
    assert.match(csv.type, /text\/csv/)
    const lines = csv.text.trim().split('\n')
    assert.equal(
      lines[0],
      'tenant,hour,sessionSeconds,sessionMinutes,messagesIn,messagesOut,bytesIn,bytesOut,peakConnections,limitHits',
    )
    assert.ok(lines.slice(1).length >= 1 && lines.slice(1).every((l) => l.startsWith('acme,')))
    // A range before any traffic is empty; a bad time is a 400 that says why.
    assert.deepEqual(
      ((await svc.api('/api/v1/usage?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z')).body as { rows: unknown[] })
        .rows,
      [],
    )
    const bad = await svc.api('/api/v1/usage?from=yesterday')
    assert.equal(bad.status, 400)
    assert.match(bad.text, /from: expected an ISO 8601 time/)
  } finally {
    await svc.close()
  }
})

test('/metrics: per-tenant series (connections, messages, refusals by reason, limit hits by limit), upstream connect latency and event-loop lag', async () => {
  const svc = await startTestService(adminYaml('embedded', TENANTS))
  try {
    const a = await connectClient(svc.mqttPort, { username: 'alice@acme', password: 'pw-a' })
    const a2 = await connectClient(svc.mqttPort, { username: 'alice@acme', password: 'pw-a' })
    assert.equal(await connectRefusal(svc.mqttPort, { username: 'alice@acme', password: 'pw-a' }), 3)
    await publishAll(a, 'x', 4)
    const res = await svc.api('/metrics')
    assert.equal(res.status, 200)
    assert.match(res.type, /^text\/plain/)
    const has = (line: string): void => assert.ok(res.text.split('\n').includes(line), `missing ${line}`)
    has('mqtt_gateway_connections{tenant="acme"} 2')
    has('mqtt_gateway_messages_in_total{tenant="acme"} 4')
    has('mqtt_gateway_connects_total{tenant="acme"} 2')
    has('mqtt_gateway_refusals_total{tenant="acme",reason="quotaExceeded"} 1')
    has('mqtt_gateway_limit_hits_total{tenant="acme",limit="maxConnections"} 1')
    has('mqtt_gateway_upstream_connect_seconds_count{outcome="ok"} 2')
    assert.match(res.text, /^nodejs_eventloop_lag_seconds \d/m)
    assert.doesNotMatch(res.text, /tenant="globex"/) // no series for a tenant that never connected
    await Promise.all([a.end(), a2.end()])
  } finally {
    await svc.close()
  }
})

test('a deleted tenant: its usage stays readable, its series leave /metrics after the next flush, and the same ID created again starts from zero', async () => {
  const svc = await startTestService(adminYaml('embedded', TENANTS, { flush: '200ms' }))
  const metricsOf = async (tenant: string): Promise<string[]> =>
    (await svc.api('/metrics')).text.split('\n').filter((l) => l.includes(`tenant="${tenant}"`))
  const createTemp = async (): Promise<void> => {
    assert.equal((await svc.api('/api/v1/tenants', { method: 'POST', body: { id: 'temp' } })).status, 201)
    assert.equal(
      (await svc.api('/api/v1/tenants/temp/users/alice', { method: 'PUT', body: { password: 'pw-t' } })).status,
      201,
    )
  }
  try {
    await createTemp()
    const t = await connectClient(svc.mqttPort, { clientId: 'same', username: 'alice@temp', password: 'pw-t' })
    // acme, with the same client ID and user name, stays as it is throughout.
    const a = await connectClient(svc.mqttPort, { clientId: 'same', username: 'alice@acme', password: 'pw-a' })
    await publishAll(t, 'x', 5)
    await publishAll(a, 'x', 2)
    assert.ok((await metricsOf('temp')).includes('mqtt_gateway_messages_in_total{tenant="temp"} 5'))

    assert.equal((await svc.api('/api/v1/tenants/temp', { method: 'DELETE' })).status, 204)
    await sleep(600) // a flush or two
    assert.deepEqual(await metricsOf('temp'), [])
    assert.ok((await metricsOf('acme')).includes('mqtt_gateway_messages_in_total{tenant="acme"} 2'))
    assert.equal(total(((await svc.api('/api/v1/usage')).body as { rows: UsageRow[] }).rows, 'temp').messagesIn, 5)

    await createTemp()
    const again = await connectClient(svc.mqttPort, { clientId: 'same', username: 'alice@temp', password: 'pw-t' })
    await publishAll(again, 'x', 1)
    const fresh = await metricsOf('temp')
    assert.ok(fresh.includes('mqtt_gateway_messages_in_total{tenant="temp"} 1'), fresh.join('\n'))
    assert.ok(fresh.includes('mqtt_gateway_connects_total{tenant="temp"} 1'), fresh.join('\n'))
    await sleep(600)
    await Promise.all([again.end(), a.end()])
    await sleep(400)
    // Usage adds up across the two lives of the ID, and no interval went negative.
    const rows = ((await svc.api('/api/v1/usage')).body as { rows: UsageRow[] }).rows.filter((r) => r.tenant === 'temp')
    assert.equal(total(rows, 'temp').messagesIn, 6)
    assert.ok(
      rows.every((r) => r.messagesIn >= 0 && r.bytesIn >= 0 && r.sessionSeconds >= 0),
      JSON.stringify(rows),
    )
    assert.ok(t.client.disconnected || !t.client.connected, "the deleted tenant's client was disconnected")
  } finally {
    await svc.close()
  }
})

test('admin.usageRetention: hourly rows older than the retention are deleted at start; without it they are kept; recent ones stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-retention-'))
  const now = Date.now()
  const hour = now - (now % 3_600_000)
  const row = (tenant: string, at: number): UsageRecord => ({
    tenant,
    hour: at,
    sessionMs: 60_000,
    messagesIn: 1,
    messagesOut: 0,
    bytesIn: 10,
    bytesOut: 0,
    peakConnections: 1,
    limitHits: 0,
  })
  const store = openSqliteStore(join(dir, 'state.db'))
  await store.addUsage([
    row('acme', hour - 40 * 86_400_000),
    row('globex', hour - 40 * 86_400_000),
    row('acme', hour - 2 * 86_400_000),
    row('acme', hour),
  ])
  await store.close()
  const hours = async (svc: TestService): Promise<number[]> =>
    ((await svc.api('/api/v1/usage?from=2000-01-01T00:00:00Z')).body as { rows: UsageRow[] }).rows.map((r) =>
      Date.parse(r.hour),
    )

  let svc = await startTestService(adminYaml('embedded', TENANTS), dir)
  try {
    assert.equal((await hours(svc)).length, 4, 'without a retention everything is kept')
  } finally {
    await svc.close()
  }
  svc = await startTestService(
    adminYaml('embedded', TENANTS).replace('usageFlushInterval:', 'usageRetention: 30d\n  usageFlushInterval:'),
    dir,
  )
  try {
    let left: number[] = []
    for (let i = 0; i < 50; i++) {
      left = await hours(svc)
      if (left.length < 4) break
      await sleep(20)
    }
    assert.deepEqual(
      left.sort(),
      [hour - 2 * 86_400_000, hour].sort(),
      'the two rows from 40 days ago are gone, for every tenant',
    )
  } finally {
    await svc.close()
  }
})

// ---- the real process: killed mid-traffic, then stopped cleanly ---------------------------------

interface Proc {
  child: ChildProcess
  exited: Promise<void>
}

function startCli(config: string): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '-c', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  child.stderr?.resume()
  return { child, exited: new Promise((resolve) => child.once('exit', () => resolve())) }
}

async function usageOf(adminPort: number, tenant: string): Promise<Omit<UsageRow, 'tenant' | 'hour'>> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/api/v1/usage`, {
    headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
  })
  return total(((await res.json()) as { rows: UsageRow[] }).rows, tenant)
}

test('killed with SIGKILL, the gateway loses at most one flush interval of usage; SIGTERM loses nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-usage-'))
  const mqttPort = await freePort()
  const adminPort = await freePort()
  const configFor = (flush: string): string => {
    const file = join(dir, `gateway-${flush}.yaml`)
    writeFileSync(
      file,
      adminYaml('embedded', TENANTS, { flush })
        .replace('bind: "127.0.0.1:0" }', `bind: "127.0.0.1:${mqttPort}" }`)
        .replace('bind: "127.0.0.1:0"', `bind: "127.0.0.1:${adminPort}"`),
    )
    return file
  }
  let proc = startCli(configFor('500ms'))
  try {
    await waitForPort(adminPort)
    await waitForPort(mqttPort)
    const c = await connectClient(mqttPort, { username: 'alice@acme', password: 'pw-a' })
    await publishAll(c, 'x', 20)
    await sleep(1300) // two flush intervals and more: all 20 are in the store
    proc.child.kill('SIGKILL')
    await proc.exited
    c.client.end(true)

    // A long flush interval from here on: only the shutdown flush can record what follows.
    proc = startCli(configFor('60s'))
    await waitForPort(adminPort)
    await waitForPort(mqttPort)
    const killed = await usageOf(adminPort, 'acme')
    assert.equal(killed.messagesIn, 20)
    assert.ok(killed.sessionSeconds >= 1, `session time before the kill: ${killed.sessionSeconds}`)

    const d = await connectClient(mqttPort, { username: 'alice@acme', password: 'pw-a' })
    await publishAll(d, 'x', 7)
    proc.child.kill('SIGTERM')
    await proc.exited
    assert.equal(proc.child.exitCode, 0)
    d.client.end(true)

    proc = startCli(configFor('60s'))
    await waitForPort(adminPort)
    assert.equal((await usageOf(adminPort, 'acme')).messagesIn, 27)
  } finally {
    proc.child.kill('SIGKILL')
    await proc.exited
  }
})
