// Prometheus metrics: every tenant's series, so the operator's only.
import type { FastifyPluginAsync } from 'fastify'
import type { RouteDeps } from './deps.js'

export const metricsRoutes: FastifyPluginAsync<RouteDeps> = async (app, { metrics }) => {
  app.get('/metrics', { config: { access: 'operator' }, schema: { hide: true } }, async (_req, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  )
}
