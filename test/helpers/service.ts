// The gateway with its admin API, in-process, on port 0, from a YAML config, with a store in a fresh
// temporary folder (or the one given, to test a restart).
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfigText } from '../../src/config/load.js'
import { capturingLogger } from './gateway.js'
import { startService, type Service } from '../../src/service.js'

export const OPERATOR_TOKEN = 'test-operator-token-0123456789'

export interface TestService extends Service {
  /** the MQTT listener's port */
  readonly mqttPort: number
  /** http://127.0.0.1:PORT of the admin listener (https:// when admin.tls is set) */
  readonly adminUrl: string
  readonly dir: string
  readonly logs: Array<Record<string, unknown>>
  /** fetch on the admin API with a bearer token (the operator's unless given) */
  api(
    path: string,
    init?: { method?: string; body?: unknown; token?: string | null },
  ): Promise<{ status: number; body: unknown; text: string; type: string }>
}

/** A config with one MQTT listener and the admin listener on port 0; `rest` is appended (plans, tenants…). */
export function adminYaml(upstreamUrl: string, rest: string, opts: { flush?: string } = {}): string {
  return [
    'listeners:',
    '  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }',
    'upstream:',
    `  url: ${upstreamUrl}`,
    'admin:',
    '  bind: "127.0.0.1:0"',
    `  operatorToken: ${OPERATOR_TOKEN}`,
    '  store: state.db',
    `  usageFlushInterval: ${opts.flush ?? '60s'}`,
    rest,
  ].join('\n')
}

export async function startTestService(
  yaml: string,
  dir = mkdtempSync(join(tmpdir(), 'mtg-admin-')),
): Promise<TestService> {
  const { config } = parseConfigText(yaml, { baseDir: dir })
  const { logger, logs } = capturingLogger()
  const service = await startService(config, { logger })
  const admin = service.admin
  if (admin === undefined) throw new Error('the config has no admin section')
  const adminUrl = `${config.admin?.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${admin.address.port}`
  return {
    gateway: service.gateway,
    admin,
    reload: (c) => service.reload(c),
    close: () => service.close(),
    mqttPort: service.gateway.addresses[0]?.port ?? 0,
    adminUrl,
    dir,
    logs,
    async api(path, init = {}) {
      const token = init.token === undefined ? OPERATOR_TOKEN : init.token
      const res = await fetch(adminUrl + path, {
        method: init.method ?? 'GET',
        headers: {
          ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      })
      const text = await res.text()
      const type = res.headers.get('content-type') ?? ''
      return {
        status: res.status,
        text,
        type,
        body: type.includes('json') && text !== '' ? (JSON.parse(text) as unknown) : text,
      }
    },
  }
}
