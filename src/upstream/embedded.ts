// The embedded broker (aedes), bound to loopback only, so a fresh checkout runs with no broker installed.
// aedes speaks MQTT 3.1/3.1.1 only; the session refuses v5 clients with 0x84 while this is the upstream.
import net from 'node:net'
import { once } from 'node:events'
import { Aedes } from 'aedes'

export interface EmbeddedBroker {
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

export async function startEmbeddedBroker(): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker()
  const server = net.createServer((socket) => broker.handle(socket))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  return {
    host: '127.0.0.1',
    port,
    async close() {
      // The broker first: it ends its clients, so the server's close does not wait on them.
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
