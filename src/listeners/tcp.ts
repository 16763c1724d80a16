// Plain TCP listener.
import net from 'node:net'
import type { ListenerConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import { frontDoor, listenOn, type AcceptConnection, type AddressRates } from './listen.js'

export function startTcpListener (listener: ListenerConfig, log: Logger, accept: AcceptConnection, rates?: AddressRates): Promise<net.Server> {
  // TCP keep-alive is switched on later, only for clients without an MQTT keep alive (see session.ts).
  const server = net.createServer({ noDelay: true }, frontDoor(listener, log, (socket, remoteAddress, remotePort, via) => {
    accept(socket, via === undefined ? { listener, remoteAddress, remotePort } : { listener, remoteAddress, remotePort, via })
    if (listener.proxyProtocol) socket.resume() // paused by the PROXY header's reader
  }, rates))
  return listenOn(server, listener)
}
