// Rates (publish rate, bandwidth, connect rate) through rate-limiter-flexible, behind one small
// interface so its Redis limiter can replace the in-memory one for a cluster without touching callers.
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'

export interface RateLimiter {
  /** Takes `points` for `key`; resolves with 0 when within the rate, else the ms until it is again. */
  take (key: string, points: number): Promise<number>
}

/** `perSecond` may be fractional (0.5 = one every two seconds). */
export function memoryRateLimiter (perSecond: number): RateLimiter {
  const points = perSecond >= 1 ? Math.round(perSecond) : 1
  const duration = perSecond >= 1 ? 1 : Math.ceil(1 / perSecond)
  const limiter = new RateLimiterMemory({ points, duration })
  return {
    async take (key, n) {
      try {
        await limiter.consume(key, n)
        return 0
      } catch (res) {
        if (res instanceof RateLimiterRes) return Math.max(1, res.msBeforeNext)
        throw res
      }
    },
  }
}
