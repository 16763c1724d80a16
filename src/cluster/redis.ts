// The cluster's connections to Redis: one for commands, one for pub/sub (a subscribed connection can
// run nothing else), and whether Redis is reachable, logged once per change and counted for a metric.
import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Logger } from '../log.js'

export type RedisState = 'connecting' | 'reachable' | 'unreachable'

export interface ClusterRedis {
  /** commands; fails at once while Redis is unreachable (no offline queue), so callers fall back rather than wait */
  readonly commands: Redis
  /** pub/sub only; resubscribes by itself after a reconnect */
  readonly subscriber: Redis
  readonly state: RedisState
  /**
   * prefix for pub/sub channels: channels ignore the database number, so two clusters sharing a Redis on
   * different databases must not hear each other
   */
  readonly channelPrefix: string
  /** times Redis became unreachable since start (a counter for /metrics) */
  readonly outages: number
  /** runs on every change of state; returns the unsubscribe */
  onState(listener: (state: RedisState) => void): () => void
  /** resolves when the command connection is ready, false after `timeoutMs` */
  ready(timeoutMs: number): Promise<boolean>
  close(): Promise<void>
}

export interface RedisOptions {
  log: Logger
  /** how long one command may take before it counts as failed (a frozen Redis must not hold a CONNECT) */
  commandTimeoutMs?: number
}

/** The URL as it may be logged: without its password. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '(unparsable URL)'
  }
}

export function connectRedis(url: string, opts: RedisOptions): ClusterRedis {
  const common = {
    lazyConnect: false,
    // Reconnect for ever, at most every 2 s: Redis coming back must end the degraded mode by itself.
    retryStrategy: (times: number) => Math.min(times * 100, 2000),
    maxRetriesPerRequest: 0,
  }
  const commands = new Redis(url, {
    ...common,
    enableOfflineQueue: false,
    commandTimeout: opts.commandTimeoutMs ?? 1000,
  })
  // The subscriber queues its SUBSCRIBEs until connected; ioredis replays them after every reconnect.
  const subscriber = new Redis(url, { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null })
  const listeners = new Set<(state: RedisState) => void>()
  const where = redactRedisUrl(url)
  let state: RedisState = 'connecting'
  let outages = 0
  let lastError: string | undefined
  const set = (next: RedisState): void => {
    if (next === state) return
    // The first failure to connect at start is an outage too; a first success is not news.
    if (next === 'unreachable') {
      outages++
      opts.log.warn(
        { redis: where, err: lastError },
        "cluster: Redis unreachable; admitting against this gateway's last known share",
      )
    } else if (state === 'unreachable') {
      opts.log.info({ redis: where }, 'cluster: Redis reachable again')
    }
    state = next
    for (const l of listeners) l(next)
  }
  commands.on('ready', () => set('reachable'))
  commands.on('error', (err: Error) => {
    lastError = err.message
  })
  commands.on('close', () => set('unreachable'))
  subscriber.on('error', () => {}) // its state is the command connection's; errors are reported there
  return {
    commands,
    subscriber,
    get state() {
      return state
    },
    channelPrefix: `mtg:${commands.options.db ?? 0}:`,
    get outages() {
      return outages
    },
    onState(listener) {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
    async ready(timeoutMs) {
      if (state === 'reachable') return true
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          off()
          resolve(false)
        }, timeoutMs)
        const off = this.onState((s) => {
          if (s === 'reachable') {
            clearTimeout(timer)
            off()
            resolve(true)
          }
        })
      })
    },
    async close() {
      listeners.clear()
      commands.disconnect()
      subscriber.disconnect()
    },
  }
}

/** A Lua script run by its SHA, sent whole once when Redis does not know it (after a restart). */
export type LuaScript = (
  redis: Redis,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
) => Promise<unknown>

export function luaScript(source: string): LuaScript {
  const sha = createHash('sha1').update(source).digest('hex')
  return async (redis, keys, args) => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return redis.eval(source, keys.length, ...keys, ...args)
    }
  }
}
