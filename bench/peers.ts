// The endpoints measured side by side, all on loopback and all in front of ONE mosquitto: the broker
// directly, an L4 proxy (haproxy `mode tcp`), and the gateway (a separate process); with `cluster`, also
// the same gateway with `cluster:` on a local redis-server, and two such gateways behind haproxy.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from '../test/helpers/net.js'
import { REDIS_BIN, startRedis, type RedisServer } from '../test/helpers/redis.js'

export interface Endpoint {
  /** cluster: the gateway with `cluster:`; pair: two of those behind haproxy (send-proxy-v2, round robin) */
  readonly name: 'direct' | 'l4' | 'gateway' | 'cluster' | 'pair'
  /** the scenarios this endpoint is measured in; all when absent */
  readonly scenarios?: readonly string[]
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
  /** also start a redis-server and the cluster endpoints (issue #18's cluster-mode column) */
  cluster?: boolean
}

/**
 * The scenarios with a cluster-mode target (issue #18): QoS 0 and QoS 1 throughput ≥ 0.9 × the gateway
 * alone, connection rate ≥ 0.7 ×; two gateways behind haproxy: the connection rate only.
 */
const CLUSTER_SCENARIOS = ['qos0', 'qos1', 'connect']
const PAIR_SCENARIOS = ['connect']

/** haproxy in TCP mode on 127.0.0.1:`port`, its `listen` section's lines after the bind. */
function haproxyConfig(port: number, lines: string[]): string {
  return `global
  maxconn 9900   # two descriptors per connection; this machine caps a process at 20,000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen mqtt
  bind 127.0.0.1:${port}
${lines.map((l) => `  ${l}`).join('\n')}
`
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
    writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(port, [`server broker 127.0.0.1:${mqttPort}`]))
    const haproxy = spawn('/usr/sbin/haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: 'ignore' })
    children.push(haproxy)
    await waitForChild(port, haproxy, 'haproxy')
    endpoints.push({ name: 'l4', port, pid: haproxy.pid ?? 0, userA: 'u@bench-a', userB: 'u@bench-b', password: 'p' })
  } else {
    skipped.push('l4: haproxy not installed (apt-get install haproxy)')
  }

  const password = opts.hashedPassword ?? 'plain:p'
  /** The gateway's YAML: the bench's two tenants behind `listeners`, `extra` (cluster:) added. */
  const gatewayYaml = (listeners: string, extra = ''): string => `listeners:
${listeners}
upstream: { url: "mqtt://127.0.0.1:${mqttPort}" }
auth: { maxFailuresPerMinute: 1000000 }
log: { level: warn }
${extra}tenants:
  bench-a:
    limits: { publishRate: ${opts.noisyPublishRate} }
    users: { u: { password: "${password}" } }
  bench-b:
    users: { u: { password: "${password}" } }
`
  const compiled = existsSync('dist/cli.js')
  // BENCH_GATEWAY_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=bench/results" profiles the gateway under load.
  const nodeOptions = process.env.BENCH_GATEWAY_NODE_OPTIONS?.split(' ').filter((o) => o !== '') ?? []
  /** Starts a gateway from `yaml`, resolves with its pid once `port` accepts connections. */
  const startGateway = async (name: string, port: number, yaml: string): Promise<number> => {
    const file = join(dir, `${name}.yaml`)
    writeFileSync(file, yaml)
    const gateway = spawn(
      process.execPath,
      compiled
        ? [...nodeOptions, 'dist/cli.js', 'start', '-c', file]
        : ['--import', 'tsx', 'src/cli.ts', 'start', '-c', file],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    )
    children.push(gateway)
    await waitForChild(port, gateway, name)
    return gateway.pid ?? 0
  }
  const users = { userA: 'u@bench-a', userB: 'u@bench-b', password: 'p' }

  const gwPort = await freePort()
  try {
    const pid = await startGateway(
      'gateway',
      gwPort,
      gatewayYaml(`  - { name: bench, type: tcp, bind: "127.0.0.1:${gwPort}" }`),
    )
    endpoints.push({ name: 'gateway', port: gwPort, pid, ...users })
  } catch (err) {
    skipped.push(`gateway: ${(err as Error).message}`)
  }

  let redis: RedisServer | undefined
  if (opts.cluster === true && !existsSync(REDIS_BIN)) skipped.push('cluster: redis-server not installed')
  else if (opts.cluster === true) {
    try {
      redis = await startRedis()
      const cluster = (name: string): string => `cluster: { redis: "${redis?.url}", name: ${name} }\n`
      const port = await freePort()
      const pid = await startGateway(
        'cluster',
        port,
        gatewayYaml(`  - { name: bench, type: tcp, bind: "127.0.0.1:${port}" }`, cluster('bench-1')),
      )
      endpoints.push({ name: 'cluster', port, pid, scenarios: CLUSTER_SCENARIOS, ...users })
      if (!existsSync('/usr/sbin/haproxy')) skipped.push('pair: haproxy not installed')
      else {
        // Two more gateways of the same cluster, each behind haproxy with the client's address in PROXY v2.
        const backends: number[] = []
        for (const name of ['bench-2', 'bench-3']) {
          const p = await freePort()
          await startGateway(
            name,
            p,
            gatewayYaml(`  - { name: bench, type: tcp, bind: "127.0.0.1:${p}", proxyProtocol: true }`, cluster(name)),
          )
          backends.push(p)
        }
        const lbPort = await freePort()
        writeFileSync(
          join(dir, 'haproxy-pair.cfg'),
          haproxyConfig(lbPort, [
            'balance roundrobin',
            ...backends.map((p, i) => `server gw${i} 127.0.0.1:${p} send-proxy-v2`),
          ]),
        )
        const lb = spawn('/usr/sbin/haproxy', ['-f', join(dir, 'haproxy-pair.cfg'), '-db'], { stdio: 'ignore' })
        children.push(lb)
        await waitForChild(lbPort, lb, 'haproxy (pair)')
        endpoints.push({ name: 'pair', port: lbPort, pid: lb.pid ?? 0, scenarios: PAIR_SCENARIOS, ...users })
      }
    } catch (err) {
      skipped.push(`cluster: ${(err as Error).message}`)
    }
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
      await redis?.stop() // after the gateways, so none of them logs Redis going away
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
