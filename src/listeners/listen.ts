// What every transport shares: the shape it hands connections to, the TCP-level front door (PROXY
// header, per-IP connection rate) and binding with a clear error.
import net from 'node:net'
import tls from 'node:tls'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import type { ListenerConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import type { ClientStream, ConnectionMeta } from '../session/session.js'
import { readProxyHeader } from './proxy-protocol.js'

export type AcceptConnection = (client: ClientStream, meta: ConnectionMeta) => void

/**
 * A started listener, whatever its transport: the server bound to the port, and for tls and wss the
 * TLS server holding the certificate (renewed on reload).
 */
export interface StartedListener {
  readonly listening: net.Server
  readonly tls?: tls.Server
}

/**
 * A connection that passed the front door: the client's address and port, and the balancer's address when a PROXY
 * header named the client.
 */
export type Admitted = (socket: net.Socket, address: string, port: number, via: string | undefined) => void

/**
 * The TCP-level steps of every listener, before TLS or MQTT: the PROXY header when the listener expects
 * one, then the per-IP connection rate on the client's own address. A connection flood from one address
 * is cut here: a refused socket has cost the gateway next to nothing (the memory limiter answers within
 * the same tick, before the client can have sent much). After a PROXY header the socket is paused, its
 * following bytes put back; the reader resumes it.
 */
/**
 * A listener's ipConnectRate counted elsewhere (a cluster's Redis: one count per address across
 * gateways); answers true to let the connection in.
 */
export type AddressRates = (perSecond: number, listener: string) => (address: string) => Promise<boolean>

export function frontDoor(
  listener: ListenerConfig,
  log: Logger,
  next: Admitted,
  rates?: AddressRates,
): (socket: net.Socket) => void {
  const limit =
    listener.ipConnectRate === undefined ? undefined : perIpLimit(listener.ipConnectRate, listener.name, rates)
  if (!listener.proxyProtocol) {
    return (socket) => {
      const address = socket.remoteAddress ?? ''
      limit?.(socket, address)
      next(socket, address, socket.remotePort ?? 0, undefined)
    }
  }
  return (socket) => {
    const balancer = socket.remoteAddress ?? ''
    readProxyHeader(
      socket,
      listener.connectTimeout,
      (source) => {
        // LOCAL, UNKNOWN and the like: the balancer's own connection (a health check), taken as it is.
        const address = source?.address ?? balancer
        limit?.(socket, address)
        next(socket, address, source?.port ?? socket.remotePort ?? 0, source === undefined ? undefined : balancer)
      },
      (reason) => {
        log.info(
          { listener: listener.name, remote: `${balancer}:${socket.remotePort ?? 0}`, reason },
          'connection without a valid PROXY header closed',
        )
      },
    )
  }
}

/** Where a client connects from, as the front door found it. */
export interface Origin {
  readonly address: string
  readonly port: number
  readonly via?: string | undefined
}

/** A server that reads its sockets itself (TLS, HTTP), behind the front door. */
export interface GuardedServer {
  /** the server to bind: `server` itself, or the plain TCP server that reads PROXY headers for it */
  readonly listening: net.Server
  /** the client's origin for a socket `server` hands over (a TLS socket has its TCP socket's peer address and port) */
  originOf(socket: net.Socket): Origin
}

/**
 * Puts the front door before a server that reads the socket itself. Without PROXY the server listens and
 * the per-IP rate runs on its connections; with PROXY a plain TCP server reads the header first and then
 * hands the socket over, which also reads the bytes that came with the header.
 */
export function guardServer(
  listener: ListenerConfig,
  log: Logger,
  server: net.Server,
  rates?: AddressRates,
): GuardedServer {
  const ownOrigin = (socket: net.Socket): Origin => ({
    address: socket.remoteAddress ?? '',
    port: socket.remotePort ?? 0,
  })
  if (!listener.proxyProtocol) {
    // Only the per-IP rate is left to do at the TCP level, when there is one.
    if (listener.ipConnectRate !== undefined)
      server.on(
        'connection',
        frontDoor(listener, log, () => {}, rates),
      )
    return { listening: server, originOf: ownOrigin }
  }
  /** the client behind each socket handed over and not yet claimed, by the balancer side's address and port */
  const proxied = new Map<string, Origin>()
  const keyOf = (socket: net.Socket): string => `${socket.remoteAddress ?? ''} ${socket.remotePort ?? 0}`
  const listening = net.createServer(
    { noDelay: true },
    frontDoor(
      listener,
      log,
      (socket, address, port, via) => {
        const key = keyOf(socket)
        proxied.set(key, { address, port, via })
        socket.once('close', () => proxied.delete(key))
        server.emit('connection', socket)
        // TLS takes the paused socket over, the bytes that came with the header included. A plain HTTP server
        // reads the socket's handle directly and gets those bytes as 'data' only once the socket is resumed.
        if (!(server instanceof tls.Server)) socket.resume()
      },
      rates,
    ),
  )
  return {
    listening,
    originOf(socket) {
      const key = keyOf(socket)
      const origin = proxied.get(key)
      if (origin === undefined) return ownOrigin(socket)
      proxied.delete(key)
      return origin
    },
  }
}

/** The session's view of a connection: its listener, its origin, the SNI host name and the client certificate's CN. */
export function connectionMeta(
  listener: ListenerConfig,
  origin: Origin,
  sniHost: string | false | undefined,
  certificateName?: string,
): ConnectionMeta {
  return {
    listener,
    remoteAddress: origin.address,
    remotePort: origin.port,
    ...(origin.via !== undefined ? { via: origin.via } : {}),
    ...(typeof sniHost === 'string' && sniHost !== '' ? { sniHost } : {}),
    ...(certificateName !== undefined ? { certificateName } : {}),
  }
}

function perIpLimit(
  perSecond: number,
  name: string,
  rates: AddressRates | undefined,
): (socket: net.Socket, address: string) => void {
  if (rates !== undefined) {
    const allowed = rates(perSecond, name)
    return (socket, address) => {
      void allowed(address).then((ok) => {
        if (!ok) socket.destroy()
      })
    }
  }
  const limiter = new RateLimiterMemory({ points: perSecond, duration: 1 })
  return (socket, address) => {
    limiter.consume(address).catch(() => socket.destroy())
  }
}

export class ListenFailure extends Error {
  constructor(
    readonly listener: string,
    readonly host: string,
    readonly port: number,
    readonly code: string | undefined,
  ) {
    super(
      code === 'EADDRINUSE'
        ? `listener ${listener}: port ${port} on ${host} is already in use`
        : `listener ${listener}: cannot listen on ${host}:${port} (${code ?? 'error'})`,
    )
  }
}

/**
 * Binds `server`. `0.0.0.0` and `::` both mean every interface, IPv4 and IPv6 (SPEC §8): the server
 * binds `::` dual-stack, and falls back to IPv4 only where the host has no IPv6.
 */
export async function listenOn<S extends net.Server>(server: S, listener: ListenerConfig): Promise<S> {
  const { host, port } = listener.bind
  const anyHost = host === '0.0.0.0' || host === '::'
  try {
    await bind(server, anyHost ? '::' : host, port, listener.reusePort)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (anyHost && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
      try {
        await bind(server, '0.0.0.0', port, listener.reusePort)
        return server
      } catch (err2) {
        throw new ListenFailure(listener.name, host, port, (err2 as NodeJS.ErrnoException).code)
      }
    }
    throw new ListenFailure(listener.name, host, port, code)
  }
  return server
}

function bind(server: net.Server, host: string, port: number, reusePort: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening)
      reject(err)
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    // reusePort (SO_REUSEPORT, Node ≥ 22.12; the loader refuses it on older Node): several processes share the port
    server.listen({ host, port, ipv6Only: false, ...(reusePort ? { reusePort } : {}) })
  })
}
