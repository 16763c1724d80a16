// Plain TCP listener.
import net from 'node:net'
import type { ListenerConfig } from '../config/schema.js'
import { listenOn, type AcceptConnection } from './listen.js'

export function startTcpListener (listener: ListenerConfig, accept: AcceptConnection): Promise<net.Server> {
  // TCP keep-alive is switched on later, only for clients without an MQTT keep alive (see connect.ts).
  const server = net.createServer({ noDelay: true }, (socket) => {
    accept(socket, { listener, remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 })
  })
  return listenOn(server, listener)
}
