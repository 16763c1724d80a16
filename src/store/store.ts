// What the gateway keeps beyond its YAML: the admin API's changes to tenants and plans, tenant API keys and usage.
// One interface, asynchronous, so a shared store (for a cluster of gateways) can replace SQLite.
import type { AclRule, Limits, TenantConfig, UserConfig } from '../config/schema.js'

/**
 * The API's changes to one tenant, key by key. A key that is present wins over the YAML's; an absent key
 * leaves the YAML's value. `users` is merged user by user, `null` meaning "deleted through the API".
 */
export interface TenantChanges {
  /** the tenant exists because the API created it (it is not, or no longer, in the YAML) */
  created?: boolean
  /** a YAML tenant deleted through the API */
  deleted?: boolean
  plan?: string | null
  limits?: Limits
  disabled?: boolean
  hosts?: string[]
  anonymous?: boolean
  acl?: AclRule[] | null
  users?: Record<string, UserConfig | null>
}

export type TenantChangeKey = Exclude<keyof TenantChanges, 'created' | 'deleted'>
export type { TenantConfig }

export interface ApiKeyRecord {
  /** public part of the key, also its name in URLs */
  id: string
  tenant: string
  /** SHA-256 of the secret part, hex (the key is 192 random bits: no slow hash needed) */
  secretHash: string
  label: string
  createdAt: string
}

/** Usage of one tenant during one hour, as added by a flush (counts are deltas, peak is a maximum). */
export interface UsageRecord {
  tenant: string
  /** start of the hour, ms since the epoch (UTC) */
  hour: number
  sessionMs: number
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  peakConnections: number
  limitHits: number
}

export interface UsageQuery {
  tenant?: string
  /** ms since the epoch; rows whose hour starts in [from, to) */
  from: number
  to: number
}

/** The API's plans, by name: its version of a plan (created or replaced), or null for one it deleted. */
export type PlanChanges = Map<string, Limits | null>

export interface Store {
  tenantChanges(): Promise<Map<string, TenantChanges>>
  /** replaces a tenant's changes; undefined forgets them (the YAML's tenant comes back as written) */
  setTenantChanges(tenant: string, changes: TenantChanges | undefined): Promise<void>
  planChanges(): Promise<PlanChanges>
  /** stores the API's version of a plan (null: deleted through the API) */
  setPlanChange(plan: string, limits: Limits | null): Promise<void>
  apiKeys(tenant?: string): Promise<ApiKeyRecord[]>
  apiKey(id: string): Promise<ApiKeyRecord | undefined>
  addApiKey(key: ApiKeyRecord): Promise<void>
  deleteApiKey(id: string): Promise<boolean>
  deleteApiKeysOf(tenant: string): Promise<void>
  /** adds counts to each (tenant, hour) and keeps the highest peak */
  addUsage(records: readonly UsageRecord[]): Promise<void>
  usage(query: UsageQuery): Promise<UsageRecord[]>
  /** deletes the usage of every hour that began before `before` (ms since the epoch); how many rows */
  pruneUsage(before: number): Promise<number>
  close(): Promise<void>
}
