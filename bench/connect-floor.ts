// npm run bench:connect-floor — where the gateway's connection rate stands against what Node.js itself
// allows on this machine: the same connection-rate scenario as `npm run bench`, against mosquitto
// directly, haproxy, two reference proxies in Node.js (bench/node-proxy.ts) and the gateway, with the
// CPU each proxy process spends per connection (user and system time, from /proc).
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { startPeers, cpuTimes, type Endpoint } from './peers.js'
import { connectionRate } from './scenarios.js'
import { hashPassword } from '../src/tenancy/passwords.js'
import { freePort, waitForPort } from '../test/helpers/net.js'

const SECONDS = 4

/** CPU time of a process and its children (the cluster proxy's workers), from /proc. */
function processTreeCpu(pid: number): { user: number; sys: number } {
  let children: number[] = []
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(' ')
      .filter((c) => c !== '')
      .map(Number)
  } catch {
    /* gone, or a kernel without the children file: the process alone */
  }
  return [pid, ...children].map(cpuTimes).reduce((a, b) => ({ user: a.user + b.user, sys: a.sys + b.sys }))
}

async function main(): Promise<void> {
  const peers = await startPeers({ noisyPublishRate: 2000, hashedPassword: await hashPassword('p') })
  const direct = peers.endpoints.find((e) => e.name === 'direct')
  const children: ChildProcess[] = []
  try {
    if (direct === undefined) throw new Error('mosquitto did not start')
    const references: Array<Endpoint & { label: string }> = []
    for (const [mode, processes] of [
      ['pipe', 1],
      ['mqtt', 1],
      ['mqtt', 2],
    ] as const) {
      const port = await freePort()
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'bench/node-proxy.ts', mode, String(port), String(direct.port), String(processes)],
        { stdio: 'inherit' },
      )
      children.push(child)
      await waitForPort(port)
      references.push({
        ...direct,
        port,
        pid: child.pid ?? 0,
        label: `Node.js ${mode} proxy${processes > 1 ? `, ${processes} processes` : ''}`,
      })
    }
    const labels: Record<Endpoint['name'], string> = {
      direct: 'mosquitto directly',
      l4: 'haproxy (L4)',
      gateway: 'gateway',
      cluster: 'gateway with cluster:', // not started here (startPeers without `cluster`)
      pair: 'two gateways behind haproxy',
    }
    const all = [...peers.endpoints.map((e) => ({ ...e, label: labels[e.name] })), ...references]
    const rows: Array<{ label: string; rate: number; user?: number; sys?: number }> = []
    for (const ep of all) {
      process.stderr.write(`== ${ep.label}\n`)
      const proxied = ep.pid !== direct.pid
      const before = proxied ? processTreeCpu(ep.pid) : undefined
      const started = Date.now()
      const rate = await connectionRate(ep, SECONDS)
      const count = (rate * (Date.now() - started)) / 1000
      if (before === undefined) {
        rows.push({ label: ep.label, rate })
        continue
      }
      const after = processTreeCpu(ep.pid)
      rows.push({
        label: ep.label,
        rate,
        user: ((after.user - before.user) * 1e6) / count,
        sys: ((after.sys - before.sys) * 1e6) / count,
      })
    }
    const l4 = rows.find((r) => r.label === labels.l4)?.rate
    console.log('| endpoint | conn/s | × L4 | proxy CPU per connection: user / system (µs) |')
    console.log('|---|---|---|---|')
    for (const r of rows) {
      const ratio = l4 === undefined ? '' : `${(r.rate / l4).toFixed(2)}×`
      const cost = r.user === undefined || r.sys === undefined ? '' : `${Math.round(r.user)} / ${Math.round(r.sys)}`
      console.log(`| ${r.label} | ${Math.round(r.rate).toLocaleString('en-US')} | ${ratio} | ${cost} |`)
    }
  } finally {
    for (const c of children) c.kill()
    await peers.stop()
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
