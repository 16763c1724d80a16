// The default store: one SQLite file (better-sqlite3), WAL mode so a crash loses nothing written.
import Database from 'better-sqlite3'
import type { Limits } from '../config/schema.js'
import type { ApiKeyRecord, Store, TenantChanges, UsageQuery, UsageRecord } from './store.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tenant_changes (tenant TEXT PRIMARY KEY, changes TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plan_changes (plan TEXT PRIMARY KEY, limits TEXT, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, secret_hash TEXT NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant);
CREATE TABLE IF NOT EXISTS usage (
  tenant TEXT NOT NULL, hour INTEGER NOT NULL,
  session_ms INTEGER NOT NULL DEFAULT 0,
  messages_in INTEGER NOT NULL DEFAULT 0, messages_out INTEGER NOT NULL DEFAULT 0,
  bytes_in INTEGER NOT NULL DEFAULT 0, bytes_out INTEGER NOT NULL DEFAULT 0,
  peak_connections INTEGER NOT NULL DEFAULT 0,
  limit_hits INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant, hour)
);
`

interface UsageRow {
  tenant: string
  hour: number
  session_ms: number
  messages_in: number
  messages_out: number
  bytes_in: number
  bytes_out: number
  peak_connections: number
  limit_hits: number
}
interface KeyRow {
  id: string
  tenant: string
  secret_hash: string
  label: string
  created_at: string
}

const toKey = (r: KeyRow): ApiKeyRecord => ({
  id: r.id,
  tenant: r.tenant,
  secretHash: r.secret_hash,
  label: r.label,
  createdAt: r.created_at,
})

/** `readonly` opens an existing store without creating or changing anything (for `check`). */
export function openSqliteStore(file: string, opts: { readonly?: boolean } = {}): Store {
  const db = new Database(file, { readonly: opts.readonly === true, fileMustExist: opts.readonly === true })
  if (opts.readonly !== true) {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec(SCHEMA)
  }
  const q = {
    changes: db.prepare<[], { tenant: string; changes: string }>('SELECT tenant, changes FROM tenant_changes'),
    setChanges: db.prepare(`INSERT INTO tenant_changes (tenant, changes, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (tenant) DO UPDATE SET changes = excluded.changes, updated_at = excluded.updated_at`),
    dropChanges: db.prepare('DELETE FROM tenant_changes WHERE tenant = ?'),
    keys: db.prepare<[], KeyRow>('SELECT * FROM api_keys ORDER BY created_at, id'),
    keysOf: db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_at, id'),
    key: db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE id = ?'),
    addKey: db.prepare('INSERT INTO api_keys (id, tenant, secret_hash, label, created_at) VALUES (?, ?, ?, ?, ?)'),
    dropKey: db.prepare('DELETE FROM api_keys WHERE id = ?'),
    dropKeysOf: db.prepare('DELETE FROM api_keys WHERE tenant = ?'),
    addUsage: db.prepare(`INSERT INTO usage
        (tenant, hour, session_ms, messages_in, messages_out, bytes_in, bytes_out, peak_connections, limit_hits)
      VALUES (@tenant, @hour, @sessionMs, @messagesIn, @messagesOut, @bytesIn, @bytesOut, @peakConnections, @limitHits)
      ON CONFLICT (tenant, hour) DO UPDATE SET session_ms = session_ms + excluded.session_ms,
        messages_in = messages_in + excluded.messages_in, messages_out = messages_out + excluded.messages_out,
        bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out,
        peak_connections = max(peak_connections, excluded.peak_connections),
        limit_hits = limit_hits + excluded.limit_hits`),
    usage: db.prepare<[number, number], UsageRow>(
      'SELECT * FROM usage WHERE hour >= ? AND hour < ? ORDER BY hour, tenant',
    ),
    usageOf: db.prepare<[number, number, string], UsageRow>(
      'SELECT * FROM usage WHERE hour >= ? AND hour < ? AND tenant = ? ORDER BY hour',
    ),
    pruneUsage: db.prepare('DELETE FROM usage WHERE hour < ?'),
  }
  const addUsage = db.transaction((records: readonly UsageRecord[]) => {
    for (const r of records) q.addUsage.run(r)
  })

  return {
    async tenantChanges() {
      return new Map(q.changes.all().map((r) => [r.tenant, JSON.parse(r.changes) as TenantChanges]))
    },
    async setTenantChanges(tenant, changes) {
      if (changes === undefined) q.dropChanges.run(tenant)
      else q.setChanges.run(tenant, JSON.stringify(changes), new Date().toISOString())
    },
    async planChanges() {
      // A store written before plans could be changed has no such table when `check` opens it read-only.
      const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'plan_changes'").get()
      if (table === undefined) return new Map()
      const rows = db
        .prepare<[], { plan: string; limits: string | null }>('SELECT plan, limits FROM plan_changes')
        .all()
      return new Map(rows.map((r) => [r.plan, r.limits === null ? null : (JSON.parse(r.limits) as Limits)]))
    },
    async setPlanChange(plan, limits) {
      db.prepare(
        `INSERT INTO plan_changes (plan, limits, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (plan) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at`,
      ).run(plan, limits === null ? null : JSON.stringify(limits), new Date().toISOString())
    },
    async apiKeys(tenant) {
      return (tenant === undefined ? q.keys.all() : q.keysOf.all(tenant)).map(toKey)
    },
    async apiKey(id) {
      const row = q.key.get(id)
      return row === undefined ? undefined : toKey(row)
    },
    async addApiKey(k) {
      q.addKey.run(k.id, k.tenant, k.secretHash, k.label, k.createdAt)
    },
    async deleteApiKey(id) {
      return q.dropKey.run(id).changes > 0
    },
    async deleteApiKeysOf(tenant) {
      q.dropKeysOf.run(tenant)
    },
    async addUsage(records) {
      if (records.length > 0) addUsage(records)
    },
    async usage({ tenant, from, to }: UsageQuery) {
      const rows = tenant === undefined ? q.usage.all(from, to) : q.usageOf.all(from, to, tenant)
      return rows.map((r) => ({
        tenant: r.tenant,
        hour: r.hour,
        sessionMs: r.session_ms,
        messagesIn: r.messages_in,
        messagesOut: r.messages_out,
        bytesIn: r.bytes_in,
        bytesOut: r.bytes_out,
        peakConnections: r.peak_connections,
        limitHits: r.limit_hits,
      }))
    },
    async pruneUsage(before) {
      return q.pruneUsage.run(before).changes
    },
    async close() {
      db.close()
    },
  }
}
