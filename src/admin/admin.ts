// The admin listener and what it needs around the gateway: the store (API changes, keys, usage), the
// usage meter and the metrics. Started after the gateway, stopped after it (so the last usage flush
// counts every session to its end).
import type { AddressInfo } from 'node:net'
import type { Server as TlsServer } from 'node:tls'
import type { AdminConfig, GatewayConfig } from '../config/schema.js'
import type { Gateway } from '../gateway.js'
import { ListenFailure } from '../listeners/listen.js'
import { renewCertificate, tlsContextOptions } from '../listeners/tls.js'
import type { Logger } from '../log.js'
import { UsageMeter } from '../metering/meter.js'
import type { PlanChanges, Store, TenantChanges } from '../store/store.js'
import { TenantControl } from './control.js'
import type { GatewayMetrics } from './metrics.js'
import type { AdminCluster } from './routes/deps.js'
import { buildAdminServer } from './server.js'

export interface Admin {
  readonly address: { host: string; port: number }
  /** a new YAML: the API's changes are merged over it and the gateway reloaded */
  setBase(config: GatewayConfig): Promise<void>
  /** stops the HTTP listener (call before the gateway closes) */
  stopListening(): Promise<void>
  /** the last usage flush and the store's close (call after the gateway closed) */
  close(): Promise<void>
}

export interface AdminOptions {
  admin: AdminConfig
  base: GatewayConfig
  changes: Map<string, TenantChanges>
  planChanges: PlanChanges
  store: Store
  gateway: Gateway
  metrics: GatewayMetrics
  log: Logger
  /** a member of a cluster: the store is shared, and changes made through other gateways are applied here */
  cluster?: AdminCluster | undefined
}

export async function startAdmin(opts: AdminOptions): Promise<Admin> {
  const { gateway, store, metrics, log, cluster } = opts
  let admin = opts.admin
  const control = new TenantControl(opts.base, opts.changes, opts.planChanges, store, gateway, log)
  // A deleted tenant's counters are dropped only once the meter has sampled them one last time.
  const meter = new UsageMeter(
    () => gateway.allCounters(),
    store,
    (err) => log.error({ err }, 'usage could not be written to the store'),
    () => gateway.pruneRetired(),
  )
  metrics.attach(gateway)
  const tls = admin.tls !== undefined ? tlsContextOptions(admin.tls) : undefined
  const app = await buildAdminServer({
    operatorToken: () => admin.operatorToken,
    control,
    gateway,
    store,
    meter,
    metrics,
    log,
    cluster,
    ...(tls !== undefined ? { tls } : {}),
  })
  const { host, port } = admin.bind
  try {
    await app.listen({ host, port })
  } catch (err) {
    throw new ListenFailure('admin', host, port, (err as NodeJS.ErrnoException).code)
  }
  meter.start(admin.usageFlushInterval, () => admin.usageRetention)
  // This gateway applied its own changes as it made them; keys are read from the store per request.
  const offFeed = cluster?.onStoreChange((change) => {
    if (change.kind === 'keys' || (change.gateway === cluster.name && change.kind !== 'all')) return
    control
      .reread()
      .catch((err: unknown) => log.error({ err, change }, 'a change made through another gateway could not be applied'))
  })
  const a = app.server.address() as AddressInfo
  const address = { host: a.address, port: a.port }
  const scheme = tls !== undefined ? 'https' : 'http'
  log.info({ listener: 'admin', address: a.address, port: a.port, scheme }, 'admin API and web UI listening')

  return {
    address,
    async setBase(config) {
      if (config.admin !== undefined) {
        const { bind, store: file } = config.admin
        if (
          bind.port !== admin.bind.port ||
          bind.host !== admin.bind.host ||
          file !== admin.store ||
          (config.admin.tls === undefined) !== (tls === undefined)
        ) {
          log.warn('admin.bind, admin.store and switching admin.tls on or off take effect at the next start')
        }
        // A renewed certificate is picked up by a reload (SIGHUP), for the next TLS handshakes.
        if (tls !== undefined && config.admin.tls !== undefined) {
          // fastify types its server as http.Server; with admin.tls it is the https.Server of httpsFactory.
          const err = renewCertificate(app.server as unknown as TlsServer, config.admin.tls)
          if (err !== undefined) {
            const keeps = 'the new certificate or key cannot be used; the listener keeps the old ones'
            log.error({ listener: 'admin', err }, keeps)
          }
        }
        admin = { ...admin, operatorToken: config.admin.operatorToken, usageRetention: config.admin.usageRetention }
      }
      await control.setBase(config)
    },
    async stopListening() {
      offFeed?.()
      await app.close()
    },
    async close() {
      await meter.stop()
      await store.close()
    },
  }
}
