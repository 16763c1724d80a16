// The arithmetic of a shared budget taken in batches (budget.ts), pure so its bounds can be tested.
//
// Each gateway takes tokens from the tenant's bucket in Redis a batch at a time and spends them locally,
// so a PUBLISH never waits for Redis. Tokens it took and has not spent yet were charged already: they can
// only make the others pause early (at most one batch per gateway, until it spends them); and a batch
// that takes the bucket into debt is waited for whole, so a gateway may also pause up to a batch early. It asks for the
// next batch when its pool falls under half a batch; if the pool runs dry before the answer, it goes on
// "on credit" for at most one more batch, which the next take charges. So at any moment the tokens spent
// cluster-wide but not yet charged are at most the sum of the gateways' batches: a burst can pass the
// bucket's rate + burst by at most gateways × maxBatch = about burst / 2 (overshootBound), and over time
// the rate is exact, because credit is charged and its debt paced like any excess.

export interface BatchInputs {
  /** the tenant's rate (tokens per second) and burst (tokens) */
  rate: number
  burst: number
  /** gateways alive: each may hold a batch */
  gateways: number
  /** this gateway's recent spending for the tenant, tokens per second */
  recentRate: number
  /** how much of the recent rate one batch should cover (default 100 ms: about ten takes a second) */
  horizonMs?: number
}

/** The largest batch a gateway may take: half the burst shared among the gateways, at least 1. */
export function maxBatch(burst: number, gateways: number): number {
  return Math.max(1, Math.floor(burst / (2 * Math.max(1, gateways))))
}

/** Tokens to take at a time: enough for `horizonMs` of the recent rate, within [1, maxBatch]. */
export function batchSize(p: BatchInputs): number {
  const wanted = Math.ceil((p.recentRate * (p.horizonMs ?? 100)) / 1000)
  return Math.min(maxBatch(p.burst, p.gateways), Math.max(1, wanted))
}

/** Ask for the next batch when the local pool falls below this. */
export function lowWater(batch: number): number {
  return Math.ceil(batch / 2)
}

/** How far past rate + burst a burst can go cluster-wide: each gateway's credit, at most one batch. */
export function overshootBound(burst: number, gateways: number): number {
  return Math.max(1, gateways) * maxBatch(burst, gateways)
}

/**
 * A token bucket with debt, as the Redis script keeps it: refilled at `rate` up to `burst`, charged `n`
 * even below zero. Returns the tokens left and how long to wait until they are no longer negative.
 */
export function chargeBucket(
  tokens: number,
  elapsedMs: number,
  rate: number,
  burst: number,
  n: number,
): { tokens: number; waitMs: number } {
  const left = Math.min(burst, tokens + (Math.max(0, elapsedMs) * rate) / 1000) - n
  return { tokens: left, waitMs: left >= 0 ? 0 : Math.ceil((-left * 1000) / rate) }
}
