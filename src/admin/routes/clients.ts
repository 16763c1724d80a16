// A tenant's connected clients: listed a page at a time with their subscriptions counted, one client's
// filters on a route of their own (also in pages), and kicked. Every answer is bounded whatever the
// tenant's clients hold (issue #17 item 5: three clients with 1,000 filters of 60 KB once made the list
// 180 MB, and the web UI asked for it every 2 s).
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { byCodePoint, type ClientInfo } from '../client-info.js'
import { ApiError } from '../control.js'
import type { RouteDeps } from './deps.js'
import { tenantParams } from './tenants.js'

export const PAGE = { clients: { default: 100, max: 500 }, subscriptions: { default: 100, max: 1000 } }

const clientParams = tenantParams.extend({ clientId: z.string() })
const clientsQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(PAGE.clients.max)
    .default(PAGE.clients.default)
    .describe(`how many clients to return, 1-${PAGE.clients.max}; default ${PAGE.clients.default}`),
  after: z.string().optional().describe('start after this client ID: the `next` of the previous page'),
})
const subscriptionsQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(PAGE.subscriptions.max)
    .default(PAGE.subscriptions.default)
    .describe(`how many filters to return, 1-${PAGE.subscriptions.max}; default ${PAGE.subscriptions.default}`),
  after: z.string().optional().describe('start after this filter: the `next` of the previous page'),
})

/** One page of `sorted` (ascending by `key`), starting after `after`; `next` names the page's last item. */
function page<T>(
  sorted: T[],
  key: (item: T) => string,
  limit: number,
  after: string | undefined,
): { items: T[]; next: string | null } {
  let start = 0
  if (after !== undefined) while (start < sorted.length && key(sorted[start] as T) <= after) start++
  const items = sorted.slice(start, start + limit)
  const last = items.at(-1)
  return { items, next: start + limit < sorted.length && last !== undefined ? key(last) : null }
}

/** A client as listed; in a cluster, with the name of the gateway it is connected to. */
type Listed = ClientInfo & { gateway?: string }

/** What the API shows of a client: everything but its filters, which are read through their own route. */
const summary = ({ filters: _filters, ...rest }: Listed): Omit<Listed, 'filters'> => rest

export const clientRoutes: FastifyPluginAsync<RouteDeps> = async (app, { gateway }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()
  const tenant = { access: 'tenant' } as const

  // In a cluster the tenant's clients are gathered from every gateway (SPEC §11).
  const clientsOf = async (id: string): Promise<Listed[]> => gateway.registry?.list(id) ?? gateway.clients(id)
  const clientOf = async (id: string, clientId: string): Promise<Listed> => {
    // This gateway's own record first: it alone can list the client's filters.
    const c =
      gateway.clients(id).find((x) => x.clientId === clientId) ??
      (await clientsOf(id)).find((x) => x.clientId === clientId)
    if (c === undefined) throw new ApiError(404, 'client not connected')
    return c
  }

  api.get(
    '/tenants/:tenant/clients',
    {
      config: tenant,
      schema: {
        summary: "the tenant's connected clients by client ID, a page at a time, subscriptions counted",
        params: tenantParams,
        querystring: clientsQuery,
      },
    },
    async (req) => {
      const { limit, after } = req.query
      const all = (await clientsOf(req.params.tenant)).sort((a, b) => byCodePoint(a.clientId, b.clientId))
      const { items, next } = page(all, (c) => c.clientId, limit, after)
      return { total: all.length, clients: items.map(summary), next }
    },
  )

  api.get(
    '/tenants/:tenant/clients/:clientId',
    {
      config: tenant,
      schema: { summary: 'one connected client (its filters: …/subscriptions)', params: clientParams },
    },
    async (req) => summary(await clientOf(req.params.tenant, req.params.clientId)),
  )

  api.get(
    '/tenants/:tenant/clients/:clientId/subscriptions',
    {
      config: tenant,
      schema: {
        summary: "a connected client's filters, a page at a time",
        params: clientParams,
        querystring: subscriptionsQuery,
      },
    },
    async (req) => {
      const { limit, after } = req.query
      const filters = (await clientOf(req.params.tenant, req.params.clientId)).filters
      if (filters === undefined) throw new ApiError(404, 'the client is connected to another gateway')
      const all = filters()
      const { items, next } = page(all, (f) => f, limit, after)
      return { clientId: req.params.clientId, total: all.length, subscriptions: items, next }
    },
  )

  type KickRequest = FastifyRequest<{ Params: z.infer<typeof clientParams> }>
  const kick = async (req: KickRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const { tenant: id, clientId } = req.params
    const kicked =
      gateway.registry !== undefined ? await gateway.registry.kick(id, clientId) : gateway.kick(id, clientId)
    if (kicked === 0) throw new ApiError(404, 'client not connected')
    return reply.code(204).send()
  }
  api.delete(
    '/tenants/:tenant/clients/:clientId',
    {
      config: tenant,
      schema: { summary: 'kick a client (MQTT 5: DISCONNECT 0x98 Administrative action)', params: clientParams },
    },
    kick,
  )
  api.post(
    '/tenants/:tenant/clients/:clientId/kick',
    {
      config: tenant,
      schema: { summary: 'kick a client (same as DELETE)', params: clientParams },
    },
    kick,
  )
}
