// The limits and counters a session lives under once admitted (SPEC §7). The session calls these few
// hooks; what they count and when they throttle is the policy's business, so the limiter can change
// (e.g. a Redis limiter shared by a cluster) without touching the packet path.
import type { ReasonName } from '../reason-codes.js'
import type { Session } from '../session/session.js'

/** One session's traffic, as the admin API lists it per client. */
export interface SessionStats {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

export interface SessionPolicy {
  readonly stats: SessionStats
  /** the mounted filters the client holds */
  readonly filters: ReadonlySet<string> | undefined
  /** one PUBLISH accepted from the client (hot path: a counter increment); may pause reads at a rate */
  countPublish (session: Session): void
  /** one PUBLISH of `bytes` delivered to the client (hot path) */
  countDelivery (bytes: number): void
  /** a packet refused or a limit hit, for the tenant's counters */
  countRefusal (reason: ReasonName): void
  countIsolationFault (): void
  /** after each run of reads from the client (bytes: 0 for held frames): counters, rates, bandwidth; may pause reads or disconnect */
  afterClientChunk (session: Session, bytes: number): void
  /** how many NEW filters (not yet subscribed by this client) may be added now */
  subscriptionRoom (session: Session, filters: readonly string[]): number
  isSubscribed (filter: string): boolean
  /** mounted filters the broker granted / the client removed */
  subscribed (filters: readonly string[]): void
  unsubscribed (filters: readonly string[]): void
}
