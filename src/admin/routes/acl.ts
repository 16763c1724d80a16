// A tenant's ACL rules, read and replaced in the YAML's shape (a user's own rules: users.ts).
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { aclRuleSchema, type AclRule } from '../../config/schema.js'
import type { RouteDeps } from './deps.js'
import { tenantParams } from './tenants.js'

/** The YAML's shape of an ACL rule, as the API reads and writes it. */
export const aclOut = (r: AclRule): Record<string, string> => ({ [r.effect]: r.action, topic: r.topic })

export const aclBody = z.strictObject({
  rules: z
    .array(aclRuleSchema)
    .nullable()
    .describe('null: no ACL (everything in the namespace allowed, if no rule anywhere)'),
})

export const aclRoutes: FastifyPluginAsync<RouteDeps> = async (app, { control }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()
  const tenant = { access: 'tenant' } as const

  api.get(
    '/tenants/:tenant/acl',
    {
      config: tenant,
      schema: { summary: "the tenant's ACL rules (first match wins, after the user's)", params: tenantParams },
    },
    async (req) => ({ rules: control.config.tenants[req.params.tenant]?.acl?.map(aclOut) ?? null }),
  )

  api.put(
    '/tenants/:tenant/acl',
    {
      config: tenant,
      schema: { summary: "replace the tenant's ACL rules", params: tenantParams, body: aclBody },
    },
    async (req) => {
      await control.change(req.params.tenant, (c) => ({ ...c, acl: req.body.rules }))
      return { rules: req.body.rules?.map(aclOut) ?? null }
    },
  )
}
