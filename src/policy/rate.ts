// Rates (publish rate, bandwidth, connect rate) through rate-limiter-flexible, behind one small
// interface so its Redis limiter can replace the in-memory one for a cluster without touching callers.
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'

/** How long a sender should hold off after a take; `ms` 0 means go on at once. */
export interface RateWait {
  readonly ms: number
  /**
   * true: the rate was passed and `ms` lasts until it is back within it (a limit hit). false: within
   * the rate, and `ms` spreads what is left of the window evenly over the points taken (pacing), the
   * way rate-limiter-flexible's `execEvenly` does, for a sender that would otherwise burst.
   */
  readonly exceeded: boolean
  /** more than half the window's points are used: a pacing hold now is the rate holding the sender back */
  readonly busy: boolean
}

export interface RateLimiter {
  take (key: string, points: number): Promise<RateWait>
}

const GO_ON: RateWait = { ms: 0, exceeded: false, busy: false }

/** `perSecond` may be fractional (0.5 = one every two seconds). */
export function memoryRateLimiter (perSecond: number): RateLimiter {
  const points = perSecond >= 1 ? Math.round(perSecond) : 1
  const duration = perSecond >= 1 ? 1 : Math.ceil(1 / perSecond)
  const limiter = new RateLimiterMemory({ points, duration })
  return {
    async take (key, n) {
      try {
        const res = await limiter.consume(key, n)
        const pace = Math.floor(res.msBeforeNext * n / (res.remainingPoints + n))
        return pace > 0 ? { ms: pace, exceeded: false, busy: res.remainingPoints * 2 < points } : GO_ON
      } catch (res) {
        if (res instanceof RateLimiterRes) return { ms: Math.max(1, res.msBeforeNext), exceeded: true, busy: true }
        throw res
      }
    },
  }
}
