// Wires listeners → sessions → upstream; the library API used by the CLI and the tests alike.
import net from 'node:net'
import type tls from 'node:tls'
import type { GatewayConfig } from './config/schema.js'
import type { Logger } from './log.js'
import { Authenticator } from './tenancy/auth.js'
import { buildTenants, type TenantRuntime } from './tenancy/tenants.js'
import { TenantLimits } from './policy/limits.js'
import type { TenantCounters } from './policy/counters.js'
import { Session, type ClientStream, type ConnectionMeta, type SessionHost } from './session/session.js'
import { startEmbeddedBroker, type EmbeddedBroker } from './upstream/embedded.js'
import { targetOf, upstreamTargets } from './upstream/connect.js'
import { probeFields, ReadinessProbe } from './upstream/probe.js'
import { startListener } from './listeners/start.js'
import { renewCertificate } from './listeners/tls.js'
import type { Cluster } from './cluster/cluster.js'
import type { ClusterRegistry } from './cluster/registry.js'
import { describe, type ClientInfo } from './admin/client-info.js'

export type { ClientInfo }

export interface ListeningAddress {
  listener: string
  address: string
  port: number
}

export interface Gateway {
  /** the configuration running now (after reloads) */
  readonly config: GatewayConfig
  /** the tenant's connected clients */
  clients(tenant: string): ClientInfo[]
  /** disconnects the tenant's clients with this client ID (v5: DISCONNECT 0x98); how many there were */
  kick(tenant: string, clientId: string): number
  /** every tenant with counters (those that have seen a connection attempt since the start, until pruned) */
  allCounters(): Iterable<[string, TenantCounters]>
  /** forgets the counters of tenants removed by a reload once their clients are gone; their IDs */
  pruneRetired(): string[]
  /** subscriptions the tenant's clients hold now */
  subscriptions(tenant: string): number
  /** true when the default upstream broker accepts an MQTT login with the upstream credentials (readiness) */
  upstreamReachable(): Promise<boolean>
  /** the same for each of the named `upstreams` */
  namedUpstreamsReachable(): Promise<Record<string, boolean>>
  /** in a cluster: the tenant's clients and kicks across every gateway */
  readonly registry: ClusterRegistry | undefined
  /** where each listener is bound (ports resolved when the config asked for port 0) */
  readonly addresses: readonly ListeningAddress[]
  /** the live sessions' count, per tenant or in all */
  connections(tenant?: string): number
  /** a tenant's counters (connections, messages and bytes in/out, denials, limit hits) */
  counters(tenant: string): Readonly<TenantCounters> | undefined
  /** apply a new validated config: new users/ACLs/limits at once, removed/disabled tenants disconnected */
  reload(config: GatewayConfig): Promise<void>
  /** stop accepting, DISCONNECT v5 clients with 0x8B, close the rest, stop the embedded broker */
  close(): Promise<void>
}

export interface StartOptions {
  logger: Logger
  /** seconds from dialling the broker to its CONNACK, for each client (metrics) */
  onUpstreamConnect?: (seconds: number, ok: boolean) => void
  /** a member of a cluster (SPEC §11): limits, login throttle, ipConnectRate and clients shared */
  cluster?: GatewayCluster
}

/** The parts of a cluster membership the gateway enforces with (src/cluster/cluster.ts). */
export type GatewayCluster = Pick<Cluster, 'leases' | 'budget' | 'loginThrottle' | 'addressRate' | 'registry'>

const clientKey = (tenant: string, clientId: string): string => `${tenant}\u0000${clientId}`

/** How long close() waits for clients to go before cutting them. */
const DRAIN_MS = 2000
/** How often sessions' deadlines and keep alives are checked: deadlines hold to within this. */
const TICK_MS = 500

export async function startGateway(initial: GatewayConfig, opts: StartOptions): Promise<Gateway> {
  const log = opts.logger
  let config = initial
  let tenants = buildTenants(config)
  const cluster = opts.cluster
  const authenticator = new Authenticator(config, cluster?.loginThrottle)
  const quotas = new TenantLimits(
    config.maxConnections,
    cluster === undefined
      ? undefined
      : { connections: cluster.leases, budget: cluster.budget, subscriptions: cluster.leases },
  )
  const sessions = new Set<Session>()
  const servers: net.Server[] = []
  /** TLS listeners by name, so a reload can hand them a renewed certificate */
  const tlsServers = new Map<string, tls.Server>()

  const embedded: EmbeddedBroker | undefined =
    config.upstream.url === 'embedded' ? await startEmbeddedBroker() : undefined
  if (embedded !== undefined)
    log.info(
      { address: `${embedded.host}:${embedded.port}` },
      'embedded broker (aedes, MQTT 3.1.1) started on loopback',
    )
  let targets = upstreamTargets(config, embedded)
  const probe = new ReadinessProbe(log)

  // Indexes of `sessions`, so a claim from another gateway (one per CONNECT anywhere in the cluster), a
  // kick or a client list costs the sessions concerned, not a scan of every session of this gateway.
  /** admitted sessions by tenant, from enter() to release() */
  const byTenant = new Map<string, Set<Session>>()
  /** admitted sessions by tenant and client ID, from claim() (the client ID is final by then) to release() */
  const byClient = new Map<string, Set<Session>>()
  const index = (map: Map<string, Set<Session>>, key: string, session: Session): void => {
    const set = map.get(key)
    if (set === undefined) map.set(key, new Set([session]))
    else set.add(session)
  }
  const unindex = (map: Map<string, Set<Session>>, key: string, session: Session): void => {
    const set = map.get(key)
    if (set?.delete(session) === true && set.size === 0) map.delete(key)
  }
  const sessionsOf = (tenant: string): Session[] => [...(byTenant.get(tenant) ?? [])]
  /** the tenant's sessions with this client ID, not closed */
  const sessionsNamed = (tenant: string, clientId: string): Session[] =>
    [...(byClient.get(clientKey(tenant, clientId)) ?? [])].filter((s) => s.state !== 'closed')
  const clients = (tenant: string): ClientInfo[] =>
    sessionsOf(tenant)
      .map(describe)
      .filter((c): c is ClientInfo => c !== undefined)
  const kick = (tenant: string, clientId: string): number => {
    const targets = sessionsNamed(tenant, clientId)
    for (const s of targets) s.close('administrativeAction', 'disconnected by an administrator')
    if (targets.length > 0) log.info({ tenant, clientId }, 'client disconnected by an administrator')
    return targets.length
  }
  // The same tenant's client ID connected through another gateway: the broker drops this one's upstream
  // connection next; the client hears 0x8E now, not "upstream lost" then.
  const takenOver = (tenant: string, clientId: string, by: string): void => {
    quotas.handOff(tenant, clientId)
    for (const s of sessionsNamed(tenant, clientId)) {
      log.info({ tenant, clientId, by }, 'session taken over through another gateway')
      s.close('sessionTakenOver', `another connection took the session over through gateway ${by}`)
    }
  }
  const registry = cluster?.registry({ clients, kick, takenOver })
  /** the newest session of each tenant's client ID: an older one whose broker connection drops was taken over */
  const owners = new Map<string, Session>()
  /** each claimed session's key in byClient */
  const claimedAs = new Map<Session, string>()
  const ownerKey = (session: Session): string => clientKey(session.tenant?.id ?? '', session.clientId)
  const host: SessionHost = {
    log,
    get throttleLinger() {
      return config.throttleLinger
    },
    authenticate: (req) => authenticator.authenticate(req),
    tenant: (id) => tenants.get(id),
    upstreamFor: (tenant: TenantRuntime) => targetOf(targets, tenant.config.upstream),
    admit: (tenant) => quotas.admit(tenant),
    enter(session) {
      sessions.add(session)
      const tenant = session.tenant?.id
      if (tenant !== undefined) index(byTenant, tenant, session)
    },
    claim(session) {
      const key = ownerKey(session)
      owners.set(key, session)
      claimedAs.set(session, key)
      index(byClient, key, session)
      const tenant = session.tenant?.id
      if (registry !== undefined && tenant !== undefined) return registry.claim(tenant, session.clientId)
    },
    displaced(session) {
      const owner = owners.get(ownerKey(session))
      return owner !== undefined && owner !== session
    },
    release(session, policy, expirySeconds) {
      sessions.delete(session)
      const tenant = session.tenant?.id
      if (tenant !== undefined) unindex(byTenant, tenant, session)
      const claimed = claimedAs.get(session)
      if (claimed !== undefined) {
        claimedAs.delete(session)
        unindex(byClient, claimed, session)
      }
      const key = ownerKey(session)
      if (owners.get(key) === session) owners.delete(key)
      quotas.release(policy, expirySeconds)
    },
    forget(session) {
      live.delete(session)
    },
    ...(opts.onUpstreamConnect !== undefined ? { upstreamConnected: opts.onUpstreamConnect } : {}),
  }

  // Every session from accept until both its sockets are gone, admitted or not: the clock ticks them,
  // and shutdown reaches the ones still authenticating too.
  const live = new Set<Session>()
  const accept = (client: ClientStream, meta: ConnectionMeta): void => {
    live.add(new Session(host, client, meta)) // attaches the socket's error handler at once
  }

  try {
    for (const listener of config.listeners) {
      const { listening, tls: tlsServer } = await startListener(listener, log, accept, cluster?.addressRate)
      if (tlsServer !== undefined) tlsServers.set(listener.name, tlsServer)
      servers.push(listening)
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
    await embedded?.close()
    throw err
  }

  // The sessions' one clock: connect and CONNACK deadlines, keep alive (so a silent or dribbling client
  // hears 0x8D rather than "broker lost"), and sockets whose peer never closed its side.
  const clock = setInterval(() => {
    const now = Date.now()
    for (const session of live) session.tick(now)
  }, TICK_MS)
  clock.unref()

  const addresses = config.listeners.map((l, i): ListeningAddress => {
    const a = servers[i]?.address() as net.AddressInfo
    return { listener: l.name, address: a.address, port: a.port }
  })
  for (const a of addresses) log.info(a, 'listening')

  /** Listeners stay as started, except that TLS listeners take a renewed certificate for new handshakes. */
  function reloadListeners(current: GatewayConfig, next: GatewayConfig): void {
    // Everything but the certificate files, which are renewed below; asking for client certificates or
    // not is a server option, fixed at the start.
    const shape = (c: GatewayConfig): string =>
      JSON.stringify(
        c.listeners.map((l) => ('tls' in l ? { ...l, tls: true, clientCa: l.tls.clientCa !== undefined } : l)),
      )
    if (shape(current) !== shape(next))
      log.warn('listener changes other than renewed certificate files take effect at the next start')
    for (const listener of next.listeners) {
      const server = tlsServers.get(listener.name)
      if (server === undefined || !('tls' in listener)) continue
      const err = renewCertificate(server, listener.tls)
      if (err !== undefined)
        log.error(
          { listener: listener.name, err },
          'the new certificate or key cannot be used; the listener keeps the old ones',
        )
    }
  }

  await registry?.subscribed

  return {
    addresses,
    get config() {
      return config
    },
    connections: (tenant) => quotas.connections(tenant),
    counters: (tenant) => quotas.counters(tenant),
    allCounters: () => quotas.allCounters(),
    pruneRetired: () => quotas.pruneRetired(),
    subscriptions: (tenant) => quotas.subscriptions(tenant),
    clients,
    kick,
    registry,

    upstreamReachable: () => probe.check('default', targets.default, probeFields(config, undefined)),
    async namedUpstreamsReachable() {
      return Object.fromEntries(
        await Promise.all(
          [...targets.named].map(
            async ([name, t]) => [name, await probe.check(name, t, probeFields(config, name))] as const,
          ),
        ),
      )
    },

    async reload(next) {
      // Built first: if the new tenants cannot be built, the running configuration stays whole.
      const nextTenants = buildTenants(next)
      reloadListeners(config, next)
      config = next
      tenants = nextTenants
      authenticator.update(next)
      quotas.update(tenants, next.maxConnections)
      targets = upstreamTargets(next, embedded) // connected clients stay on the broker they are on
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

    async close() {
      clearInterval(clock)
      const stopped = Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
      for (const session of [...sessions]) session.close('serverShuttingDown', 'gateway shutting down')
      const deadline = Date.now() + DRAIN_MS
      while (live.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      for (const session of live) session.destroy()
      await stopped
      await embedded?.close()
      log.info('gateway stopped')
    },
  }
}
