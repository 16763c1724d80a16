// Rates. Message rates and bandwidth are token buckets decided synchronously on the packet path, so a
// packet is charged before it is forwarded and one socket read cannot outrun the rate; connectRate
// stays on rate-limiter-flexible, which is asynchronous and cheap at connection rates.
//
// A cluster (SPEC §11) shares a tenant's publishRate/bandwidth through a SharedBudget instead of the
// tenant's local buckets: it answers synchronously too (from a pool taken from Redis in batches), so the
// per-packet cost stays a few arithmetic operations. clientPublishRate stays a local bucket.
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'

/** A tenant's publishRate ('publish', 1 per PUBLISH) or bandwidth ('bytes') shared by several gateways. */
export interface SharedBudget {
  /** charges `n` before forwarding; returns how many ms to stop reading the client (0: go on); never waits */
  charge(tenant: string, kind: 'publish' | 'bytes', n: number, limits: { rate: number; burst?: number }): number
}

/**
 * `rate` tokens a second, at most `burst` saved (default: one second's worth). `take` never refuses:
 * the bucket goes into debt, and the caller holds the sender for exactly debt / rate.
 */
export class TokenBucket {
  private tokens: number
  private at: number

  constructor(
    readonly rate: number,
    readonly burst: number = rate,
    now = Date.now(),
  ) {
    this.tokens = burst
    this.at = now
  }

  private refill(now: number): void {
    if (now <= this.at) return
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000)
    this.at = now
  }

  /** Takes `cost`; returns how many ms the sender must now wait until the bucket is out of debt (0: none). */
  take(cost: number, now: number): number {
    this.refill(now)
    this.tokens -= cost
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate
  }

  /** Whether `cost` can be taken without going into debt (nothing is taken). */
  fits(cost: number, now: number): boolean {
    this.refill(now)
    return this.tokens >= cost
  }
}

/** How long a sender should hold off after a take; `ms` 0 means go on at once. */
export interface RateWait {
  readonly ms: number
  /** true: the rate was passed and `ms` lasts until it is back within it */
  readonly exceeded: boolean
  /** more than half the window's points are used */
  readonly busy: boolean
}

/** Asynchronous rates (connectRate), so a Redis limiter can replace the in-memory one for a cluster. */
export interface RateLimiter {
  take(key: string, points: number): Promise<RateWait>
}

const GO_ON: RateWait = { ms: 0, exceeded: false, busy: false }

/** `perSecond` may be fractional (0.5 = one every two seconds). */
export function memoryRateLimiter(perSecond: number): RateLimiter {
  const points = perSecond >= 1 ? Math.round(perSecond) : 1
  const duration = perSecond >= 1 ? 1 : Math.ceil(1 / perSecond)
  const limiter = new RateLimiterMemory({ points, duration })
  return {
    async take(key, n) {
      try {
        const res = await limiter.consume(key, n)
        const pace = Math.floor((res.msBeforeNext * n) / (res.remainingPoints + n))
        return pace > 0 ? { ms: pace, exceeded: false, busy: res.remainingPoints * 2 < points } : GO_ON
      } catch (res) {
        if (res instanceof RateLimiterRes) return { ms: Math.max(1, res.msBeforeNext), exceeded: true, busy: true }
        throw res
      }
    },
  }
}
