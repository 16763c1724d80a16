// MQTT over WebSocket [MQTT-6] (ws and wss listeners), for browsers and networks that only pass HTTP:
// an HTTP server upgrades on the listener's path with the "mqtt" subprotocol, and each WebSocket is
// handed to a session as a byte stream (ws's createWebSocketStream), so sessions read MQTT over it as
// over TCP, back-pressure included.
import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import type tls from 'node:tls'
import proxyaddr from '@fastify/proxy-addr'
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws'
import type { ListenerOf } from '../config/schema.js'
import type { Logger } from '../log.js'
import type { ClientStream } from '../session/session.js'
import {
  connectionMeta,
  guardServer,
  listenOn,
  type AcceptConnection,
  type AddressRates,
  type Origin,
  type StartedListener,
} from './listen.js'
import { certificateName, sniHostOf, tlsServerOptions } from './tls.js'

/**
 * The subprotocol answered [MQTT-6.0.0-4]: "mqtt", or "mqttv3.1" for MQTT 3.1 clients; none offered is none answered.
 */
function pickSubprotocol(offered: Set<string>): string | false {
  if (offered.has('mqtt')) return 'mqtt'
  if (offered.has('mqttv3.1')) return 'mqttv3.1'
  return false
}

export async function startWebSocketListener(
  listener: ListenerOf<'ws' | 'wss'>,
  log: Logger,
  accept: AcceptConnection,
  rates?: AddressRates,
): Promise<StartedListener> {
  const timeouts = {
    // The upgrade request must come as quickly as a CONNECT would (Node checks these once a second here).
    headersTimeout: listener.connectTimeout,
    requestTimeout: listener.connectTimeout,
    connectionsCheckingInterval: 1000,
    noDelay: true,
  }
  let server: http.Server
  if (listener.type === 'wss') {
    server = https.createServer({ ...tlsServerOptions(listener.tls, listener.connectTimeout), ...timeouts })
    server.on('tlsClientError', () => {}) // a failed handshake is the client's problem
  } else {
    server = http.createServer(timeouts)
  }
  server.on('clientError', (_err, socket: net.Socket) => {
    socket.destroy()
  })
  // Anything but an upgrade: 426 on the path, 404 elsewhere, and the connection closed.
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const onPath = pathOf(req.url) === listener.path
    res.writeHead(onPath ? 426 : 404, { connection: 'close', ...(onPath ? { upgrade: 'websocket' } : {}) }).end()
  })

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: listener.maxMessageSize,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: pickSubprotocol,
  })
  const guarded = guardServer(listener, log, server, rates)
  const trusted = listener.trustedProxies === undefined ? undefined : proxyaddr.compile(listener.trustedProxies)
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    if (pathOf(req.url) !== listener.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // wss: the socket is the TLS socket, with the SNI host and the client certificate.
      const files = listener.type === 'wss' ? listener.tls : undefined
      const secure = socket as tls.TLSSocket
      const origin = guarded.originOf(socket)
      accept(
        clientStream(ws, socket),
        connectionMeta(
          listener,
          trusted === undefined ? origin : forwardedOrigin(req, origin, trusted),
          files === undefined ? undefined : sniHostOf(secure),
          files === undefined ? undefined : certificateName(secure, files),
        ),
      )
    })
  })
  return {
    listening: await listenOn(guarded.listening, listener),
    ...(listener.type === 'wss' ? { tls: server as https.Server } : {}),
  }
}

/**
 * A WebSocket as the session's byte stream. MQTT travels in binary frames only: a text frame closes the
 * connection [MQTT-6.0.0-1] before its bytes reach the session (this listener runs before the stream's).
 * TCP keep-alive, for clients without an MQTT keep alive, is the underlying socket's.
 */
function clientStream(ws: WebSocket, socket: net.Socket): ClientStream {
  ws.on('message', (_data, isBinary) => {
    if (!isBinary) stream.destroy()
  })
  const stream: ClientStream = Object.assign(createWebSocketStream(ws), {
    setKeepAlive: (enable: boolean, initialDelay: number) => socket.setKeepAlive(enable, initialDelay),
  })
  // The stream only ends its readable side when the WebSocket closes; the session learns that a client
  // left from 'close', as with a TCP socket, so it can cut the upstream and let the broker send the will.
  ws.once('close', () => stream.destroy())
  return stream
}

/**
 * The client behind trusted HTTP proxies: walking X-Forwarded-For from the peer (the socket's address,
 * or the one a PROXY header gave) towards the client, the first address that is not a trusted proxy.
 * A client's own X-Forwarded-For entries lie beyond that and are never believed. Its port is not known.
 */
function forwardedOrigin(
  req: http.IncomingMessage,
  origin: Origin,
  trusted: (address: string, hop: number) => boolean,
): Origin {
  const hops = proxyaddr.all(req).slice(1) // nearest first; [0] is the socket's address, already in `origin`
  let address = origin.address
  for (let i = 0; i < hops.length && trusted(address, i); i++) address = hops[i] as string
  return address === origin.address ? origin : { address, port: 0, via: origin.address }
}

function pathOf(url: string | undefined): string {
  const q = url?.indexOf('?') ?? -1
  return q === -1 ? (url ?? '') : (url ?? '').slice(0, q)
}
