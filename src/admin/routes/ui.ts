// The web UI's files: open, since they hold nothing of any tenant; the page asks for a token and reads
// the API with it.
import type { FastifyPluginAsync } from 'fastify'
import { uiFiles } from '../ui.js'
import type { RouteDeps } from './deps.js'

export const uiRoutes: FastifyPluginAsync<RouteDeps> = async (app) => {
  for (const [path, file] of uiFiles()) {
    app.get(path, { config: { access: 'open' }, schema: { hide: true } }, async (_req, reply) =>
      reply.type(file.type).header('cache-control', 'no-cache').send(file.body),
    )
  }
}
