// The whole gateway as the CLI runs it: the YAML merged with the admin API's stored changes, the MQTT
// gateway, and — when `admin` is configured — the admin API, metrics and usage metering.
import type { GatewayConfig } from './config/schema.js'
import { startGateway, type Gateway } from './gateway.js'
import type { Logger } from './log.js'
import { startAdmin, type Admin } from './admin/admin.js'
import { createMetrics } from './admin/metrics.js'
import { mergeTenantChanges } from './store/merge.js'
import { openSqliteStore } from './store/sqlite.js'
import { provisioners } from './upstream/provision.js'

/**
 * Brokers with `provision` get the tenants' clients and roles before the gateway takes the config, so a
 * tenant is known to the broker by the time its first device connects. A failure is logged, not
 * thrown: the gateway still applies the config.
 */
async function provision (config: GatewayConfig, log: Logger): Promise<void> {
  await Promise.all(provisioners(config, log).map((p) => p.apply(config)))
}

/** The gateway whose every reload (SIGHUP, admin API) provisions the brokers first. */
function provisioning (gateway: Gateway, log: Logger): Gateway {
  const reload = async (next: GatewayConfig): Promise<void> => {
    await provision(next, log)
    await gateway.reload(next)
  }
  return Object.create(gateway, { reload: { value: reload } }) as Gateway
}

export interface Service {
  readonly gateway: Gateway
  readonly admin: Admin | undefined
  /** a new validated YAML (SIGHUP, --watch) */
  reload (config: GatewayConfig): Promise<void>
  close (): Promise<void>
}

export async function startService (config: GatewayConfig, opts: { logger: Logger }): Promise<Service> {
  const log = opts.logger
  if (config.admin === undefined) {
    await provision(config, log)
    const gateway = provisioning(await startGateway(config, { logger: log }), log)
    return {
      gateway,
      admin: undefined,
      // Nothing meters usage without admin, so a removed tenant's counters can go at once.
      reload: async (next) => { await gateway.reload(next); gateway.pruneRetired() },
      close: () => gateway.close(),
    }
  }
  const store = openSqliteStore(config.admin.store)
  let gateway: Gateway | undefined
  try {
    const changes = await store.tenantChanges()
    const planChanges = await store.planChanges()
    const merged = mergeTenantChanges(config, changes, planChanges)
    for (const w of merged.warnings) log.warn(w)
    const metrics = createMetrics()
    await provision(merged.config, log)
    gateway = provisioning(await startGateway(merged.config, { logger: log, onUpstreamConnect: metrics.upstreamConnected }), log)
    const admin = await startAdmin({ admin: config.admin, base: config, changes, planChanges, store, gateway, metrics, log })
    const g = gateway
    return {
      gateway: g,
      admin,
      reload: (next) => admin.setBase(next),
      async close () {
        await admin.stopListening()
        await g.close()
        await admin.close()
      },
    }
  } catch (err) {
    await gateway?.close()
    await store.close()
    throw err
  }
}
