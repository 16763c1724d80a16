// A tenant key's writes are rationed (issue #17 item 14): each one can cost an scrypt hash and a reload
// of the whole gateway, and eight in parallel were enough to slow every other tenant's logins fourfold.
// The budget is per key, so one tenant's script cannot spend another's; the operator is not rationed.
import type { FastifyInstance, RouteOptions, onRequestAsyncHookHandler } from 'fastify'
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'
import { onRequestHooks } from './access.js'
import { ApiError } from './control.js'

/** Writes a tenant key may make per window, and the window; beyond that 429 with Retry-After. */
export const TENANT_WRITES = { points: 10, seconds: 10 }

const READS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Call after declareAccess: the limit runs once the caller is known. */
export function limitTenantWrites(app: FastifyInstance): void {
  const limiter = new RateLimiterMemory({ points: TENANT_WRITES.points, duration: TENANT_WRITES.seconds })
  const ration: onRequestAsyncHookHandler = async (req, reply) => {
    const p = req.principal
    if (p?.kind !== 'tenant') return
    try {
      await limiter.consume(p.keyId)
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err
      void reply.header('retry-after', String(Math.max(1, Math.ceil(err.msBeforeNext / 1000))))
      throw new ApiError(
        429,
        `too many changes with this key: at most ${TENANT_WRITES.points} every ` +
          `${TENANT_WRITES.seconds} s; try again later`,
      )
    }
  }
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (route.config?.access === 'open' || methods.every((m) => READS.has(m))) return
    route.onRequest = [...onRequestHooks(route), ration]
  })
}
