// The admin store of a cluster: the Store interface (src/store/store.ts) in Redis, so every gateway's
// admin API serves the same changes, keys and usage, and a change feed over pub/sub so a change made
// through one gateway is applied by all within a second.
//
// Keys (prefix mtg:store:): tenant-changes and plan-changes (hashes of JSON by name), keys (hash of JSON
// by id) with keys-of:TENANT (set of ids), usage:TENANT:HOUR (hash of counters) indexed by usage-index
// (sorted set of TENANT:HOUR scored by the hour).
import type { Limits } from '../config/schema.js'
import { luaScript, type ClusterRedis } from '../cluster/redis.js'
import type { ApiKeyRecord, PlanChanges, Store, TenantChanges, UsageRecord } from './store.js'

const P = 'mtg:store:'
const COUNTERS = ['sessionMs', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'limitHits'] as const

/** What changed; the receiver re-reads the store and applies it (the admin's merge and reload). */
export type StoreChange =
  | { kind: 'tenant'; name: string }
  | { kind: 'plan'; name: string }
  | { kind: 'keys'; name: string }
  /** the feed was interrupted (Redis away): changes may have been missed, re-read everything */
  | { kind: 'all'; name: '' }

export interface RedisStore extends Store {
  /**
   * changes made through any gateway of the cluster, this one's included (each gateway applies its own as it does
   * today)
   */
  onChange(listener: (change: StoreChange & { gateway: string }) => void): () => void
  /** resolves once the feed is subscribed (changes published before are not seen: re-read the store after) */
  readonly subscribed: Promise<void>
}

// KEYS: usage row, index; ARGV: member, hour, six counters, peak — the counts add up, the peak is a maximum.
const ADD_USAGE = luaScript(`
for i, f in ipairs({'sessionMs', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'limitHits'}) do
  redis.call('HINCRBY', KEYS[1], f, ARGV[2 + i])
end
local peak = tonumber(redis.call('HGET', KEYS[1], 'peakConnections') or '0')
if tonumber(ARGV[9]) > peak then redis.call('HSET', KEYS[1], 'peakConnections', ARGV[9]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1`)

const usageKey = (tenant: string, hour: number): string => `${P}usage:${tenant}:${hour}`

export function openRedisStore(redis: ClusterRedis, gateway: string): RedisStore {
  const r = redis.commands
  const CHANNEL = `${redis.channelPrefix}store:changes`
  const listeners = new Set<(change: StoreChange & { gateway: string }) => void>()
  const onMessage = (channel: string, message: string): void => {
    if (channel !== CHANNEL) return
    let change: StoreChange & { gateway: string }
    try {
      change = JSON.parse(message) as StoreChange & { gateway: string }
    } catch {
      return
    }
    for (const l of listeners) l(change)
  }
  redis.subscriber.on('message', onMessage)
  const subscribed = redis.subscriber.subscribe(CHANNEL).then(
    () => {},
    () => {},
  )
  // ioredis resubscribes after a reconnect, but what was published meanwhile is gone.
  let connections = 0
  const onReady = (): void => {
    if (++connections > 1) for (const l of listeners) l({ kind: 'all', name: '', gateway })
  }
  redis.subscriber.on('ready', onReady)
  if (redis.subscriber.status === 'ready') connections = 1
  // The write is done when Redis has it; telling the others is best effort (they also re-read on reconnect).
  const announce = async (change: StoreChange): Promise<void> => {
    await r.publish(CHANNEL, JSON.stringify({ ...change, gateway })).catch(() => 0)
  }

  return {
    subscribed,
    onChange(listener) {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
    async tenantChanges() {
      const all = await r.hgetall(`${P}tenant-changes`)
      return new Map(Object.entries(all).map(([tenant, json]) => [tenant, JSON.parse(json) as TenantChanges]))
    },
    async setTenantChanges(tenant, changes) {
      if (changes === undefined) await r.hdel(`${P}tenant-changes`, tenant)
      else await r.hset(`${P}tenant-changes`, tenant, JSON.stringify(changes))
      await announce({ kind: 'tenant', name: tenant })
    },
    async planChanges() {
      const all = await r.hgetall(`${P}plan-changes`)
      return new Map(
        Object.entries(all).map(([plan, json]) => [plan, JSON.parse(json) as Limits | null]),
      ) as PlanChanges
    },
    async setPlanChange(plan, limits) {
      await r.hset(`${P}plan-changes`, plan, JSON.stringify(limits))
      await announce({ kind: 'plan', name: plan })
    },
    async apiKeys(tenant) {
      const records =
        tenant === undefined
          ? Object.values(await r.hgetall(`${P}keys`)).map((json) => JSON.parse(json) as ApiKeyRecord)
          : await keysById(await r.smembers(`${P}keys-of:${tenant}`))
      // The SQLite store's order: oldest first, then by id.
      return records.sort((x, y) =>
        x.createdAt < y.createdAt ? -1 : x.createdAt > y.createdAt ? 1 : x.id < y.id ? -1 : x.id > y.id ? 1 : 0,
      )
    },
    async apiKey(id) {
      const json = await r.hget(`${P}keys`, id)
      return json === null ? undefined : (JSON.parse(json) as ApiKeyRecord)
    },
    async addApiKey(k) {
      // Like the SQLite primary key: an id is never reused.
      if ((await r.hsetnx(`${P}keys`, k.id, JSON.stringify(k))) === 0) throw new Error(`API key ${k.id} exists`)
      await r.sadd(`${P}keys-of:${k.tenant}`, k.id)
      await announce({ kind: 'keys', name: k.tenant })
    },
    async deleteApiKey(id) {
      const json = await r.hget(`${P}keys`, id)
      if (json === null) return false
      const k = JSON.parse(json) as ApiKeyRecord
      const gone = await r.multi().hdel(`${P}keys`, id).srem(`${P}keys-of:${k.tenant}`, id).exec()
      await announce({ kind: 'keys', name: k.tenant })
      return gone?.[0]?.[1] === 1
    },
    async deleteApiKeysOf(tenant) {
      const ids = await r.smembers(`${P}keys-of:${tenant}`)
      if (ids.length > 0)
        await r
          .multi()
          .hdel(`${P}keys`, ...ids)
          .del(`${P}keys-of:${tenant}`)
          .exec()
      await announce({ kind: 'keys', name: tenant })
    },
    async addUsage(records) {
      await Promise.all(
        records.map((u) =>
          ADD_USAGE(
            r,
            [usageKey(u.tenant, u.hour), `${P}usage-index`],
            [`${u.tenant}:${u.hour}`, u.hour, ...COUNTERS.map((c) => u[c]), u.peakConnections],
          ),
        ),
      )
    },
    async usage({ tenant, from, to }) {
      const members = (await r.zrangebyscore(`${P}usage-index`, from, `(${to}`))
        .map((m) => {
          const i = m.lastIndexOf(':')
          return { tenant: m.slice(0, i), hour: Number(m.slice(i + 1)) }
        })
        .filter((m) => tenant === undefined || m.tenant === tenant)
      const pipeline = r.pipeline()
      for (const m of members) pipeline.hgetall(usageKey(m.tenant, m.hour))
      const rows = (await pipeline.exec()) ?? []
      const out: UsageRecord[] = members.map((m, i) => {
        const h = (rows[i]?.[1] ?? {}) as Record<string, string>
        const n = (f: string): number => Number(h[f] ?? 0)
        return {
          tenant: m.tenant,
          hour: m.hour,
          sessionMs: n('sessionMs'),
          messagesIn: n('messagesIn'),
          messagesOut: n('messagesOut'),
          bytesIn: n('bytesIn'),
          bytesOut: n('bytesOut'),
          peakConnections: n('peakConnections'),
          limitHits: n('limitHits'),
        }
      })
      // The SQLite store's order: by hour, then tenant.
      return out.sort((x, y) => x.hour - y.hour || (x.tenant < y.tenant ? -1 : x.tenant > y.tenant ? 1 : 0))
    },
    async pruneUsage(before) {
      const members = await r.zrangebyscore(`${P}usage-index`, '-inf', `(${before}`)
      if (members.length === 0) return 0
      await r
        .multi()
        .del(
          ...members.map((m) => {
            const i = m.lastIndexOf(':')
            return usageKey(m.slice(0, i), Number(m.slice(i + 1)))
          }),
        )
        .zrem(`${P}usage-index`, ...members)
        .exec()
      return members.length
    },
    async close() {
      redis.subscriber.off('message', onMessage)
      redis.subscriber.off('ready', onReady)
      await redis.subscriber.unsubscribe(CHANNEL).catch(() => {})
      listeners.clear()
    },
  }

  async function keysById(ids: string[]): Promise<ApiKeyRecord[]> {
    if (ids.length === 0) return []
    const jsons = await r.hmget(`${P}keys`, ...ids)
    return jsons.filter((j): j is string => j !== null).map((j) => JSON.parse(j) as ApiKeyRecord)
  }
}
