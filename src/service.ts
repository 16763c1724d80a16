// The whole gateway as the CLI runs it: the YAML merged with the admin API's stored changes, the MQTT
// gateway, and — when `admin` is configured — the admin API, metrics and usage metering.
import type { GatewayConfig } from './config/schema.js'
import { startGateway, type Gateway, type StartOptions } from './gateway.js'
import { startCluster, type Cluster } from './cluster/cluster.js'
import type { Logger } from './log.js'
import { startAdmin, type Admin } from './admin/admin.js'
import { createMetrics } from './admin/metrics.js'
import type { AdminCluster } from './admin/routes/deps.js'
import { mergeTenantChanges } from './store/merge.js'
import { openSqliteStore } from './store/sqlite.js'
import { provisioners } from './upstream/provision.js'

/**
 * Brokers with `provision` get the tenants' clients and roles before the gateway takes the config, so a
 * tenant is known to the broker by the time its first device connects. A failure is logged, not
 * thrown: the gateway still applies the config.
 */
async function provision(config: GatewayConfig, log: Logger): Promise<void> {
  await Promise.all(provisioners(config, log).map((p) => p.apply(config)))
}

/** The gateway whose every reload (SIGHUP, admin API) provisions the brokers first. */
function provisioning(gateway: Gateway, log: Logger): Gateway {
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
  reload(config: GatewayConfig): Promise<void>
  close(): Promise<void>
}

/** How long the start waits for the cluster's Redis before admitting against the degraded share. */
const CLUSTER_READY_MS = 2000

export async function startService(config: GatewayConfig, opts: { logger: Logger }): Promise<Service> {
  const log = opts.logger
  // A member of a cluster (SPEC §11): started before the gateway, closed after it, so every session
  // releases its slots while Redis is still there.
  const cluster: Cluster | undefined = config.cluster === undefined ? undefined : startCluster(config.cluster, { log })
  if (cluster !== undefined) await cluster.redis.ready(CLUSTER_READY_MS)
  const options: StartOptions = { logger: log, ...(cluster !== undefined ? { cluster } : {}) }
  if (config.admin === undefined) {
    try {
      await provision(config, log)
      const gateway = provisioning(await startGateway(config, options), log)
      return {
        gateway,
        admin: undefined,
        // Nothing meters usage without admin, so a removed tenant's counters can go at once.
        reload: async (next) => {
          await gateway.reload(next)
          gateway.pruneRetired()
        },
        async close() {
          await gateway.close()
          await cluster?.close()
        },
      }
    } catch (err) {
      await cluster?.close()
      throw err
    }
  }
  const shared = cluster?.openStore(config.admin.store)
  const store = shared ?? openSqliteStore(config.admin.store)
  let gateway: Gateway | undefined
  try {
    // Subscribed before reading, so no change made through another gateway falls in between.
    await shared?.subscribed
    const changes = await store.tenantChanges()
    const planChanges = await store.planChanges()
    const merged = mergeTenantChanges(config, changes, planChanges)
    for (const w of merged.warnings) log.warn(w)
    const metrics = createMetrics(
      cluster !== undefined ? { clusterOutages: () => cluster.redis.outages, gateway: cluster.name } : {},
    )
    await provision(merged.config, log)
    gateway = provisioning(
      await startGateway(merged.config, { ...options, onUpstreamConnect: metrics.upstreamConnected }),
      log,
    )
    const adminCluster: AdminCluster | undefined =
      cluster === undefined || shared === undefined
        ? undefined
        : {
            name: cluster.name,
            readiness: () => cluster.readiness(),
            outages: () => cluster.redis.outages,
            onStoreChange: (listener) => shared.onChange(listener),
          }
    const admin = await startAdmin({
      admin: config.admin,
      base: config,
      changes,
      planChanges,
      store,
      gateway,
      metrics,
      log,
      cluster: adminCluster,
    })
    const g = gateway
    return {
      gateway: g,
      admin,
      reload: (next) => admin.setBase(next),
      async close() {
        await admin.stopListening()
        await g.close()
        await admin.close()
        await cluster?.close()
      },
    }
  } catch (err) {
    await gateway?.close()
    await store.close()
    await cluster?.close()
    throw err
  }
}
