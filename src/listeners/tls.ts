// TLS listener; the SNI host name the client asked for is handed to tenant resolution.
import net from 'node:net'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import type { ListenerConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import { frontDoor, listenOn, type AcceptConnection } from './listen.js'

/** Certificate, key and (for listeners) CA files, as the config names them. */
export interface TlsFiles { readonly cert: string; readonly key: string; readonly ca?: string | undefined }

/** The certificate, key and CA, read from their files (at start, and on reload). */
export function tlsContextOptions (files: TlsFiles): tls.SecureContextOptions {
  return {
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    ...(files.ca !== undefined ? { ca: readFileSync(files.ca) } : {}),
  }
}

/**
 * Hands a running TLS server (MQTT listener or HTTPS admin) its files as they are now, for the next
 * handshakes; a renewed certificate is served without dropping anyone. On files that cannot be used
 * the server keeps the old pair and the reason is returned.
 */
export function renewCertificate (server: tls.Server, files: TlsFiles): string | undefined {
  try {
    server.setSecureContext(tlsContextOptions(files))
    return undefined
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
}

/** A TLS listener: the server that listens, and the TLS server that holds the certificate (the same one without PROXY). */
export interface TlsListener { readonly listening: net.Server; readonly tls: tls.Server }

export async function startTlsListener (listener: ListenerConfig, log: Logger, accept: AcceptConnection): Promise<TlsListener> {
  const files = listener.tls
  if (files === undefined) throw new Error(`listener ${listener.name}: tls needs cert and key`)
  /** PROXY only: the client behind each handshake under way, by the balancer side's address and port */
  const proxied = new Map<string, { address: string; port: number; via: string | undefined }>()
  const server = tls.createServer({
    ...tlsContextOptions(files),
    noDelay: true,
    // A client that never finishes the handshake is cut like one that never sends CONNECT.
    handshakeTimeout: listener.connectTimeout,
  }, (socket) => {
    const servername = (socket as tls.TLSSocket & { servername?: string | false }).servername
    const sniHost = typeof servername === 'string' && servername !== '' ? { sniHost: servername } : {}
    const key = `${socket.remoteAddress ?? ''} ${socket.remotePort ?? 0}`
    const origin = proxied.get(key)
    if (origin === undefined) return accept(socket, { listener, remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, ...sniHost })
    proxied.delete(key)
    accept(socket, { listener, remoteAddress: origin.address, remotePort: origin.port, ...(origin.via !== undefined ? { via: origin.via } : {}), ...sniHost })
  })
  // Handshake failures are the client's problem, never the process's.
  server.on('tlsClientError', () => {})
  if (!listener.proxyProtocol) {
    server.on('connection', frontDoor(listener, log, () => {})) // the per-IP rate, before the handshake
    return { listening: await listenOn(server, listener), tls: server }
  }
  // The PROXY header comes before the TLS handshake: a plain TCP server reads it, then hands the socket
  // to the TLS server, which also reads the ClientHello bytes that came with the header.
  const front = net.createServer({ noDelay: true }, frontDoor(listener, log, (socket, address, port, via) => {
    const key = `${socket.remoteAddress ?? ''} ${socket.remotePort ?? 0}`
    proxied.set(key, { address, port, via })
    socket.once('close', () => proxied.delete(key))
    server.emit('connection', socket)
  }))
  return { listening: await listenOn(front, listener), tls: server }
}
