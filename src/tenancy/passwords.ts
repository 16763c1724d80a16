// Password hashes the gateway accepts: its own scrypt hashes (from `mqtt-tenant-gateway passwd`),
// `plain:` for demos, and mosquitto_passwd's `$6$` (salted SHA-512) and `$7$` (PBKDF2-SHA512), so an
// existing mosquitto password file works unchanged. Every comparison is constant-time.
import { createHash, pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

interface ScryptOptions {
  N: number
  r: number
  p: number
  maxmem: number
}
/** crypto.scrypt runs on libuv's thread pool: hashing never blocks the event loop. */
const scryptAsync = promisify(scrypt) as (
  password: string | Buffer,
  salt: Buffer,
  keylen: number,
  options: ScryptOptions,
) => Promise<Buffer>
const pbkdf2Async = promisify(pbkdf2)

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 }

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const { N, r, p, keylen } = SCRYPT
  const key = await scryptAsync(password, salt, keylen, { N, r, p, maxmem: 64 * 1024 * 1024 })
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Whether `password` matches `stored`; an unknown or damaged format is false, never an exception. */
export async function verifyPassword(stored: string, password: string | Buffer): Promise<boolean> {
  const pw = typeof password === 'string' ? Buffer.from(password) : password
  try {
    if (stored.startsWith('plain:')) {
      // Compare digests so the comparison takes the same time whatever the lengths.
      const d = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest()
      return equal(d(stored.slice(6)), d(pw))
    }
    const parts = stored.split('$')
    if (parts[0] === 'scrypt' && parts.length === 6) {
      const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string]
      const expected = Buffer.from(hash, 'base64')
      const N = Number(n)
      const options = { N, r: Number(r), p: Number(p), maxmem: 256 * N * Number(r) + 1024 * 1024 }
      const key = await scryptAsync(pw, Buffer.from(salt, 'base64'), expected.length, options)
      return equal(key, expected)
    }
    if (parts[0] === '' && parts[1] === '6' && parts.length === 4) {
      // mosquitto $6$: base64(SHA-512(password ‖ salt)), salt in base64 — not glibc's sha512-crypt.
      const salt = Buffer.from(parts[2] as string, 'base64')
      const digest = createHash('sha512').update(pw).update(salt).digest()
      return equal(digest, Buffer.from(parts[3] as string, 'base64'))
    }
    if (parts[0] === '' && parts[1] === '7' && parts.length === 5) {
      // mosquitto $7$: PBKDF2-HMAC-SHA512 with the iteration count, salt and hash in base64.
      const iterations = Number(parts[2])
      const expected = Buffer.from(parts[4] as string, 'base64')
      if (!Number.isInteger(iterations) || iterations < 1 || iterations > 10_000_000) return false
      const salt = Buffer.from(parts[3] as string, 'base64')
      const key = await pbkdf2Async(pw, salt, iterations, expected.length, 'sha512')
      return equal(key, expected)
    }
  } catch {
    return false
  }
  return false
}

/** A real scrypt hash of a random password: verified when the user is unknown, so timing tells nothing. */
let dummy: Promise<string> | undefined
/** Whether checking `stored` costs what the dummy costs (scrypt), so timing tells nothing. */
export function isCostlyHash(stored: string): boolean {
  return stored.startsWith('scrypt$') && Number(stored.split('$')[1]) >= SCRYPT.N
}

export async function verifyDummy(password: string | Buffer): Promise<false> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'))
  await verifyPassword(await dummy, password)
  return false
}

/** mosquitto_passwd files: `user:hash` lines, `#` comments and blank lines ignored. */
export function parsePasswordFile(text: string): Record<string, string> {
  // No prototype: a line `__proto__:…` is a user like any other, not the object's prototype.
  const users = Object.create(null) as Record<string, string>
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    users[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return users
}
