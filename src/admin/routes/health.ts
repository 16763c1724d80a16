// Liveness, readiness and the OpenAPI document: open to anyone (a load balancer has no token).
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { RouteDeps } from './deps.js'

export const healthRoutes: FastifyPluginAsync<RouteDeps> = async (app, { gateway, cluster }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()
  const open = { access: 'open' } as const

  api.get(
    '/health',
    { config: open, schema: { summary: 'liveness: the process answers', security: [] } },
    async () => ({ status: 'ok', uptimeSeconds: Math.round(process.uptime()) }),
  )

  api.get(
    '/ready',
    {
      config: open,
      schema: {
        summary:
          'readiness: listeners up and the default upstream broker reachable ' +
          "(named upstreams and the cluster's Redis reported, not required)",
        security: [],
      },
    },
    async (_req, reply) => {
      const [upstream, named] = await Promise.all([gateway.upstreamReachable(), gateway.namedUpstreamsReachable()])
      const word = (ok: boolean): string => (ok ? 'reachable' : 'unreachable')
      const upstreams = Object.fromEntries(Object.entries(named).map(([name, ok]) => [name, word(ok)]))
      return reply.code(upstream ? 200 : 503).send({
        ready: upstream,
        upstream: word(upstream),
        ...(Object.keys(upstreams).length > 0 ? { upstreams } : {}),
        ...(cluster !== undefined ? { cluster: cluster.readiness() } : {}),
      })
    },
  )

  app.get('/openapi.json', { config: open, schema: { hide: true } }, async () => app.swagger())
}
