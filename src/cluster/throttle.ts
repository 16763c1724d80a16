// Counts by source address that hold across the cluster: the login throttle (failed authentications
// per address, then a cooldown) and a listener's ipConnectRate. rate-limiter-flexible's Redis limiter
// does the counting in Redis; while Redis is unreachable an in-memory limiter with the same numbers
// answers (its insurance), so each gateway then counts alone: at most `gateways` × the limit, for the
// outage only.
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible'
import { limiterThrottle, type FailureThrottle } from '../tenancy/auth.js'
import { perTurn } from './per-turn.js'
import type { ClusterRedis } from './redis.js'

/**
 * The shared login throttle. `new Authenticator(config, (perMinute, cooldownMs) => redisThrottle(redis,
 * perMinute, cooldownMs))` (src/tenancy/auth.ts), or Cluster.loginThrottle as that factory.
 */
export function redisThrottle(
  redis: ClusterRedis,
  perMinute: number,
  cooldownMs: number,
  keyPrefix = 'mtg:login',
): FailureThrottle {
  const blockDuration = Math.ceil(cooldownMs / 1000)
  const insurance = new RateLimiterMemory({ points: perMinute, duration: 60, blockDuration })
  const limiter = new RateLimiterRedis({
    storeClient: redis.commands,
    keyPrefix,
    points: perMinute,
    duration: 60,
    blockDuration,
    rejectIfRedisNotReady: true,
    insuranceLimiter: insurance,
  })
  const throttle = limiterThrottle(limiter, perMinute, blockDuration)
  const fallback = limiterThrottle(insurance, perMinute, blockDuration)
  // The counts of one turn's CONNECTs in one MGET (see per-turn.ts).
  const counts = perTurn<string, string | null>((keys) => redis.commands.mget(...keys))
  return {
    // Asked at every CONNECT: a read of the limiter's count instead of its get() (MULTI, GET, PTTL, EXEC),
    // whose time to live the answer does not use. Redis unreachable: the limiter's insurance answers, as
    // its get() would.
    async blocked(source) {
      let count: string | null
      try {
        count = await counts(limiter.getKey(source))
      } catch {
        return fallback.blocked(source)
      }
      return count !== null && Number.parseInt(count, 10) >= perMinute
    },
    fail: (source) => throttle.fail(source),
  }
}

/**
 * New connections per second from one address, across the cluster. Answers true to let the connection
 * in; the front door (src/listeners/listen.ts perIpLimit) destroys the socket on false. Unlike the memory
 * limiter it answers after a Redis round trip: the socket may have sent its first bytes by then.
 */
export type AddressRate = (address: string) => Promise<boolean>

export function redisAddressRate(redis: ClusterRedis, perSecond: number, listener: string): AddressRate {
  const limiter: RateLimiterAbstract = new RateLimiterRedis({
    storeClient: redis.commands,
    keyPrefix: `mtg:ip:${listener}`,
    points: perSecond,
    duration: 1,
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory({ points: perSecond, duration: 1 }),
  })
  return (address) =>
    limiter.consume(address).then(
      () => true,
      () => false,
    )
}
