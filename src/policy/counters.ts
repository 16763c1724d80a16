// Per-tenant counters, kept in one place: the admin API, the Prometheus endpoint and usage metering all
// read them (they are only ever incremented on the packet path, never copied there).
import type { ReasonName } from '../reason-codes.js'
import type { Limits } from '../config/schema.js'

/**
 * Why PUBLISH packets a client sent were dropped unforwarded: a throttled client that left and whose
 * linger ran out, or a session that ended (broker lost, kicked, taken over) with packets still held.
 */
export type DropReason = 'lingerExpired' | 'sessionEnded'

/** A limit by its config key, plus the gateway-wide connection cap. */
export type LimitName = keyof Limits | 'gatewayMaxConnections'

export interface TenantCounters {
  connections: number
  connects: number
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  aclDenials: number
  /** refusals and limit hits by reason (quotaExceeded, messageRateTooHigh, …) */
  refusals: Partial<Record<ReasonName, number>>
  /** the same events counted by the limit that caused them */
  limitHits: Partial<Record<LimitName, number>>
  isolationFaults: number
  /** PUBLISH received from clients and never forwarded, by why (never silently: SPEC §8) */
  dropped: Partial<Record<DropReason, number>>
  /** connected time of all the tenant's sessions, integrated up to `changedAt` (ms) */
  connectedMs: number
  changedAt: number
  /** most concurrent connections since the meter last reset it */
  peakConnections: number
}

export function newCounters(now = Date.now()): TenantCounters {
  return {
    connections: 0,
    connects: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    aclDenials: 0,
    refusals: {},
    limitHits: {},
    isolationFaults: 0,
    dropped: {},
    connectedMs: 0,
    changedAt: now,
    peakConnections: 0,
  }
}

export function countRefusal(c: TenantCounters, reason: ReasonName, limit?: LimitName): void {
  c.refusals[reason] = (c.refusals[reason] ?? 0) + 1
  if (limit !== undefined) c.limitHits[limit] = (c.limitHits[limit] ?? 0) + 1
}

/** One connection more (+1) or less (−1); session time is integrated at each change, so it is exact. */
export function connectionsChanged(c: TenantCounters, delta: 1 | -1, now = Date.now()): void {
  c.connectedMs = connectedMsAt(c, now)
  c.changedAt = now
  c.connections += delta
  if (c.connections > c.peakConnections) c.peakConnections = c.connections
}

/** Connected time of the tenant's sessions up to `now`, without changing the counters. */
export function connectedMsAt(c: TenantCounters, now: number): number {
  return c.connectedMs + c.connections * Math.max(0, now - c.changedAt)
}

export function totalLimitHits(c: TenantCounters): number {
  let n = 0
  for (const v of Object.values(c.limitHits)) n += v
  return n
}
