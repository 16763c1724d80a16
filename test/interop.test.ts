// Third-party conformance (issue #16): the Eclipse Paho interoperability suites (test/interop/paho,
// vendored unmodified) for MQTT 3.1.1 and 5, against mosquitto directly and through the gateway — as
// an anonymous tenant bound to a listener, and as `alice@acme` — and every test that passes directly
// must pass through the gateway. A test that fails directly is reported, not asserted: the gateway is
// only asked to be as conformant as the broker behind it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient } from './helpers/clients.js'
import { listTests, runTest, SUITES, type Suite, type SuiteResult, type Target } from './interop/suites.js'

const SETUPS = ['direct', 'listener', 'user'] as const
type Setup = (typeof SETUPS)[number]
const THROUGH_GATEWAY = ['listener', 'user'] as const

// Each test runs alone in its own python3 process (one failing test then cannot leave retained
// messages or sessions that fail the next), and lanes run side by side so the suites, about five
// minutes of sleeps per setup, take about a minute: one job at a time per lane, each lane with its own
// brokers, so no two tests ever share a broker state.
const LANES = Number(process.env.INTEROP_LANES ?? 16)

// The longest tests (15-22 s of sleeps each) start first, so no lane is left with one at the end.
const SLOW = [
  'test_subscribe_options',
  'test_session_expiry',
  'test_keepalive',
  'test_publication_expiry',
  'test_offline_message_queueing',
  'test_will_message',
]

// Not run: it cannot pass against mosquitto, and what it does costs the other lanes their time. It
// sends Receive Maximum + 1 QoS 2 messages (65,536: mosquitto advertises none) and loops until the
// server disconnects it with 0x93; mosquitto 2.0 never does, so it only ends at the runner's alarm,
// after pushing tens of thousands of QoS 2 flows through the broker (and the gateway).
const NOT_RUN = new Map([
  ['test_flow_control2', 'mosquitto never disconnects with 0x93, the test floods until its timeout'],
])

// test_subscribe_failure expects the broker to refuse a SUBSCRIBE to `test/nosubscribe`. Mosquitto 2.0's
// acl_file never refuses one (it only filters delivery), a dynamic-security role does. It is given to
// anonymous clients: the suites directly, and the gateway's upstream connections (no upstream username),
// whose filter is mounted as `<tenant>/test/nosubscribe`.
const DYNSEC = {
  defaultACLAccess: { publishClientSend: true, publishClientReceive: true, subscribe: true, unsubscribe: true },
  clients: [],
  groups: [{ groupname: 'anonymous', roles: [{ rolename: 'nosubscribe' }] }],
  roles: [
    {
      rolename: 'nosubscribe',
      acls: [
        { acltype: 'subscribePattern', topic: 'test/nosubscribe', allow: false },
        { acltype: 'subscribePattern', topic: '+/test/nosubscribe', allow: false },
      ],
    },
  ],
  anonymousGroup: 'anonymous',
}
const DYNSEC_PLUGIN = process.env.MOSQUITTO_DYNSEC ?? '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so'

async function startBroker(): Promise<Mosquitto> {
  // the plugin writes its file back on changes: one file per broker
  const file = join(mkdtempSync(join(tmpdir(), 'mtg-dynsec-')), 'dynsec.json')
  writeFileSync(file, JSON.stringify(DYNSEC))
  return await startMosquitto(`plugin ${DYNSEC_PLUGIN}\nplugin_opt_config_file ${file}`)
}

interface Lane {
  readonly direct: Mosquitto
  readonly upstream: Mosquitto
  readonly gateway: TestGateway
}

async function startLane(): Promise<Lane> {
  const [direct, upstream] = await Promise.all([startBroker(), startBroker()])
  const gateway = await startTestGateway(`listeners:
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
  - { name: anon, type: tcp, bind: "127.0.0.1:0", tenant: anon }
upstream:
  url: ${upstream.url}
tenants:
  anon: { anonymous: true }
  acme:
    users: { alice: { password: "plain:interop" } }
`)
  // The suites wait 0.5 s for a CONNACK. A tenant's first login costs two scrypt runs (a plain
  // password is checked in the time of a hashed one, SPEC §4), seconds on a loaded machine; later ones
  // hit the gateway's verified-credentials cache. One login per lane first keeps that out of the tests.
  const first = await connectClient(gateway.port('mqtt'), { username: 'alice@acme', password: 'interop' })
  await first.client.endAsync()
  return { direct, upstream, gateway }
}

function target(lane: Lane, setup: Setup): Target {
  switch (setup) {
    case 'direct':
      return { port: lane.direct.port }
    case 'listener':
      return { port: lane.gateway.port('anon') }
    case 'user':
      return { port: lane.gateway.port('mqtt'), username: 'alice@acme', password: 'interop' }
  }
}

type Results = Map<string, Record<Setup, SuiteResult>>
const results: Record<Suite, Results> = { v3: new Map(), v5: new Map() }
/** Tests that failed once and passed when run again, as `suite name [setup]: first failure`. */
const flaky: string[] = []
const lanes: Lane[] = []
interface Job {
  readonly suite: Suite
  readonly name: string
  readonly setup: Setup
}

/** Runs the jobs on the lanes, one at a time per lane, and files each result. */
async function run(jobs: Job[]): Promise<void> {
  const queue = [...jobs]
  await Promise.all(
    lanes.map(async (lane) => {
      for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
        const r = await runTest(job.suite, job.name, target(lane, job.setup))
        const row = results[job.suite].get(job.name)
        if (row === undefined) continue
        const before = row[job.setup] as SuiteResult | undefined
        if (before !== undefined && r.status === 'pass')
          flaky.push(`${SUITES[job.suite]} ${job.name} [${job.setup}]: ${why(before)}`)
        row[job.setup] = r
      }
    }),
  )
}

before(
  async () => {
    lanes.push(...(await Promise.all(Array.from({ length: LANES }, startLane))))
    const jobs: Job[] = []
    for (const suite of ['v5', 'v3'] as const) {
      for (const name of await listTests(suite)) {
        if (NOT_RUN.has(name)) continue
        results[suite].set(name, {} as Record<Setup, SuiteResult>) // filled in by run()
        for (const setup of SETUPS) jobs.push({ suite, name, setup })
      }
    }
    const rank = (name: string): number => {
      const i = SLOW.indexOf(name)
      return i < 0 ? SLOW.length : i
    }
    await run(jobs.sort((a, b) => rank(a.name) - rank(b.name)))
    // The suites give a CONNACK (or any packet they wait for) 0.5 s: on a loaded machine (CI runners, the
    // other tests; through the gateway a CONNECT crosses one more process) that times out now and then.
    // Such a test gets up to two more runs. A failed assertion gets none: a message lost only sometimes is
    // still lost.
    for (let again = 0; again < 2; again++)
      await run(jobs.filter((j) => timedOut(results[j.suite].get(j.name)?.[j.setup])))
  },
  { timeout: 420_000 },
)

after(async () => {
  await Promise.all(
    lanes.map(async (l) => {
      await l.gateway.close()
      await l.direct.stop()
      await l.upstream.stop()
    }),
  )
})

/** Whether the test ended on a socket timeout (the suites' 0.5 s wait), rather than on an assertion. */
function timedOut(r: SuiteResult | undefined): boolean {
  return r !== undefined && r.status !== 'pass' && why(r).endsWith('TimeoutError: timed out')
}

/** The line of a failure that says what went wrong: the last assertion or exception message. */
function why(r: SuiteResult): string {
  const lines = r.detail
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[\w.]*(Error|Exception|Timeout)\b/.test(l))
  return `${r.status}${lines.length > 0 ? `: ${lines[lines.length - 1]?.slice(0, 200) ?? ''}` : ''}`
}

/**
 * The tests issue #16 was found with, and the one the dynamic-security role exists for: each must pass
 * directly, so that a broken set-up (python, the broker, the role) cannot pass this test by failing alike
 * everywhere. (v5's test_subscribe_failure fails directly: its client records no SUBACK, an IndexError in the suite.)
 */
const MUST_PASS_DIRECTLY: Record<Suite, string[]> = {
  v3: ['test_offline_message_queueing', 'test_redelivery_on_reconnect', 'test_subscribe_failure'],
  v5: ['test_offline_message_queueing', 'test_redelivery_on_reconnect'],
}

for (const suite of ['v3', 'v5'] as const) {
  test(`Paho ${SUITES[suite]}: every test that passes directly passes through the gateway (listener tenant, user@tenant)`, (t) => {
    const rows = [...results[suite]]
    assert.ok(rows.length > 0, 'the suite ran')
    for (const f of flaky) if (f.startsWith(`${SUITES[suite]} `)) t.diagnostic(`passed when run again: ${f}`)
    for (const [name, reason] of NOT_RUN) if (suite === 'v5') t.diagnostic(`not run: ${name} (${reason})`)
    for (const setup of SETUPS) {
      const passed = rows.filter(([, r]) => r[setup].status === 'pass').length
      t.diagnostic(`${setup}: ${passed}/${rows.length} pass`)
      for (const [name, r] of rows) if (r[setup].status !== 'pass') t.diagnostic(`  ${setup} ${name}: ${why(r[setup])}`)
    }
    const regressions = rows
      .filter(([, r]) => r.direct.status === 'pass')
      .flatMap(([name, r]) =>
        THROUGH_GATEWAY.filter((s) => r[s].status !== 'pass').map((s) => `${name} [${s}] ${why(r[s])}`),
      )
    for (const [name, r] of rows) {
      const failed = THROUGH_GATEWAY.filter((s) => r[s].status !== 'pass')
      if (r.direct.status === 'pass' && failed.length > 0)
        t.diagnostic(
          `${name} passes directly, not through the gateway:\n${failed.map((s) => `[${s}] ${r[s].detail}`).join('\n')}`,
        )
    }
    const named = new Map(rows)
    for (const name of MUST_PASS_DIRECTLY[suite])
      assert.equal(named.get(name)?.direct.status, 'pass', `${name} passes against mosquitto directly`)
    assert.deepEqual(regressions, [], 'tests that pass against mosquitto directly and fail through the gateway')
  })
}
