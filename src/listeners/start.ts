// Every transport behind one table: a listener's type picks its start function, and each gives back the
// same shape, so the gateway starts, binds and reloads listeners without a branch per type.
import type { ListenerConfig, ListenerOf, ListenerType } from '../config/schema.js'
import type { Logger } from '../log.js'
import type { AcceptConnection, AddressRates, StartedListener } from './listen.js'
import { startTcpListener } from './tcp.js'
import { startTlsListener } from './tls.js'
import { startWebSocketListener } from './websocket.js'

type Start<L extends ListenerConfig> = (
  listener: L,
  log: Logger,
  accept: AcceptConnection,
  rates?: AddressRates,
) => Promise<StartedListener>

const START: { readonly [T in ListenerType]: Start<ListenerOf<T>> } = {
  tcp: startTcpListener,
  tls: startTlsListener,
  ws: startWebSocketListener,
  wss: startWebSocketListener,
}

/**
 * Binds the listener and hands each connection it takes to `accept`; `rates` counts ipConnectRate
 * cluster-wide when the gateway is in a cluster.
 */
export function startListener(
  listener: ListenerConfig,
  log: Logger,
  accept: AcceptConnection,
  rates?: AddressRates,
): Promise<StartedListener> {
  // TypeScript cannot correlate `listener.type` with the entry it picks; the mapped type above checks each entry.
  const start = START[listener.type] as Start<ListenerConfig>
  return start(listener, log, accept, rates)
}
