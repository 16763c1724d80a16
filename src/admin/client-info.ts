// The admin read model of a connected client: what the API and the web UI show of a session, in the
// tenant's own names. A summary is cheap whatever the client holds (its subscriptions are counted, not
// listed): a tenant with thousands of long filters must not make a client list megabytes long
// (issue #17 item 5). The filters themselves are read one client at a time, on demand.
import type { Session } from '../session/session.js'
import { unmountFilter } from '../tenancy/namespace.js'

/** A connected client as the admin API shows it (tenant-local names only). */
export interface ClientInfo {
  clientId: string
  username: string | null
  remoteAddress: string
  remotePort: number
  listener: string
  protocol: 'MQTT 3.1' | 'MQTT 3.1.1' | 'MQTT 5'
  /** connecting: admitted, waiting for the broker's CONNACK */
  state: 'connecting' | 'connected'
  connectedAt: string
  /** how many filters the client holds */
  subscriptions: number
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  /**
   * the client's filters, unmounted, in code-point order (read on demand: they can be many and long);
   * absent when the record has travelled as JSON (from another gateway of a cluster)
   */
  filters?: () => string[]
}

const PROTOCOL_NAMES = { 3: 'MQTT 3.1', 4: 'MQTT 3.1.1', 5: 'MQTT 5' } as const

export function describe(session: Session): ClientInfo | undefined {
  const tenant = session.tenant
  const policy = session.policy
  const state = session.state
  if (tenant === undefined || policy === undefined) return undefined
  // A draining session (its client sent FIN; what it sent is still being forwarded) is still listed.
  if (state === 'closed' || state === 'awaitConnect') return undefined
  return {
    clientId: session.clientId,
    username: session.user ?? null,
    remoteAddress: session.meta.remoteAddress,
    remotePort: session.meta.remotePort,
    listener: session.meta.listener.name,
    protocol: PROTOCOL_NAMES[session.version],
    state: state === 'connecting' ? 'connecting' : 'connected',
    connectedAt: new Date(session.connectedAt).toISOString(),
    subscriptions: policy.filters?.size ?? 0,
    ...policy.stats,
    filters() {
      const local: string[] = []
      for (const f of policy.filters ?? []) {
        const name = unmountFilter(tenant.ns, f)
        if (name !== undefined) local.push(name)
      }
      return local.sort(byCodePoint)
    },
  }
}

/** Plain code-unit order: stable across locales, so a page cursor means the same on every request. */
export const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
