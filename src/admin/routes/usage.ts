// Usage per tenant per hour, as JSON or CSV: all tenants for the operator, its own for a tenant key.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { HOUR_MS, hourStart } from '../../metering/meter.js'
import type { UsageRecord } from '../../store/store.js'
import { TENANT_NOT_FOUND, principalOf } from '../access.js'
import { ApiError } from '../control.js'
import type { RouteDeps } from './deps.js'
import { tenantParams } from './tenants.js'

/** The largest time a Date can hold, in ms either side of the epoch (ECMA-262 §21.4.1.1). */
const MAX_DATE_MS = 8.64e15

/** An ISO 8601 time or ms since the epoch, as ms; anything a Date cannot hold is a 400, not a RangeError. */
const time = z.string().transform((value, ctx) => {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS) {
    const message = `expected an ISO 8601 time or ms since the epoch, got ${JSON.stringify(value)}`
    ctx.addIssue({ code: 'custom', message })
    return z.NEVER
  }
  return ms
})

const usageQuery = z.object({
  from: time.optional().describe('ISO 8601 time or ms since the epoch; default 24 hours ago'),
  to: time.optional().describe('ISO 8601 time or ms since the epoch; default now'),
  format: z.enum(['json', 'csv']).optional(),
  tenant: z.string().optional().describe('operator only: one tenant'),
})
type UsageQuery = z.infer<typeof usageQuery>

const COLUMNS = [
  'tenant',
  'hour',
  'sessionSeconds',
  'sessionMinutes',
  'messagesIn',
  'messagesOut',
  'bytesIn',
  'bytesOut',
  'peakConnections',
  'limitHits',
] as const
type Row = Record<(typeof COLUMNS)[number], string | number>

function usageRow(r: UsageRecord): Row {
  const seconds = Math.round(r.sessionMs / 1000)
  return {
    tenant: r.tenant,
    hour: new Date(r.hour).toISOString(),
    sessionSeconds: seconds,
    sessionMinutes: Math.round((seconds / 60) * 100) / 100,
    messagesIn: r.messagesIn,
    messagesOut: r.messagesOut,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    peakConnections: r.peakConnections,
    limitHits: r.limitHits,
  }
}

const csv = (rows: Row[]): string =>
  [COLUMNS.join(','), ...rows.map((r) => COLUMNS.map((k) => String(r[k])).join(','))].join('\n') + '\n'

export const usageRoutes: FastifyPluginAsync<RouteDeps> = async (app, { store, meter }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()

  const usage = async (
    req: FastifyRequest,
    reply: FastifyReply,
    query: UsageQuery,
    tenant: string | undefined,
  ): Promise<FastifyReply> => {
    const now = Date.now()
    const to = query.to ?? now
    const from = query.from ?? now - 24 * HOUR_MS
    // What the meter holds but has not written yet belongs in the answer too.
    await meter.flush()
    // An hour is in the range when it overlaps [from, to).
    const records = await store.usage({ ...(tenant !== undefined ? { tenant } : {}), from: hourStart(from), to })
    const rows = records.map(usageRow)
    const accepts = (req.headers.accept ?? '').includes('text/csv')
    const wantsCsv = query.format === 'csv' || (query.format === undefined && accepts)
    if (wantsCsv) return reply.type('text/csv; charset=utf-8').send(csv(rows))
    return reply.send({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), rows })
  }

  api.get(
    '/usage',
    {
      config: { access: 'tenant' },
      schema: {
        summary: 'usage per tenant per hour (operator: all tenants; tenant key: its own)',
        querystring: usageQuery,
      },
    },
    async (req, reply) => {
      const p = principalOf(req)
      let tenant = req.query.tenant
      if (p.kind === 'tenant') {
        if (tenant !== undefined && tenant !== p.tenant) throw new ApiError(404, TENANT_NOT_FOUND)
        tenant = p.tenant
      }
      return usage(req, reply, req.query, tenant)
    },
  )

  api.get(
    '/tenants/:tenant/usage',
    {
      config: { access: 'tenant' },
      schema: {
        summary: "the tenant's usage per hour",
        params: tenantParams,
        querystring: usageQuery.omit({ tenant: true }),
      },
    },
    async (req, reply) => usage(req, reply, req.query, req.params.tenant),
  )
}
