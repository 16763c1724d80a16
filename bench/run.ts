// npm run bench [-- --quick] [-- --only=qos0,latency]
// Runs every scenario against the broker directly, through haproxy (L4) and through the gateway, in
// one run, prints one table and writes JSON to bench/results/. The cluster-mode columns (issue #18): the
// same gateway with `cluster:` on a local redis-server, and two such gateways behind haproxy, measured in
// the scenarios that have a cluster target only (throughput and connection rate), to keep the run short.
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { startPeers, cpuSeconds, type Endpoint } from './peers.js'
import { throughput, latency, connectionRate, memoryPerConnection, noisyNeighbour, fanOut } from './scenarios.js'
import { hashPassword } from '../src/tenancy/passwords.js'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const only = args
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',')
const want = (name: string): boolean => only === undefined || only.includes(name)
const SECONDS = quick ? 2 : 5
/** The gateway holds two sockets per client and this machine caps a process at 20,000 descriptors. */
const MEMORY_CONNECTIONS = quick ? 2000 : Number(process.env.BENCH_MEM_CONNECTIONS ?? 9000)

type Row = { metric: string; unit: string; higherIsBetter: boolean; values: Partial<Record<Endpoint['name'], number>> }
const rows: Row[] = []
function record(metric: string, unit: string, higherIsBetter: boolean, name: Endpoint['name'], value: number): void {
  let row = rows.find((r) => r.metric === metric)
  if (row === undefined) {
    row = { metric, unit, higherIsBetter, values: {} }
    rows.push(row)
  }
  row.values[name] = value
}

async function main(): Promise<void> {
  const peers = await startPeers({ noisyPublishRate: 2000, hashedPassword: await hashPassword('p'), cluster: true })
  for (const s of peers.skipped) process.stderr.write(`skipped ${s}\n`)
  // Scenario by scenario, each against every endpoint in turn, starting from a quiet broker: a run
  // must not pay for the backlog the one before left in mosquitto. Memory goes first, while every
  // process is fresh, so the growth measured is the connections' and not an earlier run's heap.
  const broker = peers.endpoints.find((e) => e.name === 'direct')?.pid ?? 0
  const each = async (name: string, run: (ep: Endpoint) => Promise<void>): Promise<void> => {
    if (!want(name)) return
    for (const ep of peers.endpoints) {
      if (ep.scenarios !== undefined && !ep.scenarios.includes(name)) continue
      await quiet(broker)
      process.stderr.write(`== ${name}: ${ep.name}\n`)
      await run(ep)
    }
  }
  try {
    await each('memory', async (ep) => {
      record(
        `RSS per idle connection (${MEMORY_CONNECTIONS})`,
        'KiB',
        false,
        ep.name,
        (await memoryPerConnection(ep, MEMORY_CONNECTIONS)) / 1024,
      )
    })
    await each('qos0', async (ep) => {
      const r = await throughput(ep, 0, SECONDS)
      record('QoS 0 throughput', 'msg/s', true, ep.name, r.msgs)
      record('QoS 0 throughput (64 B payload)', 'MB/s', true, ep.name, r.mbps)
    })
    await each('qos1', async (ep) => {
      record('QoS 1 throughput (window 100)', 'msg/s', true, ep.name, (await throughput(ep, 1, SECONDS)).msgs)
    })
    await each('latency', async (ep) => {
      const l = await latency(ep, 1000, SECONDS)
      record('latency p50 @1000 msg/s', 'ms', false, ep.name, l.p50)
      record('latency p99 @1000 msg/s', 'ms', false, ep.name, l.p99)
      record('latency p99.9 @1000 msg/s', 'ms', false, ep.name, l.p999)
    })
    await each('connect', async (ep) => {
      record('connection rate (auth, concurrency 50)', 'conn/s', true, ep.name, await connectionRate(ep, SECONDS))
    })
    await each('noisy', async (ep) => {
      const n = await noisyNeighbour(ep, SECONDS)
      record('noisy neighbour: B p99 alone', 'ms', false, ep.name, n.alone.p99)
      record('noisy neighbour: B p99 while A floods', 'ms', false, ep.name, n.flooded.p99)
      record('noisy neighbour: flooded / alone', '×', false, ep.name, n.flooded.p99 / n.alone.p99)
    })
    await each('fanout', async (ep) => {
      record('fan-out 1 → 1000 @100 msg/s', 'deliveries/s', true, ep.name, await fanOut(ep, 1000, 100, SECONDS))
    })
  } finally {
    await peers.stop()
  }
  for (const row of rows.filter((r) => r.metric.startsWith('latency'))) {
    const d = row.values.direct
    const g = row.values.gateway
    if (d !== undefined && g !== undefined)
      rows.push({
        metric: `${row.metric.replace('latency', 'latency added')}`,
        unit: 'ms',
        higherIsBetter: false,
        values: { gateway: g - d },
      })
  }
  print()
  const machine = {
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    quick,
  }
  mkdirSync('bench/results', { recursive: true })
  const file = `bench/results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  writeFileSync(file, JSON.stringify({ machine, skipped: peers.skipped, rows }, null, 2) + '\n')
  process.stdout.write(
    `\nmachine: ${machine.cpu} × ${machine.cores}, ${machine.memoryGiB} GiB, node ${machine.node}\nresults: ${file}\n`,
  )
}

/** Waits (at most 20 s) until the broker uses under 5% of a core, so runs do not overlap. */
async function quiet(pid: number): Promise<void> {
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    const before = cpuSeconds(pid)
    await new Promise((resolve) => setTimeout(resolve, 500))
    if (cpuSeconds(pid) - before < 0.025) return
  }
}

function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '—'
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US')
  return v.toFixed(Math.abs(v) >= 10 ? 1 : 2)
}

/** `a / b` as `0.93×`, or '' when either is missing. */
function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined ? '' : `${(a / b).toFixed(2)}×`
}

function print(): void {
  const header = [
    'scenario',
    'unit',
    'direct',
    'L4 proxy',
    'gateway',
    'gateway/L4',
    'cluster',
    'cluster/gateway',
    '2 gw + haproxy',
    '2 gw/cluster',
  ]
  const lines = rows.map((r) => {
    const v = r.values
    const rated = r.unit !== '×'
    return [
      r.metric,
      r.unit,
      fmt(v.direct),
      fmt(v.l4),
      fmt(v.gateway),
      rated ? ratio(v.gateway, v.l4) : '',
      v.cluster === undefined ? '' : fmt(v.cluster),
      rated ? ratio(v.cluster, v.gateway) : '',
      v.pair === undefined ? '' : fmt(v.pair),
      rated ? ratio(v.pair, v.cluster) : '',
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)))
  const line = (cells: string[]): string =>
    '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ') + ' |'
  process.stdout.write(
    [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...lines.map(line)].join('\n') + '\n',
  )
  // Issue #18's cluster targets, against the same gateway without `cluster:` in this run.
  const of = (metric: string): Row['values'] => rows.find((r) => r.metric.startsWith(metric))?.values ?? {}
  const targets = [
    ['QoS 0', of('QoS 0 throughput'), 0.9],
    ['QoS 1', of('QoS 1 throughput'), 0.9],
    ['connection rate', of('connection rate'), 0.7],
  ] as const
  const verdicts = targets
    .filter(([, v]) => v.cluster !== undefined && v.gateway !== undefined)
    .map(([what, v, target]) => {
      const r = (v.cluster ?? 0) / (v.gateway ?? 1)
      return `${what} ${r.toFixed(2)}× (target ≥ ${target}: ${r >= target ? 'met' : 'NOT met'})`
    })
  if (verdicts.length > 0) process.stdout.write(`\ncluster mode against the gateway alone: ${verdicts.join(', ')}\n`)
  const pair = of('connection rate')
  if (pair.pair !== undefined && pair.cluster !== undefined)
    process.stdout.write(
      `two gateways behind haproxy: ${ratio(pair.pair, pair.cluster)} the connection rate of one cluster gateway; ` +
        `on ${os.cpus().length} cores the load generator, mosquitto, haproxy, Redis and both gateways share the ` +
        'same cores, so this mostly shows the overhead of the extra hop and process, not how the cluster scales\n',
    )
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
