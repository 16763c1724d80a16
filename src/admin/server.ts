// The admin HTTP API (/api/v1), the web UI (/) and Prometheus metrics (/metrics) on their own listener.
// Who may see what: the operator token sees every tenant; a tenant API key sees its own tenant only,
// and anything of another tenant answers 404 exactly like a tenant that does not exist.
import https from 'node:https'
import type { SecureContextOptions } from 'node:tls'
import fastifySwagger from '@fastify/swagger'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerFactory } from 'fastify'
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { aclRuleSchema, limitsSchema, tenantId, type AclRule, type Limits, type UserConfig } from '../config/schema.js'
import type { ClientInfo, Gateway } from '../gateway.js'
import type { Logger } from '../log.js'
import { HOUR_MS, hourStart, type UsageMeter } from '../metering/meter.js'
import { effectiveLimits } from '../policy/plans.js'
import type { Store, UsageRecord } from '../store/store.js'
import { memoryThrottle } from '../tenancy/auth.js'
import { hashPassword } from '../tenancy/passwords.js'
import { ApiError, type TenantControl } from './control.js'
import { newApiKey, parseApiKey, secretMatches, tokenMatches } from './keys.js'
import type { GatewayMetrics } from './metrics.js'
import { uiFiles } from './ui.js'

export type Principal = { kind: 'operator' } | { kind: 'tenant'; tenant: string; keyId: string }

declare module 'fastify' {
  interface FastifyRequest { principal: Principal | null }
}

export interface AdminDeps {
  /** read per request, so a reload can change it */
  operatorToken: () => string
  control: TenantControl
  gateway: Gateway
  store: Store
  meter: UsageMeter
  metrics: GatewayMetrics
  log: Logger
  /** serve HTTPS with this certificate and key */
  tls?: SecureContextOptions
}

const NOT_FOUND = 'tenant not found'

/** The YAML's shape of an ACL rule, as the API reads and writes it. */
const aclOut = (r: AclRule): Record<string, string> => ({ [r.effect]: r.action, topic: r.topic })

const tenantParams = z.object({ tenant: z.string() })
const planParams = z.object({ plan: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected a plan name of 1-64 letters, digits, _ and -') })
const userParams = tenantParams.extend({ username: z.string().min(1) })
const clientParams = tenantParams.extend({ clientId: z.string() })
const keyParams = tenantParams.extend({ keyId: z.string() })
const tenantSettings = {
  plan: z.string().min(1).nullable().optional().describe('a plan of the configuration, or null for none'),
  limits: limitsSchema.optional().describe("the tenant's own limits, overriding its plan key by key"),
  hosts: z.array(z.string().min(1)).optional(),
  anonymous: z.boolean().optional(),
  disabled: z.boolean().optional(),
}
const usageQuery = z.object({
  from: z.string().optional().describe('ISO 8601 time or ms since the epoch; default 24 hours ago'),
  to: z.string().optional().describe('ISO 8601 time or ms since the epoch; default now'),
  format: z.enum(['json', 'csv']).optional(),
  tenant: z.string().optional().describe('operator only: one tenant'),
})

function parseTime (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(ms)) throw new ApiError(400, `${name}: expected an ISO 8601 time or ms since the epoch, got ${JSON.stringify(value)}`)
  return ms
}

function usageRow (r: UsageRecord): Record<string, string | number> {
  const seconds = Math.round(r.sessionMs / 1000)
  return {
    tenant: r.tenant, hour: new Date(r.hour).toISOString(), sessionSeconds: seconds, sessionMinutes: Math.round(seconds / 60 * 100) / 100,
    messagesIn: r.messagesIn, messagesOut: r.messagesOut, bytesIn: r.bytesIn, bytesOut: r.bytesOut,
    peakConnections: r.peakConnections, limitHits: r.limitHits,
  }
}

function csv (rows: Array<Record<string, string | number>>): string {
  const head = ['tenant', 'hour', 'sessionSeconds', 'sessionMinutes', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'peakConnections', 'limitHits']
  return [head.join(','), ...rows.map((r) => head.map((k) => String(r[k] ?? '')).join(','))].join('\n') + '\n'
}

/** fastify on an HTTPS server: the routes see the same request and reply types as on HTTP. */
function httpsFactory (tls: SecureContextOptions): FastifyServerFactory {
  return (handler) => https.createServer({ ...tls }, handler)
}

export async function buildAdminServer (deps: AdminDeps): Promise<FastifyInstance> {
  const { control, gateway, store, meter, metrics, log } = deps
  const { tls } = deps
  const app = Fastify({
    logger: false,
    bodyLimit: 256 * 1024,
    forceCloseConnections: true,
    ...(tls !== undefined ? { serverFactory: httpsFactory(tls) } : {}),
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  app.decorateRequest('principal', null)
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'mqtt-tenant-gateway admin API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the operator token or a tenant API key' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  })

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (err instanceof ApiError) return reply.code(err.statusCode).send({ statusCode: err.statusCode, error: statusText(err.statusCode), message: err.message })
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = (path: string): string => [err.validationContext ?? 'request', ...path.split('/').filter(Boolean)].join('.')
      const message = err.validation.map((v) => `${where(v.instancePath)}: ${v.message}`).join('; ')
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message })
    }
    const code = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (code === 500) log.error({ err }, 'admin API error')
    return reply.code(code).send({ statusCode: code, error: statusText(code), message: code === 500 ? 'internal error' : err.message })
  })
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no such route' }))

  // ---- who is asking --------------------------------------------------------------------------

  /** The bearer token sent, if any. */
  const tokenOf = (req: FastifyRequest): string | undefined => /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1]
  const principalOf = async (token: string): Promise<Principal | null> => {
    if (tokenMatches(deps.operatorToken(), token)) return { kind: 'operator' }
    const parsed = parseApiKey(token)
    if (parsed === undefined) return null
    const record = await store.apiKey(parsed.id)
    if (record === undefined || !secretMatches(record, parsed.secret) || !control.exists(record.tenant)) return null
    return { kind: 'tenant', tenant: record.tenant, keyId: record.id }
  }
  const open = new Set(['/api/v1/health', '/api/v1/ready', '/api/v1/openapi.json'])
  // Wrong tokens are throttled per source address like MQTT logins (auth.maxFailuresPerMinute, then
  // auth.cooldown; counted apart from them), so an operator token cannot be guessed at HTTP speed.
  const { maxFailuresPerMinute, cooldown } = control.config.auth
  const failures = memoryThrottle(maxFailuresPerMinute, cooldown)
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0] ?? ''
    if (!(path.startsWith('/api/') || path === '/metrics') || open.has(path)) return
    const token = tokenOf(req)
    if (token !== undefined && await failures.blocked(req.ip)) throw new ApiError(429, 'too many wrong credentials from this address; try again later')
    req.principal = token === undefined ? null : await principalOf(token)
    if (req.principal === null) {
      if (token !== undefined) await failures.fail(req.ip)
      throw new ApiError(401, 'missing or invalid credentials: send Authorization: Bearer <operator token or tenant API key>')
    }
  })
  const principal = (req: FastifyRequest): Principal => req.principal as Principal
  /** The tenant named in the URL, if the caller may see it; 404 alike for unknown and foreign tenants. */
  const visible = (req: FastifyRequest, tenant: string): string => {
    const p = principal(req)
    if ((p.kind === 'tenant' && p.tenant !== tenant) || !control.exists(tenant)) throw new ApiError(404, NOT_FOUND)
    return tenant
  }
  const knownPlan = (plan: string | null | undefined): void => {
    const plans = Object.keys(control.config.plans)
    if (typeof plan === 'string' && !plans.includes(plan)) throw new ApiError(400, `unknown plan ${JSON.stringify(plan)} (plans: ${plans.join(', ') || 'none'})`)
  }
  const operatorOnly = (req: FastifyRequest): void => {
    if (principal(req).kind !== 'operator') throw new ApiError(403, 'this needs the operator token')
  }

  // ---- views ----------------------------------------------------------------------------------

  const tenantView = (id: string): Record<string, unknown> => {
    const cfg = control.config
    const t = cfg.tenants[id]
    if (t === undefined) throw new ApiError(404, NOT_FOUND)
    return {
      id,
      plan: t.plan ?? null,
      upstream: t.upstream ?? null,
      limits: t.limits,
      effectiveLimits: effectiveLimits(cfg, id),
      hosts: t.hosts,
      anonymous: t.anonymous,
      disabled: t.disabled,
      users: Object.keys(t.users).length,
      aclRules: t.acl?.length ?? null,
      ...control.source(id),
      connections: gateway.connections(id),
      subscriptions: gateway.subscriptions(id),
    }
  }
  const planView = (name: string, limits: Limits): Record<string, unknown> => ({ name, limits, source: control.planSource(name) })
  /** Stores the API's version of one user (null: deleted through the API); the tenant's other users stay. */
  const putUser = (tenant: string, username: string, user: UserConfig | null): Promise<void> =>
    control.change(tenant, (c) => ({ ...c, users: { ...c.users, [username]: user } }))
  const userOf = (tenant: string, username: string): UserConfig => {
    const u = control.config.tenants[tenant]?.users[username]
    if (u === undefined) throw new ApiError(404, 'user not found')
    return u
  }

  const api = app.withTypeProvider<ZodTypeProvider>()
  const v1 = '/api/v1'

  // ---- health ---------------------------------------------------------------------------------

  api.get(`${v1}/health`, { schema: { summary: 'liveness: the process answers', security: [] } }, async () => ({ status: 'ok', uptimeSeconds: Math.round(process.uptime()) }))
  api.get(`${v1}/ready`, { schema: { summary: 'readiness: listeners up and the default upstream broker reachable (named upstreams reported, not required)', security: [] } }, async (_req, reply) => {
    const [upstream, named] = await Promise.all([gateway.upstreamReachable(), gateway.namedUpstreamsReachable()])
    const word = (ok: boolean): string => ok ? 'reachable' : 'unreachable'
    const upstreams = Object.fromEntries(Object.entries(named).map(([name, ok]) => [name, word(ok)]))
    return reply.code(upstream ? 200 : 503).send({ ready: upstream, upstream: word(upstream), ...(Object.keys(upstreams).length > 0 ? { upstreams } : {}) })
  })
  app.get(`${v1}/openapi.json`, { schema: { hide: true } }, async () => app.swagger())

  // ---- tenants --------------------------------------------------------------------------------

  api.get(`${v1}/tenants`, { schema: { summary: 'tenants: all for the operator, its own for a tenant key' } }, async (req) => {
    const p = principal(req)
    const ids = p.kind === 'tenant' ? [p.tenant] : Object.keys(control.config.tenants).sort()
    return ids.map(tenantView)
  })
  api.get(`${v1}/plans`, { schema: { summary: 'the plans, with their limits and where they come from (operator)' } }, async (req) => {
    operatorOnly(req)
    return Object.entries(control.config.plans).map(([name, limits]) => planView(name, limits))
  })
  api.put(`${v1}/plans/:plan`, {
    schema: { summary: 'create or replace a plan (operator); its limits apply live to every tenant on it', params: planParams, body: z.strictObject({ limits: limitsSchema }) },
  }, async (req, reply) => {
    operatorOnly(req)
    const { plan } = req.params
    const existed = Object.hasOwn(control.config.plans, plan)
    await control.changePlan(plan, req.body.limits)
    log.info({ plan }, existed ? 'plan changed through the admin API' : 'plan created through the admin API')
    return reply.code(existed ? 200 : 201).send(planView(plan, req.body.limits))
  })
  api.delete(`${v1}/plans/:plan`, { schema: { summary: 'delete a plan no tenant uses (operator)', params: planParams } }, async (req, reply) => {
    operatorOnly(req)
    const { plan } = req.params
    if (!Object.hasOwn(control.config.plans, plan)) throw new ApiError(404, 'plan not found')
    await control.changePlan(plan, null)
    log.info({ plan }, 'plan deleted through the admin API')
    return reply.code(204).send()
  })
  api.post(`${v1}/tenants`, {
    schema: { summary: 'create a tenant (operator)', body: z.strictObject({ id: tenantId, ...tenantSettings }) },
  }, async (req, reply) => {
    operatorOnly(req)
    const { id, ...settings } = req.body
    if (control.exists(id)) throw new ApiError(409, `tenant ${id} exists`)
    knownPlan(settings.plan)
    await control.change(id, () => ({ created: true, ...settings }))
    log.info({ tenant: id }, 'tenant created through the admin API')
    return reply.code(201).send(tenantView(id))
  })
  api.get(`${v1}/tenants/:tenant`, { schema: { summary: 'a tenant with its effective limits and current use', params: tenantParams } }, async (req) => tenantView(visible(req, req.params.tenant)))
  api.patch(`${v1}/tenants/:tenant`, {
    schema: { summary: 'change plan, limits, hosts, anonymous or disabled (operator); applies live', params: tenantParams, body: z.strictObject(tenantSettings) },
  }, async (req) => {
    const id = visible(req, req.params.tenant)
    operatorOnly(req)
    knownPlan(req.body.plan)
    await control.change(id, (c) => ({ ...c, ...req.body }))
    return tenantView(id)
  })
  for (const [action, disabled] of [['disable', true], ['enable', false]] as const) {
    api.post(`${v1}/tenants/:tenant/${action}`, { schema: { summary: `${action} a tenant (operator)${disabled ? ': its clients are disconnected' : ''}`, params: tenantParams } }, async (req) => {
      const id = visible(req, req.params.tenant)
      operatorOnly(req)
      await control.change(id, (c) => ({ ...c, disabled }))
      return tenantView(id)
    })
  }
  api.delete(`${v1}/tenants/:tenant`, { schema: { summary: 'delete a tenant (operator): clients disconnected, API keys revoked, usage kept', params: tenantParams } }, async (req, reply) => {
    const id = visible(req, req.params.tenant)
    operatorOnly(req)
    await control.change(id, () => ({ deleted: true }))
    await store.deleteApiKeysOf(id)
    log.info({ tenant: id }, 'tenant deleted through the admin API')
    return reply.code(204).send()
  })

  // ---- users and ACL --------------------------------------------------------------------------

  api.get(`${v1}/tenants/:tenant/users`, { schema: { summary: "the tenant's users (never their passwords)", params: tenantParams } }, async (req) => {
    const id = visible(req, req.params.tenant)
    return Object.entries(control.config.tenants[id]?.users ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([username, u]) => ({ username, acl: u.acl?.map(aclOut) ?? null }))
  })
  api.put(`${v1}/tenants/:tenant/users/:username`, {
    schema: {
      summary: 'create or replace a user (the password is stored hashed; without one the user logs in only with a client certificate)',
      params: userParams,
      body: z.strictObject({ password: z.string().min(1).optional(), acl: z.array(aclRuleSchema).optional() }),
    },
  }, async (req, reply) => {
    const id = visible(req, req.params.tenant)
    const { username } = req.params
    const existed = control.config.tenants[id]?.users[username] !== undefined
    const user: UserConfig = {
      ...(req.body.password !== undefined ? { password: await hashPassword(req.body.password) } : {}),
      ...(req.body.acl !== undefined ? { acl: req.body.acl } : {}),
    }
    await putUser(id, username, user)
    return reply.code(existed ? 200 : 201).send({ username, acl: user.acl?.map(aclOut) ?? null })
  })
  api.put(`${v1}/tenants/:tenant/users/:username/password`, {
    schema: { summary: "set a user's password", params: userParams, body: z.strictObject({ password: z.string().min(1) }) },
  }, async (req, reply) => {
    const id = visible(req, req.params.tenant)
    const { username } = req.params
    const user = { ...userOf(id, username), password: await hashPassword(req.body.password) }
    await putUser(id, username, user)
    return reply.code(204).send()
  })
  api.delete(`${v1}/tenants/:tenant/users/:username`, { schema: { summary: 'delete a user', params: userParams } }, async (req, reply) => {
    const id = visible(req, req.params.tenant)
    const { username } = req.params
    userOf(id, username)
    await putUser(id, username, null)
    return reply.code(204).send()
  })
  const aclBody = z.strictObject({ rules: z.array(aclRuleSchema).nullable().describe('null: no ACL (everything in the namespace allowed, if no rule anywhere)') })
  api.get(`${v1}/tenants/:tenant/acl`, { schema: { summary: "the tenant's ACL rules (first match wins, after the user's)", params: tenantParams } }, async (req) => {
    const id = visible(req, req.params.tenant)
    return { rules: control.config.tenants[id]?.acl?.map(aclOut) ?? null }
  })
  api.put(`${v1}/tenants/:tenant/acl`, { schema: { summary: "replace the tenant's ACL rules", params: tenantParams, body: aclBody } }, async (req) => {
    const id = visible(req, req.params.tenant)
    await control.change(id, (c) => ({ ...c, acl: req.body.rules }))
    return { rules: req.body.rules?.map(aclOut) ?? null }
  })
  api.get(`${v1}/tenants/:tenant/users/:username/acl`, { schema: { summary: "a user's own ACL rules", params: userParams } }, async (req) => {
    const id = visible(req, req.params.tenant)
    return { rules: userOf(id, req.params.username).acl?.map(aclOut) ?? null }
  })
  api.put(`${v1}/tenants/:tenant/users/:username/acl`, { schema: { summary: "replace a user's own ACL rules", params: userParams, body: aclBody } }, async (req) => {
    const id = visible(req, req.params.tenant)
    const { username } = req.params
    const { acl: _old, ...rest } = userOf(id, username)
    const user = { ...rest, ...(req.body.rules !== null ? { acl: req.body.rules } : {}) }
    await putUser(id, username, user)
    return { rules: req.body.rules?.map(aclOut) ?? null }
  })

  // ---- API keys -------------------------------------------------------------------------------

  api.get(`${v1}/tenants/:tenant/keys`, { schema: { summary: "the tenant's API keys (ids and labels only)", params: tenantParams } }, async (req) => {
    const id = visible(req, req.params.tenant)
    return (await store.apiKeys(id)).map(({ id: keyId, label, createdAt }) => ({ id: keyId, label, createdAt }))
  })
  api.post(`${v1}/tenants/:tenant/keys`, {
    schema: { summary: 'create a tenant API key (operator); the key is shown once', params: tenantParams, body: z.strictObject({ label: z.string().max(200).optional() }).nullish() },
  }, async (req, reply) => {
    const id = visible(req, req.params.tenant)
    operatorOnly(req)
    const { key, record } = newApiKey(id, req.body?.label ?? '')
    await store.addApiKey(record)
    log.info({ tenant: id, keyId: record.id }, 'tenant API key created')
    return reply.code(201).send({ id: record.id, tenant: id, label: record.label, createdAt: record.createdAt, key })
  })
  api.delete(`${v1}/tenants/:tenant/keys/:keyId`, { schema: { summary: 'revoke an API key', params: keyParams } }, async (req, reply) => {
    const id = visible(req, req.params.tenant)
    const record = await store.apiKey(req.params.keyId)
    if (record === undefined || record.tenant !== id) throw new ApiError(404, 'key not found')
    await store.deleteApiKey(record.id)
    return reply.code(204).send()
  })

  // ---- connected clients ----------------------------------------------------------------------

  const clientOf = (tenant: string, clientId: string): ClientInfo => {
    const c = gateway.clients(tenant).find((x) => x.clientId === clientId)
    if (c === undefined) throw new ApiError(404, 'client not connected')
    return c
  }
  api.get(`${v1}/tenants/:tenant/clients`, { schema: { summary: "the tenant's connected clients", params: tenantParams } }, async (req) => {
    const id = visible(req, req.params.tenant)
    return gateway.clients(id).sort((a, b) => a.clientId.localeCompare(b.clientId))
  })
  api.get(`${v1}/tenants/:tenant/clients/:clientId`, { schema: { summary: 'one connected client', params: clientParams } }, async (req) => clientOf(visible(req, req.params.tenant), req.params.clientId))
  const kick = async (req: FastifyRequest<{ Params: z.infer<typeof clientParams> }>, reply: FastifyReply): Promise<FastifyReply> => {
    const id = visible(req, req.params.tenant)
    clientOf(id, req.params.clientId)
    gateway.kick(id, req.params.clientId)
    return reply.code(204).send()
  }
  api.delete(`${v1}/tenants/:tenant/clients/:clientId`, { schema: { summary: 'kick a client (MQTT 5: DISCONNECT 0x98 Administrative action)', params: clientParams } }, kick)
  api.post(`${v1}/tenants/:tenant/clients/:clientId/kick`, { schema: { summary: 'kick a client (same as DELETE)', params: clientParams } }, kick)

  // ---- usage ----------------------------------------------------------------------------------

  const usage = async (req: FastifyRequest, reply: FastifyReply, query: z.infer<typeof usageQuery>, tenant: string | undefined): Promise<FastifyReply> => {
    const now = Date.now()
    const to = parseTime(query.to, now, 'to')
    const from = parseTime(query.from, now - 24 * HOUR_MS, 'from')
    // What the meter holds but has not written yet belongs in the answer too.
    await meter.flush()
    // An hour is in the range when it overlaps [from, to).
    const rows = (await store.usage({ ...(tenant !== undefined ? { tenant } : {}), from: hourStart(from), to })).map(usageRow)
    const wantsCsv = query.format === 'csv' || (query.format === undefined && (req.headers.accept ?? '').includes('text/csv'))
    if (wantsCsv) return reply.type('text/csv; charset=utf-8').send(csv(rows))
    return reply.send({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), rows })
  }
  api.get(`${v1}/usage`, { schema: { summary: 'usage per tenant per hour (operator: all tenants; tenant key: its own)', querystring: usageQuery } }, async (req, reply) => {
    const p = principal(req)
    let tenant = req.query.tenant
    if (p.kind === 'tenant') {
      if (tenant !== undefined && tenant !== p.tenant) throw new ApiError(404, NOT_FOUND)
      tenant = p.tenant
    }
    return usage(req, reply, req.query, tenant)
  })
  api.get(`${v1}/tenants/:tenant/usage`, { schema: { summary: "the tenant's usage per hour", params: tenantParams, querystring: usageQuery.omit({ tenant: true }) } }, async (req, reply) => {
    const id = visible(req, req.params.tenant)
    return usage(req, reply, req.query, id)
  })

  // ---- metrics and UI -------------------------------------------------------------------------

  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    operatorOnly(req)
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
  for (const [path, file] of uiFiles()) {
    app.get(path, { schema: { hide: true } }, async (_req, reply) => reply.type(file.type).header('cache-control', 'no-cache').send(file.body))
  }

  return app
}

function statusText (code: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests', 500: 'Internal Server Error' } as Record<number, string>)[code] ?? 'Error'
}
