// The three endpoints measured side by side, all on loopback and all in front of ONE mosquitto:
// the broker directly, an L4 proxy (haproxy `mode tcp`), and the gateway (a separate process).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from '../test/helpers/net.js'

export interface Endpoint {
  readonly name: 'direct' | 'l4' | 'gateway'
  readonly port: number
  /** the process that holds the connections (for RSS) */
  readonly pid: number
  /** username for tenant A / tenant B (ignored by mosquitto, which allows anonymous) */
  readonly userA: string
  readonly userB: string
  readonly password: string
}

export interface Peers {
  readonly endpoints: Endpoint[]
  readonly skipped: string[]
  stop(): Promise<void>
}

/** Resolves once `child` accepts connections on `port`; rejects if it exits first (bounded: 10 s). */
async function waitForChild(port: number, child: ChildProcess, what: string): Promise<void> {
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`))),
  )
  exited.catch(() => {}) // a later exit (stop) is expected
  await Promise.race([waitForPort(port), exited])
}

export interface PeerOptions {
  /** tenant A's publish rate limit in the gateway (noisy-neighbour scenario) */
  noisyPublishRate: number
  /** a scrypt hash for the connection-rate scenario's user, or undefined for plain */
  hashedPassword: string | undefined
}

export async function startPeers(opts: PeerOptions): Promise<Peers> {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-bench-'))
  const children: ChildProcess[] = []
  const endpoints: Endpoint[] = []
  const skipped: string[] = []

  const mqttPort = await freePort()
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    [
      `listener ${mqttPort} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest none',
      // Large enough that the broker does not drop QoS 1 backlog during the throughput runs.
      'max_queued_messages 1000000',
      'max_inflight_messages 0',
      'max_connections -1',
      ...(process.getuid?.() === 0 ? ['user root'] : []),
    ].join('\n') + '\n',
  )
  const mosquitto = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' })
  children.push(mosquitto)
  await waitForChild(mqttPort, mosquitto, 'mosquitto')
  endpoints.push({
    name: 'direct',
    port: mqttPort,
    pid: mosquitto.pid ?? 0,
    userA: 'u@bench-a',
    userB: 'u@bench-b',
    password: 'p',
  })

  if (existsSync('/usr/sbin/haproxy')) {
    const port = await freePort()
    writeFileSync(
      join(dir, 'haproxy.cfg'),
      `global
  maxconn 9900   # two descriptors per connection; this machine caps a process at 20,000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen mqtt
  bind 127.0.0.1:${port}
  server broker 127.0.0.1:${mqttPort}
`,
    )
    const haproxy = spawn('/usr/sbin/haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: 'ignore' })
    children.push(haproxy)
    await waitForChild(port, haproxy, 'haproxy')
    endpoints.push({ name: 'l4', port, pid: haproxy.pid ?? 0, userA: 'u@bench-a', userB: 'u@bench-b', password: 'p' })
  } else {
    skipped.push('l4: haproxy not installed (apt-get install haproxy)')
  }

  const gwPort = await freePort()
  const password = opts.hashedPassword ?? 'plain:p'
  writeFileSync(
    join(dir, 'gateway.yaml'),
    `listeners:
  - { name: bench, type: tcp, bind: "127.0.0.1:${gwPort}" }
upstream: { url: "mqtt://127.0.0.1:${mqttPort}" }
auth: { maxFailuresPerMinute: 1000000 }
log: { level: warn }
tenants:
  bench-a:
    limits: { publishRate: ${opts.noisyPublishRate} }
    users: { u: { password: "${password}" } }
  bench-b:
    users: { u: { password: "${password}" } }
`,
  )
  const compiled = existsSync('dist/cli.js')
  // BENCH_GATEWAY_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=bench/results" profiles the gateway under load.
  const nodeOptions = process.env.BENCH_GATEWAY_NODE_OPTIONS?.split(' ').filter((o) => o !== '') ?? []
  const gateway = spawn(
    process.execPath,
    compiled
      ? [...nodeOptions, 'dist/cli.js', 'start', '-c', join(dir, 'gateway.yaml')]
      : ['--import', 'tsx', 'src/cli.ts', 'start', '-c', join(dir, 'gateway.yaml')],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  children.push(gateway)
  try {
    await waitForChild(gwPort, gateway, 'gateway')
    endpoints.push({
      name: 'gateway',
      port: gwPort,
      pid: gateway.pid ?? 0,
      userA: 'u@bench-a',
      userB: 'u@bench-b',
      password: 'p',
    })
  } catch (err) {
    skipped.push(`gateway: ${(err as Error).message}`)
  }

  return {
    endpoints,
    skipped,
    async stop() {
      // SIGTERM first, so a profiled gateway writes its profile; SIGKILL whatever is left after 5 s.
      const exited = children.map((c) =>
        c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((resolve) => c.once('exit', resolve)),
      )
      for (const c of children) c.kill('SIGTERM')
      const timer = setTimeout(() => {
        for (const c of children) c.kill('SIGKILL')
      }, 5000)
      await Promise.all(exited)
      clearTimeout(timer)
    },
  }
}

export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const m = /VmRSS:\s+(\d+) kB/.exec(status)
    return m === null ? 0 : Number(m[1]) * 1024
  } catch {
    return 0
  }
}

/** CPU time a process has used in user and in system mode, in seconds; 0 when it is gone. */
export function cpuTimes(pid: number): { user: number; sys: number } {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    // utime, stime in clock ticks (USER_HZ = 100)
    return { user: Number(fields[11]) / 100, sys: Number(fields[12]) / 100 }
  } catch {
    return { user: 0, sys: 0 }
  }
}

/** CPU time (user + system) a process has used, in seconds; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  const { user, sys } = cpuTimes(pid)
  return user + sys
}
