// TLS listener; the SNI host name the client asked for is handed to tenant resolution.
import type net from 'node:net'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import type { ListenerConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import { connectionMeta, guardServer, listenOn, type AcceptConnection } from './listen.js'

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

/** A listener over TLS: the server bound to the port, and the TLS server holding the certificate (renewed on reload). */
export interface TlsListener { readonly listening: net.Server; readonly tls: tls.Server }

/** The SNI host name a TLS socket's client asked for. */
export function sniHostOf (socket: tls.TLSSocket): string | false | undefined {
  return (socket as tls.TLSSocket & { servername?: string | false }).servername
}

export async function startTlsListener (listener: ListenerConfig, log: Logger, accept: AcceptConnection): Promise<TlsListener> {
  const files = listener.tls
  if (files === undefined) throw new Error(`listener ${listener.name}: tls needs cert and key`)
  const server = tls.createServer({
    ...tlsContextOptions(files),
    noDelay: true,
    // A client that never finishes the handshake is cut like one that never sends CONNECT.
    handshakeTimeout: listener.connectTimeout,
  }, (socket) => { accept(socket, connectionMeta(listener, guarded.originOf(socket), sniHostOf(socket))) })
  // Handshake failures are the client's problem, never the process's.
  server.on('tlsClientError', () => {})
  const guarded = guardServer(listener, log, server)
  return { listening: await listenOn(guarded.listening, listener), tls: server }
}
