// Per-tenant counters, kept in one place so a metrics endpoint can read them later (SPEC §10).
import type { ReasonName } from '../reason-codes.js'

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
  isolationFaults: number
}

export function newCounters (): TenantCounters {
  return { connections: 0, connects: 0, messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, aclDenials: 0, refusals: {}, isolationFaults: 0 }
}

export function countRefusal (c: TenantCounters, reason: ReasonName): void {
  c.refusals[reason] = (c.refusals[reason] ?? 0) + 1
}
