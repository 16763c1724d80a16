// One gateway's membership of a cluster (SPEC §11): its Redis connections and the shared parts built on
// them, started from `cluster:` in the config. The service starts it before the gateway and hands each
// part to the code that enforces it (see docs/cluster.md and each module's head).
import type { ClusterConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import type { FailureThrottle } from '../tenancy/auth.js'
import { openRedisStore, type RedisStore } from '../store/redis.js'
import { SharedBudget } from './budget.js'
import { RedisLeases } from './leases.js'
import { connectRedis, type ClusterRedis } from './redis.js'
import { redisRegistry, type ClusterRegistry, type LocalClients } from './registry.js'
import { redisAddressRate, redisThrottle, type AddressRate } from './throttle.js'

export interface Cluster {
  /** this gateway's name (cluster.name, host:pid by default) */
  readonly name: string
  readonly redis: ClusterRedis
  /** maxConnections, connectRate, maxSubscriptions across gateways */
  readonly leases: RedisLeases
  /** publishRate and bandwidth across gateways */
  readonly budget: SharedBudget
  /** for /api/v1/ready's "cluster" field: never a reason to answer 503 (a balancer would pull every gateway) */
  readiness(): 'reachable' | 'unreachable'
  /** the login throttle shared by address */
  loginThrottle(perMinute: number, cooldownMs: number): FailureThrottle
  /** a listener's ipConnectRate shared by address */
  addressRate(perSecond: number, listener: string): AddressRate
  /** the admin store: in this Redis, or in the one admin.store names */
  openStore(url: string): RedisStore
  /** clients across the cluster, answered from this gateway's sessions by `local` */
  registry(local: LocalClients): ClusterRegistry
  close(): Promise<void>
}

export interface ClusterOptions {
  log: Logger
}

export function startCluster(config: ClusterConfig, opts: ClusterOptions): Cluster {
  const redis = connectRedis(config.redis, { log: opts.log })
  const leases = new RedisLeases(redis, {
    gateway: config.name,
    log: opts.log,
    ttlMs: config.leaseTtl,
  })
  const budget = new SharedBudget(redis, { gateways: () => leases.gatewaysAlive })
  const closing: Array<() => Promise<void>> = []
  return {
    name: config.name,
    redis,
    leases,
    budget,
    readiness: () => (redis.state === 'reachable' ? 'reachable' : 'unreachable'),
    loginThrottle: (perMinute, cooldownMs) => redisThrottle(redis, perMinute, cooldownMs),
    addressRate: (perSecond, listener) => redisAddressRate(redis, perSecond, listener),
    openStore(url) {
      const own = url === config.redis ? redis : connectRedis(url, { log: opts.log })
      const store = openRedisStore(own, config.name)
      const close = store.close.bind(store)
      // Its own connection, when it has one, goes with it.
      store.close = async () => {
        await close()
        if (own !== redis) await own.close()
      }
      return store
    },
    registry(local) {
      const r = redisRegistry(redis, config.name, local)
      closing.push(() => r.close())
      return r
    },
    async close() {
      for (const c of closing) await c()
      await leases.close()
      await redis.close()
    },
  }
}
