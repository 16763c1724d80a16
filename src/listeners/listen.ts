// The one shape every transport hands connections to, and binding with a clear error.
import type net from 'node:net'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import type { ListenerConfig } from '../config/schema.js'
import type { ConnectionMeta } from '../session/session.js'

export type AcceptConnection = (socket: net.Socket, meta: ConnectionMeta) => void

export class ListenFailure extends Error {
  constructor (readonly listener: string, readonly host: string, readonly port: number, readonly code: string | undefined) {
    super(code === 'EADDRINUSE'
      ? `listener ${listener}: port ${port} on ${host} is already in use`
      : `listener ${listener}: cannot listen on ${host}:${port} (${code ?? 'error'})`)
  }
}

/**
 * Binds `server`. `0.0.0.0` and `::` both mean every interface, IPv4 and IPv6 (SPEC §8): the server
 * binds `::` dual-stack, and falls back to IPv4 only where the host has no IPv6.
 */
export async function listenOn<S extends net.Server> (server: S, listener: ListenerConfig): Promise<S> {
  if (listener.ipConnectRate !== undefined) limitConnectionsPerIp(server, listener.ipConnectRate)
  const { host, port } = listener.bind
  const anyHost = host === '0.0.0.0' || host === '::'
  try {
    await bind(server, anyHost ? '::' : host, port)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (anyHost && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
      try {
        await bind(server, '0.0.0.0', port)
        return server
      } catch (err2) {
        throw new ListenFailure(listener.name, host, port, (err2 as NodeJS.ErrnoException).code)
      }
    }
    throw new ListenFailure(listener.name, host, port, code)
  }
  return server
}

function bind (server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => { server.off('listening', onListening); reject(err) }
    const onListening = (): void => { server.off('error', onError); resolve() }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen({ host, port, ipv6Only: false })
  })
}

/**
 * A connection flood from one address is cut at the TCP level: `connection` fires before the TLS
 * handshake and before any byte is read, so a refused socket costs the gateway next to nothing. The
 * memory limiter answers within the same tick, before the client can have sent much.
 */
function limitConnectionsPerIp (server: net.Server, perSecond: number): void {
  const limiter = new RateLimiterMemory({ points: perSecond, duration: 1 })
  server.on('connection', (socket: net.Socket) => {
    limiter.consume(socket.remoteAddress ?? '').catch(() => socket.destroy())
  })
}
