// Wires listeners → sessions → upstream; the library API used by the CLI and the tests alike.
import type net from 'node:net'
import type { GatewayConfig } from './config/schema.js'
import type { Logger } from './log.js'
import { Authenticator } from './tenancy/auth.js'
import { buildTenants, type TenantRuntime } from './tenancy/tenants.js'
import { TenantLimits } from './policy/limits.js'
import type { TenantCounters } from './policy/counters.js'
import { Session, type ConnectionMeta, type SessionHost } from './session/session.js'
import { startEmbeddedBroker, type EmbeddedBroker } from './upstream/embedded.js'
import { upstreamTarget, type UpstreamTarget } from './upstream/connect.js'
import { startTcpListener } from './listeners/tcp.js'
import { startTlsListener } from './listeners/tls.js'

export interface ListeningAddress {
  listener: string
  address: string
  port: number
}

export interface Gateway {
  /** where each listener is bound (ports resolved when the config asked for port 0) */
  readonly addresses: readonly ListeningAddress[]
  /** the live sessions' count, per tenant or in all */
  connections (tenant?: string): number
  /** a tenant's counters (connections, messages and bytes in/out, denials, limit hits) */
  counters (tenant: string): Readonly<TenantCounters> | undefined
  /** apply a new validated config: new users/ACLs/limits at once, removed/disabled tenants disconnected */
  reload (config: GatewayConfig): Promise<void>
  /** stop accepting, DISCONNECT v5 clients with 0x8B, close the rest, stop the embedded broker */
  close (): Promise<void>
}

export interface StartOptions {
  logger: Logger
}

/** How long close() waits for clients to go before cutting them. */
const DRAIN_MS = 2000

export async function startGateway (initial: GatewayConfig, opts: StartOptions): Promise<Gateway> {
  const log = opts.logger
  let config = initial
  let tenants = buildTenants(config)
  const authenticator = new Authenticator(config)
  const quotas = new TenantLimits(config.maxConnections)
  const sessions = new Set<Session>()
  const servers: net.Server[] = []

  const embedded: EmbeddedBroker | undefined = config.upstream.url === 'embedded' ? await startEmbeddedBroker() : undefined
  if (embedded !== undefined) log.info({ address: `${embedded.host}:${embedded.port}` }, 'embedded broker (aedes, MQTT 3.1.1) started on loopback')
  let target: UpstreamTarget = upstreamTarget(config.upstream, embedded)

  const host: SessionHost = {
    log,
    v5Upstream: embedded === undefined,
    authenticate: (req) => authenticator.authenticate(req),
    tenant: (id) => tenants.get(id),
    upstreamFor: (_tenant: TenantRuntime) => target,
    async admit (session) {
      const tenant = session.tenant
      if (tenant === undefined) return 'notAuthorized'
      const result = await quotas.admit(tenant)
      if (typeof result !== 'string') sessions.add(session)
      return result
    },
    release (session, policy) {
      sessions.delete(session)
      quotas.release(policy)
    },
  }

  // Every client socket, admitted or not, so shutdown can reach the ones still authenticating too.
  const sockets = new Set<net.Socket>()
  const accept = (socket: net.Socket, meta: ConnectionMeta): void => {
    // A socket error before the session attaches its handlers must not reach the process.
    socket.on('error', () => {})
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    new Session(host, socket, meta)
  }

  try {
    for (const listener of config.listeners) {
      servers.push(await (listener.type === 'tls' ? startTlsListener(listener, accept) : startTcpListener(listener, accept)))
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
    await embedded?.close()
    throw err
  }

  const addresses = config.listeners.map((l, i): ListeningAddress => {
    const a = servers[i]?.address() as net.AddressInfo
    return { listener: l.name, address: a.address, port: a.port }
  })
  for (const a of addresses) log.info(a, 'listening')

  return {
    addresses,
    connections: (tenant) => quotas.connections(tenant),
    counters: (tenant) => quotas.counters(tenant),

    async reload (next) {
      // Built first: if the new tenants cannot be built, the running configuration stays whole.
      const nextTenants = buildTenants(next)
      config = next
      tenants = nextTenants
      authenticator.update(next)
      quotas.update(tenants, next.maxConnections)
      target = upstreamTarget(next.upstream, embedded)
      let dropped = 0
      for (const session of [...sessions]) {
        const id = session.tenant?.id
        const tenant = id === undefined ? undefined : tenants.get(id)
        if (tenant === undefined || tenant.config.disabled) {
          session.close('notAuthorized', tenant === undefined ? 'tenant removed' : 'tenant disabled')
          dropped++
        } else {
          session.applyTenant(tenant)
        }
      }
      log.info({ tenants: tenants.size, disconnected: dropped }, 'configuration reloaded')
    },

    async close () {
      const stopped = Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
      for (const session of [...sessions]) session.close('serverShuttingDown', 'gateway shutting down')
      const deadline = Date.now() + DRAIN_MS
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      for (const socket of sockets) socket.destroy()
      await stopped
      await embedded?.close()
      log.info('gateway stopped')
    },
  }
}
