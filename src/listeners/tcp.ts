// Plain TCP listener.
import net from 'node:net'
import type { ListenerOf } from '../config/schema.js'
import type { Logger } from '../log.js'
import { frontDoor, listenOn, type AcceptConnection, type AddressRates, type StartedListener } from './listen.js'

export async function startTcpListener(
  listener: ListenerOf<'tcp'>,
  log: Logger,
  accept: AcceptConnection,
  rates?: AddressRates,
): Promise<StartedListener> {
  // TCP keep-alive is switched on later, only for clients without an MQTT keep alive (see session.ts).
  const server = net.createServer(
    { noDelay: true },
    frontDoor(
      listener,
      log,
      (socket, remoteAddress, remotePort, via) => {
        accept(
          socket,
          via === undefined ? { listener, remoteAddress, remotePort } : { listener, remoteAddress, remotePort, via },
        )
        if (listener.proxyProtocol) socket.resume() // paused by the PROXY header's reader
      },
      rates,
    ),
  )
  return { listening: await listenOn(server, listener) }
}
