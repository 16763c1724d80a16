// Authentication against the resolved tenant's users (SPEC §4). Every failure — unknown tenant, unknown
// user, wrong password, no tenant, anonymous not allowed — answers the same reason in similar time, so
// tenants and users cannot be enumerated; failures are throttled per source IP; a verified password is
// remembered per user as a keyed hash, so a reconnect storm is not bound by scrypt's cost.
import { hash, randomBytes, timingSafeEqual } from 'node:crypto'
import { RateLimiterMemory, type RateLimiterAbstract } from 'rate-limiter-flexible'
import type { GatewayConfig } from '../config/schema.js'
import { resolveTenant, type ResolutionFailure } from './resolve.js'
import { isCostlyHash, verifyDummy, verifyPassword } from './passwords.js'

export interface AuthRequest {
  listenerTenant?: string
  sniHost?: string
  username?: string
  password?: Buffer
  /**
   * mutual TLS: the verified client certificate's CN ('' without one). It is the username, resolved like
   * one, and the certificate is the credential: the CONNECT's username and password are not used.
   */
  certificateName?: string
  remoteAddress: string
}

/**
 * Why a login failed, for the operator's log line only: the client hears one code for every credential
 * failure (bad credentials, or not authorized once it proved them for a disabled tenant).
 */
export type AuthFailureCause =
  | ResolutionFailure
  | 'throttled' // the source is cooling down after too many failures
  | 'anonymousNotAllowed' // no username, and the tenant wants one
  | 'unknownUser'
  | 'noPassword' // a user who logs in only with a client certificate
  | 'badPassword'
  | 'disabled' // right credentials (or anonymous) for a disabled tenant
  | 'noCertificateName' // mutual TLS: the certificate has no CN
  | 'unknownCertificateUser' // mutual TLS: the CN names no user

export type AuthResult =
  | { ok: true; tenant: string; user: string | undefined }
  | {
      ok: false
      reason: 'badCredentials' | 'notAuthorized'
      cause: AuthFailureCause
      /** the tenant the credentials named, when it exists (for the log line; the client is not told) */
      tenant?: string
    }

/** Failed attempts per source; behind an interface so a shared (Redis) limiter can replace it. */
export interface FailureThrottle {
  /** true while the source is cooling down */
  blocked(source: string): Promise<boolean>
  fail(source: string): Promise<void>
}

/** Makes the throttle for the config's numbers, again when they change: memoryThrottle, or a cluster's shared one. */
export type ThrottleFactory = (perMinute: number, cooldownMs: number) => FailureThrottle

export function memoryThrottle(perMinute: number, cooldownMs: number): FailureThrottle {
  const blockSeconds = Math.ceil(cooldownMs / 1000)
  return limiterThrottle(
    new RateLimiterMemory({ points: perMinute, duration: 60, blockDuration: blockSeconds }),
    perMinute,
    blockSeconds,
  )
}

/**
 * A FailureThrottle over any rate-limiter-flexible limiter counting failures per minute (in memory, or
 * in Redis for a cluster): the Nth failure in a minute starts the cooldown, however the minute's window
 * lies. A limiter that cannot answer (Redis gone) neither blocks nor throws.
 */
export function limiterThrottle(
  limiter: RateLimiterAbstract,
  perMinute: number,
  blockSeconds: number,
): FailureThrottle {
  return {
    async blocked(source) {
      const res = await limiter.get(source).catch(() => null)
      return res !== null && res.consumedPoints >= perMinute
    },
    async fail(source) {
      const res = await limiter.consume(source).catch((r: unknown) => r)
      if (
        typeof res === 'object' &&
        res !== null &&
        'consumedPoints' in res &&
        (res.consumedPoints as number) >= perMinute
      ) {
        await limiter.block(source, blockSeconds).catch(() => {})
      }
    },
  }
}

const bad = (cause: AuthFailureCause, tenant?: string): AuthResult =>
  tenant === undefined
    ? { ok: false, reason: 'badCredentials', cause }
    : { ok: false, reason: 'badCredentials', cause, tenant }
const disabled = (tenant: string): AuthResult => ({ ok: false, reason: 'notAuthorized', cause: 'disabled', tenant })

/** A user's password as last verified: the stored hash it matched and a keyed digest of it. */
interface Verified {
  readonly stored: string
  readonly digest: Buffer
  readonly until: number
}

export class Authenticator {
  private config: GatewayConfig
  private throttle: FailureThrottle
  private readonly cacheKey = randomBytes(32)
  /** by tenant and user; one entry per user however many devices share it, never a plain password */
  private readonly verified = new Map<string, Verified>()
  /** verifications under way, by user and digest: a reconnect storm of one device fleet costs one hash */
  private readonly verifying = new Map<string, Promise<boolean>>()

  constructor(
    config: GatewayConfig,
    private readonly makeThrottle: ThrottleFactory = memoryThrottle,
  ) {
    this.config = config
    this.throttle = makeThrottle(config.auth.maxFailuresPerMinute, config.auth.cooldown)
  }

  update(config: GatewayConfig): void {
    if (
      config.auth.maxFailuresPerMinute !== this.config.auth.maxFailuresPerMinute ||
      config.auth.cooldown !== this.config.auth.cooldown
    ) {
      this.throttle = this.makeThrottle(config.auth.maxFailuresPerMinute, config.auth.cooldown)
    }
    this.config = config
  }

  /** verified credentials held in memory */
  get cacheSize(): number {
    return this.verified.size
  }

  async authenticate(req: AuthRequest): Promise<AuthResult> {
    if (await this.throttle.blocked(req.remoteAddress)) return bad('throttled', this.existingTenant(req))
    const result = await this.check(req)
    if (!result.ok && result.reason === 'badCredentials') await this.throttle.fail(req.remoteAddress)
    return result
  }

  private async check(req: AuthRequest): Promise<AuthResult> {
    if (req.certificateName !== undefined) return this.checkCertificate(req, req.certificateName)
    const password = req.password ?? Buffer.alloc(0)
    const resolved = resolveTenant(req, this.config.tenancy, this.config.tenants)
    const tenant = resolved.ok ? this.config.tenants[resolved.tenant] : undefined
    // Every refusal below costs one costly hash, as a wrong password does: a refusal answered at once
    // would tell a prober which tenants exist (a known tenant's SNI with no username was refused in 1 ms,
    // an unknown one in 32 ms).
    if (!resolved.ok) return verifyDummy(password).then(() => bad(resolved.cause))
    if (tenant === undefined) return verifyDummy(password).then(() => bad('unknownTenant'))
    if (resolved.user === undefined) {
      if (!tenant.anonymous) return verifyDummy(password).then(() => bad('anonymousNotAllowed', resolved.tenant))
      return tenant.disabled ? disabled(resolved.tenant) : { ok: true, tenant: resolved.tenant, user: undefined }
    }
    const user = tenant.users[resolved.user]
    const stored = user?.password
    if (stored === undefined)
      return verifyDummy(password).then(() => bad(user === undefined ? 'unknownUser' : 'noPassword', resolved.tenant))
    if (!(await this.verify(resolved.tenant, resolved.user, stored, password)))
      return bad('badPassword', resolved.tenant)
    // A disabled tenant is only told so to a caller who proved its credentials (no enumeration).
    if (tenant.disabled) return disabled(resolved.tenant)
    return { ok: true, tenant: resolved.tenant, user: resolved.user }
  }

  /** The tenant the request names, if it exists: for a throttled login's log line, which checks nothing else. */
  private existingTenant(req: AuthRequest): string | undefined {
    const { username, password: _p, certificateName, ...rest } = req
    const name = certificateName ?? username
    const resolved = resolveTenant(
      { ...rest, ...(name !== undefined ? { username: name } : {}) },
      this.config.tenancy,
      this.config.tenants,
    )
    return resolved.ok && this.config.tenants[resolved.tenant] !== undefined ? resolved.tenant : undefined
  }

  /** A certificate the listener's client CA signed names a user of a tenant, or nobody. */
  private checkCertificate(req: AuthRequest, name: string): AuthResult {
    // Only a certificate the listener's CA signed gets here: no timing to hide from its holder.
    if (name === '') return bad('noCertificateName')
    const { username: _u, password: _p, ...rest } = req
    const resolved = resolveTenant({ ...rest, username: name }, this.config.tenancy, this.config.tenants)
    if (!resolved.ok) return bad(resolved.cause)
    const tenant = this.config.tenants[resolved.tenant]
    if (tenant === undefined) return bad('unknownTenant')
    if (resolved.user === undefined || tenant.users[resolved.user] === undefined)
      return bad('unknownCertificateUser', resolved.tenant)
    if (tenant.disabled) return disabled(resolved.tenant)
    return { ok: true, tenant: resolved.tenant, user: resolved.user }
  }

  private async verify(tenant: string, user: string, stored: string, password: Buffer): Promise<boolean> {
    const { cacheSize, cacheTtl } = this.config.auth
    const key = `${tenant}\0${user}`
    // A secret-prefixed SHA-256: one call, and the digest never leaves the process.
    const digest = hash('sha256', Buffer.concat([this.cacheKey, password]), 'buffer')
    const known = this.verified.get(key)
    // The stored hash is compared too, so a changed password invalidates the entry by itself.
    if (
      known !== undefined &&
      known.stored === stored &&
      known.until > Date.now() &&
      timingSafeEqual(known.digest, digest)
    )
      return true
    const pendingKey = `${key}\0${digest.toString('base64')}`
    let pending = this.verifying.get(pendingKey)
    if (pending === undefined) {
      pending = costlyVerify(stored, password).finally(() => this.verifying.delete(pendingKey))
      this.verifying.set(pendingKey, pending)
    }
    if (!(await pending)) return false
    if (cacheSize > 0) {
      this.verified.delete(key)
      if (this.verified.size >= cacheSize) this.verified.delete(this.verified.keys().next().value as string)
      this.verified.set(key, { stored, digest, until: Date.now() + cacheTtl })
    }
    return true
  }
}

/**
 * Verifies, at no less than the cost of the dummy an unknown user is checked against: a `plain:`,
 * `$6$` or `$7$` user answered in microseconds would tell a prober which users exist.
 */
async function costlyVerify(stored: string, password: Buffer): Promise<boolean> {
  if (isCostlyHash(stored)) return verifyPassword(stored, password)
  const [ok] = await Promise.all([verifyPassword(stored, password), verifyDummy(password)])
  return ok
}
