// The limits and counters a session lives under once admitted (SPEC §7). The session calls these few
// hooks and acts on what they return; the policy never touches sockets, so the limiter can change (a
// Redis budget shared by a cluster) without touching the packet path, and policy/ needs nothing from
// session/.
import type { ReasonName } from '../reason-codes.js'
import type { DropReason } from './counters.js'

/** One session's traffic, as the admin API lists it per client. */
export interface SessionStats {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

/**
 * What the rates say about one packet from the client: GO (forward it), a positive number of ms
 * (forward it, then read nothing more from this client for that long: the debt it ran up), or
 * DISCONNECT (do not forward it; `rateAction: disconnect` ends the session with 0x96).
 */
export type Verdict = number
export const GO = 0
export const DISCONNECT = -1

export interface SessionPolicy {
  readonly stats: SessionStats
  /** the mounted filters the client holds (a resumed persistent session's included) */
  readonly filters: ReadonlySet<string> | undefined
  /** true when a rate applies: the session asks `charge` before forwarding each packet */
  readonly paced: boolean
  /** charges one packet of `bytes` (a PUBLISH, or any other: bandwidth only) before it is forwarded */
  charge(publish: boolean, bytes: number, now: number): Verdict
  /** one PUBLISH forwarded (hot path: counter increments) */
  countPublish(): void
  /** bytes read from the client */
  countIn(bytes: number): void
  /** one PUBLISH of `bytes` delivered to the client (hot path) */
  countDelivery(bytes: number): void
  /** a packet refused or a limit hit, for the tenant's counters */
  countRefusal(reason: ReasonName): void
  countIsolationFault(): void
  /** PUBLISH packets received from the client and never forwarded */
  countDropped(reason: DropReason, n: number): void
  /**
   * At CONNACK: the tenant-local client ID, and whether the broker resumed its session — then the
   * filters that session holds at the broker are this client's again, and keep counting.
   */
  resume(clientId: string, sessionPresent: boolean): void
  /** how many NEW filters (not yet subscribed by this client) may be added now, as this gateway knows */
  subscriptionRoom(filters: readonly string[]): number
  isSubscribed(filter: string): boolean
  /**
   * In a cluster, the tenant's subscriptions are counted across gateways: how many of `n` new filters
   * the cluster grants (a round trip to Redis). Undefined outside a cluster, where subscriptionRoom says it all.
   */
  reserveSubscriptions(n: number): Promise<number> | undefined
  /**
   * mounted filters the broker granted, `reserved` of them taken by reserveSubscriptions (what the
   * broker refused, or the client held already, is given back)
   */
  subscribed(filters: readonly string[], reserved: number): void
  /** mounted filters the client removed */
  unsubscribed(filters: readonly string[]): void
}
