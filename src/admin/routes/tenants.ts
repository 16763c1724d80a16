// Tenants: listed (all for the operator, its own for a tenant key), read, and changed by the operator.
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { limitsSchema, tenantId } from '../../config/schema.js'
import { effectiveLimits } from '../../policy/plans.js'
import { TENANT_NOT_FOUND, principalOf } from '../access.js'
import { ApiError, type TenantControl } from '../control.js'
import type { RouteDeps } from './deps.js'

export const tenantParams = z.object({ tenant: z.string() })

const tenantSettings = {
  plan: z.string().min(1).nullable().optional().describe('a plan of the configuration, or null for none'),
  limits: limitsSchema.optional().describe("the tenant's own limits, overriding its plan key by key"),
  hosts: z.array(z.string().min(1)).optional(),
  anonymous: z.boolean().optional(),
  disabled: z.boolean().optional(),
}

function knownPlan(control: TenantControl, plan: string | null | undefined): void {
  const plans = Object.keys(control.config.plans)
  if (typeof plan === 'string' && !plans.includes(plan)) {
    throw new ApiError(400, `unknown plan ${JSON.stringify(plan)} (plans: ${plans.join(', ') || 'none'})`)
  }
}

export const tenantRoutes: FastifyPluginAsync<RouteDeps> = async (app, { control, gateway, store, log }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()

  const tenantView = (id: string): Record<string, unknown> => {
    const cfg = control.config
    const t = cfg.tenants[id]
    if (t === undefined) throw new ApiError(404, TENANT_NOT_FOUND)
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

  api.get(
    '/tenants',
    {
      config: { access: 'tenant' },
      schema: { summary: 'tenants: all for the operator, its own for a tenant key' },
    },
    async (req) => {
      const p = principalOf(req)
      const ids = p.kind === 'tenant' ? [p.tenant] : Object.keys(control.config.tenants).sort()
      return ids.map(tenantView)
    },
  )

  api.post(
    '/tenants',
    {
      config: { access: 'operator' },
      schema: { summary: 'create a tenant (operator)', body: z.strictObject({ id: tenantId, ...tenantSettings }) },
    },
    async (req, reply) => {
      const { id, ...settings } = req.body
      if (control.exists(id)) throw new ApiError(409, `tenant ${id} exists`)
      knownPlan(control, settings.plan)
      await control.change(id, () => ({ created: true, ...settings }))
      log.info({ tenant: id }, 'tenant created through the admin API')
      return reply.code(201).send(tenantView(id))
    },
  )

  api.get(
    '/tenants/:tenant',
    {
      config: { access: 'tenant' },
      schema: { summary: 'a tenant with its effective limits and current use', params: tenantParams },
    },
    async (req) => tenantView(req.params.tenant),
  )

  api.patch(
    '/tenants/:tenant',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'change plan, limits, hosts, anonymous or disabled (operator); applies live',
        params: tenantParams,
        body: z.strictObject(tenantSettings),
      },
    },
    async (req) => {
      const id = req.params.tenant
      knownPlan(control, req.body.plan)
      await control.change(id, (c) => ({ ...c, ...req.body }))
      return tenantView(id)
    },
  )

  for (const [action, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    api.post(
      `/tenants/:tenant/${action}`,
      {
        config: { access: 'operator' },
        schema: {
          summary: `${action} a tenant (operator)${disabled ? ': its clients are disconnected' : ''}`,
          params: tenantParams,
        },
      },
      async (req) => {
        const id = req.params.tenant
        await control.change(id, (c) => ({ ...c, disabled }))
        return tenantView(id)
      },
    )
  }

  api.delete(
    '/tenants/:tenant',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'delete a tenant (operator): clients disconnected, API keys revoked, usage kept',
        params: tenantParams,
      },
    },
    async (req, reply) => {
      const id = req.params.tenant
      await control.change(id, () => ({ deleted: true }))
      await store.deleteApiKeysOf(id)
      log.info({ tenant: id }, 'tenant deleted through the admin API')
      return reply.code(204).send()
    },
  )
}
