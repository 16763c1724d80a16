// The real gateway as an operator runs it: `src/cli.ts start -c FILE` in a process of its own, which a
// test can SIGKILL. The config is written by the test; its ports are picked here, before the start.
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from './net.js'
import { OPERATOR_TOKEN } from './service.js'

export interface GatewayProcess {
  readonly pid: number
  /** the port of each listener, by name, and of the admin API (`admin`) */
  readonly ports: Record<string, number>
  /** fetch on the admin API with the operator's bearer token; JSON bodies parsed */
  api(path: string, init?: { method?: string }): Promise<{ status: number; body: unknown }>
  /** SIGKILL: the process ends at once, without closing anything (power cut, OOM killer) */
  kill(): Promise<void>
  /** SIGTERM, then SIGKILL after 5 s; nothing if it is gone already */
  stop(): Promise<void>
}

/**
 * Starts the gateway with `yaml(ports)`: `ports` has a free port for each name of `listeners` and for
 * `admin`. Resolves once every one of them accepts connections (bounded: 30 s, a tsx start on a busy
 * 2-core machine takes several seconds); rejects with its stderr if it exits first.
 */
export async function startGatewayProcess(
  listeners: readonly string[],
  yaml: (ports: Record<string, number>) => string,
): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-proc-'))
  const ports: Record<string, number> = {}
  for (const name of [...listeners, 'admin']) ports[name] = await freePort()
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, yaml(ports))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '-c', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const exited = gone.then(() => {
    throw new Error(`gateway exited (${child.exitCode ?? child.signalCode}): ${stderr}`)
  })
  exited.catch(() => {}) // a later exit (kill, stop) is expected
  const alive = (): boolean => child.exitCode === null && child.signalCode === null
  try {
    for (const port of Object.values(ports)) await Promise.race([waitForPort(port, '127.0.0.1', 30_000), exited])
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  return {
    pid: child.pid ?? 0,
    ports,
    async api(path, init = {}) {
      const res = await fetch(`http://127.0.0.1:${ports.admin}${path}`, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
      })
      const text = await res.text()
      const json = (res.headers.get('content-type') ?? '').includes('json') && text !== ''
      return { status: res.status, body: json ? (JSON.parse(text) as unknown) : text }
    },
    async kill() {
      if (!alive()) return
      child.kill('SIGKILL')
      await gone
    },
    async stop() {
      if (!alive()) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await gone
      clearTimeout(timer)
    },
  }
}
