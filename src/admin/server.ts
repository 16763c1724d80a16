// The admin HTTP API (/api/v1), the web UI (/) and Prometheus metrics (/metrics) on their own listener.
// Who may see what: the operator token sees every tenant; a tenant API key sees its own tenant only,
// and anything of another tenant answers 404 exactly like a tenant that does not exist. Each route
// declares its access (see access.ts); each resource is a plugin of its own under routes/.
import { STATUS_CODES } from 'node:http'
import https from 'node:https'
import type { SecureContextOptions } from 'node:tls'
import fastifySwagger from '@fastify/swagger'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerFactory } from 'fastify'
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod'
import type { Gateway } from '../gateway.js'
import type { Logger } from '../log.js'
import type { UsageMeter } from '../metering/meter.js'
import type { Store } from '../store/store.js'
import { declareAccess } from './access.js'
import { ApiError, type TenantControl } from './control.js'
import type { GatewayMetrics } from './metrics.js'
import type { AdminCluster, RouteDeps } from './routes/deps.js'
import { aclRoutes } from './routes/acl.js'
import { clientRoutes } from './routes/clients.js'
import { healthRoutes } from './routes/health.js'
import { keyRoutes } from './routes/keys.js'
import { metricsRoutes } from './routes/metrics.js'
import { planRoutes } from './routes/plans.js'
import { tenantRoutes } from './routes/tenants.js'
import { uiRoutes } from './routes/ui.js'
import { usageRoutes } from './routes/usage.js'
import { userRoutes } from './routes/users.js'
import { limitTenantWrites } from './write-limit.js'

export type { Principal } from './access.js'

export interface AdminDeps {
  /** read per request, so a reload can change it */
  operatorToken: () => string
  control: TenantControl
  gateway: Gateway
  store: Store
  meter: UsageMeter
  metrics: GatewayMetrics
  log: Logger
  cluster?: AdminCluster | undefined
  /** serve HTTPS with this certificate and key */
  tls?: SecureContextOptions
}

/** fastify on an HTTPS server: the routes see the same request and reply types as on HTTP. */
function httpsFactory(tls: SecureContextOptions): FastifyServerFactory {
  return (handler) => https.createServer({ ...tls }, handler)
}

const body = (code: number, message: string): { statusCode: number; error: string; message: string } => ({
  statusCode: code,
  error: STATUS_CODES[code] ?? 'Error',
  message,
})

export async function buildAdminServer(deps: AdminDeps): Promise<FastifyInstance> {
  const { log, tls } = deps
  const app = Fastify({
    logger: false,
    bodyLimit: 256 * 1024,
    forceCloseConnections: true,
    ...(tls !== undefined ? { serverFactory: httpsFactory(tls) } : {}),
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'mqtt-tenant-gateway admin API', version: '1' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'the operator token or a tenant API key' },
        },
      },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  })

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof ApiError) return reply.code(err.statusCode).send(body(err.statusCode, err.message))
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = (path: string): string =>
        [err.validationContext ?? 'request', ...path.split('/').filter(Boolean)].join('.')
      const message = err.validation.map((v) => `${where(v.instancePath)}: ${v.message}`).join('; ')
      return reply.code(400).send(body(400, message))
    }
    const code = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (code === 500) log.error({ err }, 'admin API error')
    return reply.code(code).send(body(code, code === 500 ? 'internal error' : err.message))
  })
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(body(404, 'no such route')))

  // Before any route: every route registered from here on must say who may call it.
  declareAccess(app, deps)
  limitTenantWrites(app)

  const routeDeps: RouteDeps = deps
  await app.register(
    async (v1) => {
      const resources = [
        healthRoutes,
        tenantRoutes,
        planRoutes,
        userRoutes,
        aclRoutes,
        keyRoutes,
        clientRoutes,
        usageRoutes,
      ]
      for (const plugin of resources) await v1.register(plugin, routeDeps)
    },
    { prefix: '/api/v1' },
  )
  await app.register(metricsRoutes, routeDeps)
  await app.register(uiRoutes, routeDeps)
  return app
}
