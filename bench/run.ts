// npm run bench [-- --quick] [-- --only=qos0,latency]
// Runs every scenario against the broker directly, through haproxy (L4) and through the gateway, in
// one run, prints one table and writes JSON to bench/results/.
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
  const peers = await startPeers({ noisyPublishRate: 2000, hashedPassword: await hashPassword('p') })
  for (const s of peers.skipped) process.stderr.write(`skipped ${s}\n`)
  // Scenario by scenario, each against every endpoint in turn, starting from a quiet broker: a run
  // must not pay for the backlog the one before left in mosquitto. Memory goes first, while every
  // process is fresh, so the growth measured is the connections' and not an earlier run's heap.
  const broker = peers.endpoints.find((e) => e.name === 'direct')?.pid ?? 0
  const each = async (name: string, run: (ep: Endpoint) => Promise<void>): Promise<void> => {
    if (!want(name)) return
    for (const ep of peers.endpoints) {
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

function print(): void {
  const header = ['scenario', 'unit', 'direct', 'L4 proxy', 'gateway', 'gateway/L4']
  const lines = rows.map((r) => {
    const ratio =
      r.values.gateway !== undefined && r.values.l4 !== undefined && r.unit !== '×'
        ? r.values.gateway / r.values.l4
        : undefined
    return [
      r.metric,
      r.unit,
      fmt(r.values.direct),
      fmt(r.values.l4),
      fmt(r.values.gateway),
      ratio === undefined ? '' : `${ratio.toFixed(2)}×`,
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)))
  const line = (cells: string[]): string =>
    '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ') + ' |'
  process.stdout.write(
    [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...lines.map(line)].join('\n') + '\n',
  )
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
