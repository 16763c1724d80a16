// Who is asking, and what they may see, declared by every route: `config: { access }`.
//   open      no credentials (health, readiness, the OpenAPI document, the web UI's files)
//   tenant    the operator token, or a tenant API key; a `:tenant` in the path must be the key's own
//   operator  the operator token only (a tenant key gets 403 on its own tenant, 404 on any other)
// The check is attached to each route by an onRoute hook, after routing on the decoded path, so what is
// checked is what runs (issue #17 item 9: a prefix test on the raw URL let `/%61pi/v1/tenants` through).
// A route that declares no access is refused when it is registered: forgetting it fails the start.
import type { FastifyInstance, FastifyRequest, RouteOptions, onRequestHookHandler } from 'fastify'
import { ApiError, type TenantControl } from './control.js'
import { parseApiKey, secretMatches, tokenMatches } from './keys.js'
import { memoryThrottle } from '../tenancy/auth.js'
import type { Store } from '../store/store.js'

export type Access = 'open' | 'tenant' | 'operator'
export type Principal = { kind: 'operator' } | { kind: 'tenant'; tenant: string; keyId: string }

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
  }
  interface FastifyRequest {
    principal: Principal | null
  }
}

export const TENANT_NOT_FOUND = 'tenant not found'

export interface AccessDeps {
  /** read per request, so a reload can change it */
  operatorToken: () => string
  control: TenantControl
  store: Store
}

/** The route's own onRequest hooks, as a list. */
export function onRequestHooks(route: RouteOptions): onRequestHookHandler[] {
  const own = route.onRequest
  return own === undefined ? [] : Array.isArray(own) ? own : [own]
}

/** The caller of a route that is not open (set before its handler runs). */
export function principalOf(req: FastifyRequest): Principal {
  if (req.principal === null) throw new Error(`${req.method} ${req.url}: no principal; is the route declared open?`)
  return req.principal
}

/** Installs the hook; call before any route is registered (it applies to every plugin registered after). */
export function declareAccess(app: FastifyInstance, deps: AccessDeps): void {
  const { control, store } = deps
  app.decorateRequest('principal', null)

  const tokenOf = (req: FastifyRequest): string | undefined =>
    /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1]
  const identify = async (token: string): Promise<Principal | null> => {
    if (tokenMatches(deps.operatorToken(), token)) return { kind: 'operator' }
    const parsed = parseApiKey(token)
    if (parsed === undefined) return null
    const record = await store.apiKey(parsed.id)
    if (record === undefined || !secretMatches(record, parsed.secret) || !control.exists(record.tenant)) return null
    return { kind: 'tenant', tenant: record.tenant, keyId: record.id }
  }
  // Wrong tokens are throttled per source address like MQTT logins (auth.maxFailuresPerMinute, then
  // auth.cooldown; counted apart from them), so an operator token cannot be guessed at HTTP speed.
  const { maxFailuresPerMinute, cooldown } = control.config.auth
  const failures = memoryThrottle(maxFailuresPerMinute, cooldown)

  const authenticate = async (req: FastifyRequest): Promise<Principal> => {
    const token = tokenOf(req)
    if (token !== undefined && (await failures.blocked(req.ip))) {
      throw new ApiError(429, 'too many wrong credentials from this address; try again later')
    }
    const principal = token === undefined ? null : await identify(token)
    if (principal === null) {
      if (token !== undefined) await failures.fail(req.ip)
      throw new ApiError(
        401,
        'missing or invalid credentials: send Authorization: Bearer <operator token or tenant API key>',
      )
    }
    return principal
  }

  const check =
    (access: 'tenant' | 'operator'): onRequestHookHandler =>
    async (req) => {
      const principal = await authenticate(req)
      req.principal = principal
      // Unknown and foreign tenants answer alike, before anything else is said about the route.
      const tenant = (req.params as Record<string, string | undefined>).tenant
      const foreign = principal.kind === 'tenant' && principal.tenant !== tenant
      if (tenant !== undefined && (foreign || !control.exists(tenant))) throw new ApiError(404, TENANT_NOT_FOUND)
      if (access === 'operator' && principal.kind !== 'operator')
        throw new ApiError(403, 'this needs the operator token')
    }
  const hooks = { tenant: check('tenant'), operator: check('operator') }

  app.addHook('onRoute', (route: RouteOptions) => {
    const access = route.config?.access
    if (access === undefined) throw new Error(`admin route ${String(route.method)} ${route.url} declares no access`)
    if (access === 'open') return
    // First, so no other hook of the route sees an unauthenticated request.
    route.onRequest = [hooks[access], ...onRequestHooks(route)]
  })
}
