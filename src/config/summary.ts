// What `check` prints: the configuration as the gateway will run it, each tenant's effective limits.
import { existsSync } from 'node:fs'
import type { LoadedConfig } from './load.js'
import type { UpstreamConfig } from './schema.js'
import { effectiveLimits } from '../policy/plans.js'
import { mergeTenantChanges, tenantSource } from '../store/merge.js'
import { openSqliteStore } from '../store/sqlite.js'

function limitsText(limits: object): string {
  const entries = Object.entries(limits).filter(([, v]) => v !== undefined)
  return entries.length === 0 ? 'unlimited' : entries.map(([k, v]) => `${k}=${String(v)}`).join(', ')
}

export function summarizeConfig({ config, file }: LoadedConfig): string {
  const out: string[] = []
  if (file !== undefined) out.push(`config: ${file}`)
  out.push('listeners:')
  for (const l of config.listeners) {
    out.push(
      `  ${l.name}: ${l.type} ${l.bind.host.includes(':') ? `[${l.bind.host}]` : l.bind.host}:${l.bind.port}${l.tenant !== undefined ? ` (tenant ${l.tenant})` : ''}${l.type === 'ws' || l.type === 'wss' ? `, path ${l.path}, messages up to ${l.maxMessageSize} bytes` : ''}, connectTimeout ${l.connectTimeout}ms${l.ipConnectRate !== undefined ? `, ipConnectRate ${l.ipConnectRate}/s` : ''}${l.proxyProtocol ? ', PROXY protocol (only the load balancer may connect)' : ''}`,
    )
  }
  const upstreamText = (u: UpstreamConfig): string =>
    `${u.url}${u.username !== undefined ? `, username "${u.username}"` : ''}${u.password !== undefined && u.password !== '' ? ', password set' : ''}, connectTimeout ${u.connectTimeout}ms`
  out.push(`upstream: ${upstreamText(config.upstream)}`)
  for (const [name, u] of Object.entries(config.upstreams)) {
    const placed = Object.entries(config.tenants)
      .filter(([, t]) => t.upstream === name)
      .map(([id]) => id)
    out.push(`upstream ${name}: ${upstreamText(u)}; tenants: ${placed.join(' ') || 'none'}`)
  }
  const t = config.tenancy
  out.push(
    `tenancy: resolve ${t.resolve.join(' → ')}; username "${t.username}"${t.sni !== undefined ? `; sni "${t.sni}"` : ''}; topics "${t.namespace.topic}", client IDs "${t.namespace.clientId}"`,
  )
  if (config.maxConnections !== undefined) out.push(`gateway maxConnections: ${config.maxConnections}`)
  const a = config.admin
  if (a !== undefined)
    out.push(
      `admin: ${a.tls !== undefined ? 'https' : 'http'}://${a.bind.host.includes(':') ? `[${a.bind.host}]` : a.bind.host}:${a.bind.port} (API, web UI, /metrics), store ${a.store}, usage flushed every ${a.usageFlushInterval}ms${a.usageRetention !== undefined ? `, kept ${a.usageRetention / 86_400_000} days` : ''}`,
    )
  out.push('plans:')
  for (const [name, limits] of Object.entries(config.plans)) out.push(`  ${name}: ${limitsText(limits)}`)
  out.push(`tenants (${Object.keys(config.tenants).length}):`)
  for (const [id, tenant] of Object.entries(config.tenants)) {
    const flags = [
      tenant.disabled ? 'DISABLED' : '',
      tenant.anonymous ? 'anonymous allowed' : '',
      tenant.acl !== undefined ? `${tenant.acl.length} ACL rules` : '',
    ].filter(Boolean)
    out.push(
      `  ${id}: plan ${tenant.plan ?? '(none)'}${tenant.upstream !== undefined ? `, upstream ${tenant.upstream}` : ''}, ${Object.keys(tenant.users).length} users${tenant.hosts.length > 0 ? `, hosts ${tenant.hosts.join(' ')}` : ''}${flags.length > 0 ? `, ${flags.join(', ')}` : ''}`,
    )
    out.push(`    limits: ${limitsText(effectiveLimits(config, id))}`)
  }
  return out.join('\n')
}

/**
 * The summary as the gateway would run it: when an admin store exists, its changes are merged over the
 * YAML (they win) and listed, so the operator sees what the API changed.
 */
export async function summarizeWithStore(loaded: LoadedConfig): Promise<{ text: string; warnings: string[] }> {
  const file = loaded.config.admin?.store
  if (file === undefined || file === ':memory:' || !existsSync(file))
    return { text: summarizeConfig(loaded), warnings: [] }
  let changes
  let planChanges
  try {
    const store = openSqliteStore(file, { readonly: true })
    changes = await store.tenantChanges()
    planChanges = await store.planChanges()
    await store.close()
  } catch (err) {
    return {
      text: summarizeConfig(loaded),
      warnings: [`admin store ${file} could not be read: ${err instanceof Error ? err.message : String(err)}`],
    }
  }
  const merged = mergeTenantChanges(loaded.config, changes, planChanges)
  const out = [summarizeConfig({ ...loaded, config: merged.config })]
  out.push(`changes made through the admin API (${file}; they win over the YAML):`)
  if (changes.size === 0 && planChanges.size === 0) out.push('  none')
  for (const [plan, limits] of [...planChanges].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(
      `  plan ${plan}: ${limits === null ? 'deleted' : plan in loaded.config.plans ? 'limits changed' : 'created through the API'}`,
    )
  }
  for (const [id, c] of [...changes].sort(([a], [b]) => a.localeCompare(b))) {
    if (c.deleted === true) {
      out.push(`  ${id}: deleted`)
      continue
    }
    const { source, changed } = tenantSource(c)
    out.push(
      `  ${id}: ${source === 'api' ? 'created through the API' : changed.length > 0 ? changed.join(', ') : 'no changes'}`,
    )
  }
  return { text: out.join('\n'), warnings: merged.warnings }
}
