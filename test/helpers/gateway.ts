// The real gateway, in-process, on port 0, from a YAML config as an operator would write it.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { parseConfigText } from '../../src/config/load.js'
import { startGateway, type Gateway } from '../../src/gateway.js'
import { createLogger, type Logger } from '../../src/log.js'

export interface TestGateway extends Gateway {
  /** port of the listener named `name` (default: the first) */
  port(name?: string): number
  /** the JSON log lines written so far */
  readonly logs: Array<Record<string, unknown>>
}

/** A small config: listener `mqtt` on port 0, the given upstream, and the YAML `rest` appended. */
export function yamlConfig(upstreamUrl: string, rest: string): string {
  return `listeners:\n  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }\nupstream:\n  url: ${upstreamUrl}\n${rest}`
}

/** A pino logger (level TEST_LOG_LEVEL, default info) whose JSON lines are collected in `logs`. */
export function capturingLogger(): { logger: Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  return { logger: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'info', destination }), logs }
}

export async function startTestGateway(yaml: string): Promise<TestGateway> {
  const { config } = parseConfigText(yaml, { baseDir: mkdtempSync(join(tmpdir(), 'mtg-gw-')) })
  const { logger, logs } = capturingLogger()
  const gateway = await startGateway(config, { logger })
  // The gateway is the prototype, so its getters (config) stay live.
  return Object.assign(Object.create(gateway) as Gateway, {
    logs,
    port(name?: string) {
      const a = name === undefined ? gateway.addresses[0] : gateway.addresses.find((x) => x.listener === name)
      if (a === undefined) throw new Error(`no listener ${name ?? ''}`)
      return a.port
    },
  })
}

/** Waits (bounded) until the gateway counts no connection any more (of `tenant`, or at all): nothing leaked. */
export async function drained(t: Gateway, tenant?: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (t.connections(tenant) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  if (t.connections(tenant) !== 0)
    throw new Error(
      `${t.connections(tenant)} connections${tenant !== undefined ? ` of ${tenant}` : ''} still counted after ${ms} ms`,
    )
}
