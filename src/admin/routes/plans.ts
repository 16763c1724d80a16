// Plans: the operator's; a change applies live to every tenant on the plan.
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { limitsSchema, type Limits } from '../../config/schema.js'
import { ApiError } from '../control.js'
import type { RouteDeps } from './deps.js'

const planParams = z.object({
  plan: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected a plan name of 1-64 letters, digits, _ and -'),
})

export const planRoutes: FastifyPluginAsync<RouteDeps> = async (app, { control, log }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()
  const operator = { access: 'operator' } as const
  const planView = (name: string, limits: Limits): Record<string, unknown> => ({
    name,
    limits,
    source: control.planSource(name),
  })

  api.get(
    '/plans',
    {
      config: operator,
      schema: { summary: 'the plans, with their limits and where they come from (operator)' },
    },
    async () => Object.entries(control.config.plans).map(([name, limits]) => planView(name, limits)),
  )

  api.put(
    '/plans/:plan',
    {
      config: operator,
      schema: {
        summary: 'create or replace a plan (operator); its limits apply live to every tenant on it',
        params: planParams,
        body: z.strictObject({ limits: limitsSchema }),
      },
    },
    async (req, reply) => {
      const { plan } = req.params
      const existed = Object.hasOwn(control.config.plans, plan)
      await control.changePlan(plan, req.body.limits)
      log.info({ plan }, existed ? 'plan changed through the admin API' : 'plan created through the admin API')
      return reply.code(existed ? 200 : 201).send(planView(plan, req.body.limits))
    },
  )

  api.delete(
    '/plans/:plan',
    {
      config: operator,
      schema: { summary: 'delete a plan no tenant uses (operator)', params: planParams },
    },
    async (req, reply) => {
      const { plan } = req.params
      if (!Object.hasOwn(control.config.plans, plan)) throw new ApiError(404, 'plan not found')
      await control.changePlan(plan, null)
      log.info({ plan }, 'plan deleted through the admin API')
      return reply.code(204).send()
    },
  )
}
