// Tenant API keys: created by the operator (the key is shown once), listed by id and label, revoked.
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { ApiError } from '../control.js'
import { newApiKey } from '../keys.js'
import type { RouteDeps } from './deps.js'
import { tenantParams } from './tenants.js'

const keyParams = tenantParams.extend({ keyId: z.string() })

export const keyRoutes: FastifyPluginAsync<RouteDeps> = async (app, { store, log }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()

  api.get(
    '/tenants/:tenant/keys',
    {
      config: { access: 'tenant' },
      schema: { summary: "the tenant's API keys (ids and labels only)", params: tenantParams },
    },
    async (req) => {
      const keys = await store.apiKeys(req.params.tenant)
      return keys.map(({ id, label, createdAt }) => ({ id, label, createdAt }))
    },
  )

  api.post(
    '/tenants/:tenant/keys',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'create a tenant API key (operator); the key is shown once',
        params: tenantParams,
        body: z.strictObject({ label: z.string().max(200).optional() }).nullish(),
      },
    },
    async (req, reply) => {
      const id = req.params.tenant
      const { key, record } = newApiKey(id, req.body?.label ?? '')
      await store.addApiKey(record)
      log.info({ tenant: id, keyId: record.id }, 'tenant API key created')
      return reply.code(201).send({ id: record.id, tenant: id, label: record.label, createdAt: record.createdAt, key })
    },
  )

  api.delete(
    '/tenants/:tenant/keys/:keyId',
    {
      config: { access: 'tenant' },
      schema: { summary: 'revoke an API key', params: keyParams },
    },
    async (req, reply) => {
      const record = await store.apiKey(req.params.keyId)
      if (record === undefined || record.tenant !== req.params.tenant) throw new ApiError(404, 'key not found')
      await store.deleteApiKey(record.id)
      return reply.code(204).send()
    },
  )
}
