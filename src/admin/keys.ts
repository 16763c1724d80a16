// Credentials of the admin API. Tenant API keys are `mtg_<id>_<secret>`: the id names the key (and is
// all that is ever listed), the secret is 192 random bits kept only as its SHA-256 — random secrets
// need no slow hash. Comparisons are constant-time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { ApiKeyRecord } from '../store/store.js'

const KEY = /^mtg_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$/

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest()

export function newApiKey(tenant: string, label: string): { key: string; record: ApiKeyRecord } {
  const id = randomBytes(8).toString('hex')
  const secret = randomBytes(24).toString('base64url')
  return {
    key: `mtg_${id}_${secret}`,
    record: { id, tenant, secretHash: sha256(secret).toString('hex'), label, createdAt: new Date().toISOString() },
  }
}

export function parseApiKey(key: string): { id: string; secret: string } | undefined {
  const m = KEY.exec(key)
  return m === null ? undefined : { id: m[1] as string, secret: m[2] as string }
}

export function secretMatches(record: ApiKeyRecord, secret: string): boolean {
  return timingSafeEqual(sha256(secret), Buffer.from(record.secretHash, 'hex'))
}

/** Constant-time comparison of the operator token (hashed first so lengths do not leak). */
export function tokenMatches(expected: string, given: string): boolean {
  return timingSafeEqual(sha256(expected), sha256(given))
}
