// A real haproxy in front of the gateway, as a load balancer: each route listens on its own port and
// forwards to a gateway port — `mode tcp` writing a PROXY protocol header (v1 or v2) first, or `mode http`
// adding X-Forwarded-For, as an HTTP reverse proxy in front of a WebSocket listener does. A `mode tcp`
// route may name several gateway ports: haproxy then balances round robin among them.
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from './net.js'

export const HAPROXY_BIN = process.env.HAPROXY_BIN ?? '/usr/sbin/haproxy'

export type Route =
  | { readonly name: string; readonly to: number | readonly number[]; readonly send: 'send-proxy' | 'send-proxy-v2' }
  | { readonly name: string; readonly to: number; readonly forwardFor: true }

export interface Haproxy {
  /** haproxy's port for each route, by name */
  readonly ports: Record<string, number>
  stop(): Promise<void>
}

export async function startHaproxy(routes: readonly Route[]): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-haproxy-'))
  const ports: Record<string, number> = {}
  const sections: string[] = []
  for (const r of routes) {
    const port = (ports[r.name] = await freePort())
    sections.push(
      'send' in r
        ? `listen ${r.name}\n  balance roundrobin\n  bind 127.0.0.1:${port}\n` +
            [r.to]
              .flat()
              .map((to, i) => `  server gateway${i} 127.0.0.1:${to} ${r.send}`)
              .join('\n')
        : `listen ${r.name}\n  mode http\n  option forwardfor\n  timeout tunnel 1m\n  bind 127.0.0.1:${port}\n  server gateway 127.0.0.1:${r.to}`,
    )
  }
  const cfg = join(dir, 'haproxy.cfg')
  writeFileSync(
    cfg,
    `global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1m\n  timeout server 1m\n${sections.join('\n')}\n`,
  )
  const child = spawn(HAPROXY_BIN, ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', (code) => reject(new Error(`haproxy exited (${code}): ${stderr}`))),
  )
  exited.catch(() => {}) // stop() ends it on purpose
  for (const port of Object.values(ports)) await Promise.race([waitForPort(port), exited])
  return {
    ports,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const gone = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await gone
    },
  }
}
