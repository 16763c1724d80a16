// TLS listener; the SNI host name the client asked for is handed to tenant resolution.
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import type { ListenerOf } from '../config/schema.js'
import type { Logger } from '../log.js'
import {
  connectionMeta,
  guardServer,
  listenOn,
  type AcceptConnection,
  type AddressRates,
  type StartedListener,
} from './listen.js'

/** Certificate, key and (for listeners) CA files, as the config names them. */
export interface TlsFiles {
  readonly cert: string
  readonly key: string
  readonly ca?: string | undefined
  /** mutual TLS: the CA client certificates must be signed by */
  readonly clientCa?: string | undefined
}

/** The certificate, key and CAs, read from their files (at start, and on reload). */
export function tlsContextOptions(files: TlsFiles): tls.SecureContextOptions {
  const ca = [files.ca, files.clientCa].filter((f): f is string => f !== undefined).map((f) => readFileSync(f))
  return { cert: readFileSync(files.cert), key: readFileSync(files.key), ...(ca.length > 0 ? { ca } : {}) }
}

/**
 * Server options of a listener's TLS: with a client CA, a client without a certificate that CA signed
 * fails the handshake, before any MQTT byte.
 */
export function tlsServerOptions(files: TlsFiles, handshakeTimeout: number): tls.TlsOptions {
  return {
    ...tlsContextOptions(files),
    handshakeTimeout,
    ...(files.clientCa !== undefined ? { requestCert: true, rejectUnauthorized: true } : {}),
  }
}

/** The CN of a verified client certificate ('' without one), or undefined when the listener asks for none. */
export function certificateName(socket: tls.TLSSocket, files: TlsFiles): string | undefined {
  if (files.clientCa === undefined) return undefined
  if (!socket.authorized) return ''
  const cn = socket.getPeerCertificate().subject?.CN as string | string[] | undefined
  return typeof cn === 'string' ? cn : ''
}

/**
 * Hands a running TLS server (MQTT listener or HTTPS admin) its files as they are now, for the next
 * handshakes; a renewed certificate is served without dropping anyone. On files that cannot be used
 * the server keeps the old pair and the reason is returned.
 */
export function renewCertificate(server: tls.Server, files: TlsFiles): string | undefined {
  try {
    server.setSecureContext(tlsContextOptions(files))
    return undefined
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
}

/** The SNI host name a TLS socket's client asked for. */
export function sniHostOf(socket: tls.TLSSocket): string | false | undefined {
  return (socket as tls.TLSSocket & { servername?: string | false }).servername
}

export async function startTlsListener(
  listener: ListenerOf<'tls'>,
  log: Logger,
  accept: AcceptConnection,
  rates?: AddressRates,
): Promise<StartedListener> {
  const files = listener.tls
  // A client that never finishes the handshake is cut like one that never sends CONNECT.
  const server = tls.createServer({ ...tlsServerOptions(files, listener.connectTimeout), noDelay: true }, (socket) => {
    accept(
      socket,
      connectionMeta(listener, guarded.originOf(socket), sniHostOf(socket), certificateName(socket, files)),
    )
  })
  // Handshake failures are the client's problem, never the process's.
  server.on('tlsClientError', () => {})
  const guarded = guardServer(listener, log, server, rates)
  return { listening: await listenOn(guarded.listening, listener), tls: server }
}
