// A tenant's live state for its limits: counters, token buckets, and the subscriptions its clients
// and its persistent sessions hold at the broker. Shared by the tenant's sessions, kept across reloads.
import type { Limits } from '../config/schema.js'
import { newCounters, type TenantCounters } from './counters.js'
import { memoryRateLimiter, TokenBucket, type RateLimiter } from './rate.js'

/** A connected session, as its client ID's entry: a newer one with the same ID takes its filters over. */
export interface LiveSession {
  filters: Set<string> | undefined
}

/** A persistent session that ended: its filters stay at the broker, and counted, until it expires. */
export interface ParkedSession {
  readonly filters: Set<string>
  readonly expiresAt: number
}

/** A tenant's live state: shared by its sessions, kept across reloads (buckets rebuilt as needed). */
export interface TenantState {
  readonly counters: TenantCounters
  /** filters held at the broker: live sessions' and parked persistent sessions' (change it with dropSubscriptions) */
  subscriptions: number
  /** in a cluster: gives filters that stopped counting back to the tenant's cluster-wide count */
  giveBackSubscriptions: ((n: number) => void) | undefined
  limits: Limits
  publish: TokenBucket | undefined
  bandwidth: TokenBucket | undefined
  connect: RateLimiter | undefined
  /** some rate applies: sessions charge every packet */
  paced: boolean
  /** the live session of each client ID (the newest, when one took over another) */
  readonly live: Map<string, LiveSession>
  readonly parked: Map<string, ParkedSession>
  /** the earliest expiry among `parked` (Infinity when none can expire) */
  nextExpiry: number
  /** no longer configured (removed or deleted): forgotten by pruneRetired once its counters are read */
  retired: boolean
}

/** Message rates may be fractional (0.5/s): the bucket still holds one message. */
export function bucket(rate: number | undefined, minBurst: number): TokenBucket | undefined {
  return rate === undefined ? undefined : new TokenBucket(rate, Math.max(rate, minBurst))
}

export function applyLimits(state: TenantState, limits: Limits): void {
  const old = state.limits
  if (old.publishRate !== limits.publishRate || state.publish === undefined)
    state.publish = bucket(limits.publishRate, 1)
  if (old.bandwidth !== limits.bandwidth || state.bandwidth === undefined) state.bandwidth = bucket(limits.bandwidth, 1)
  if (old.connectRate !== limits.connectRate || state.connect === undefined) {
    state.connect = limits.connectRate === undefined ? undefined : memoryRateLimiter(limits.connectRate)
  }
  state.paced =
    limits.publishRate !== undefined || limits.clientPublishRate !== undefined || limits.bandwidth !== undefined
  state.limits = limits
}

/** Filters the broker no longer holds stop counting, here and, in a cluster, cluster-wide. */
export function dropSubscriptions(s: TenantState, n: number): void {
  if (n <= 0) return
  s.subscriptions -= n
  s.giveBackSubscriptions?.(n)
}

/** Parked sessions past their expiry are gone at the broker: their filters stop counting. */
export function pruneExpired(s: TenantState, now: number): void {
  if (now < s.nextExpiry) return
  s.nextExpiry = Infinity
  for (const [id, p] of s.parked) {
    if (p.expiresAt <= now) {
      s.parked.delete(id)
      dropSubscriptions(s, p.filters.size)
    } else if (p.expiresAt < s.nextExpiry) {
      s.nextExpiry = p.expiresAt
    }
  }
}

export function newTenantState(limits: Limits): TenantState {
  const s: TenantState = {
    counters: newCounters(),
    subscriptions: 0,
    giveBackSubscriptions: undefined,
    limits: {},
    publish: undefined,
    bandwidth: undefined,
    connect: undefined,
    paced: false,
    live: new Map(),
    parked: new Map(),
    nextExpiry: Infinity,
    retired: false,
  }
  applyLimits(s, limits)
  return s
}
