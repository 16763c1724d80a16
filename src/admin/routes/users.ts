// A tenant's users: listed (never their passwords), created or replaced, deleted. Passwords are hashed
// with scrypt off the event loop; a plan's maxUsers bounds how many a tenant may have.
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { aclRuleSchema, type GatewayConfig, type UserConfig } from '../../config/schema.js'
import { effectiveLimits } from '../../policy/plans.js'
import { hashPassword } from '../../tenancy/passwords.js'
import { ApiError, type TenantControl } from '../control.js'
import { aclBody, aclOut } from './acl.js'
import type { RouteDeps } from './deps.js'
import { tenantParams } from './tenants.js'

/** Names of Object.prototype's members: a user called `__proto__` once logged in and could not be listed. */
const OBJECT_INTERNALS = new Set(Object.getOwnPropertyNames(Object.prototype))

/**
 * A username is a name, never a filter or a path: no control characters, no `+`, `#` or `/` (it can
 * stand for `%u` in ACL rules), and none of the names JavaScript objects already have.
 */
export const username = z
  .string()
  .min(1)
  .max(256)
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\u0000-\u001f\u007f+#/]+$/, 'expected a username without control characters, +, # or /')
  .refine((name) => !OBJECT_INTERNALS.has(name), { message: 'this name is reserved' })

export const userParams = tenantParams.extend({ username })

/**
 * The API's hashes, one at a time. scrypt runs on libuv's thread pool (4 threads by default), where
 * logins verify theirs too: eight password changes at once took every thread and made another
 * tenant's logins wait behind them. One at a time, the API never holds more than one thread.
 */
let hashing: Promise<unknown> = Promise.resolve()
function hashInTurn(password: string): Promise<string> {
  const next = hashing.then(() => hashPassword(password))
  hashing = next.catch(() => {})
  return next
}

/** Stores the API's version of one user (null: deleted through the API); the tenant's other users stay. */
export function putUser(
  control: TenantControl,
  tenant: string,
  name: string,
  user: UserConfig | null,
  check?: (config: GatewayConfig) => void,
): Promise<void> {
  return control.change(tenant, (c) => ({ ...c, users: { ...c.users, [name]: user } }), check)
}

export function userOf(control: TenantControl, tenant: string, name: string): UserConfig {
  const users = control.config.tenants[tenant]?.users
  const u = users !== undefined && Object.hasOwn(users, name) ? users[name] : undefined
  if (u === undefined) throw new ApiError(404, 'user not found')
  return u
}

/** Refuses a change that gives the tenant a user beyond its maxUsers (checked in the serialised change). */
const withinMaxUsers =
  (tenant: string, name: string) =>
  (config: GatewayConfig): void => {
    const max = effectiveLimits(config, tenant).maxUsers
    const users = Object.keys(config.tenants[tenant]?.users ?? {})
    if (max !== undefined && users.length > max) {
      throw new ApiError(
        409,
        `tenant ${tenant} may have at most ${max} users (maxUsers); ` +
          `${JSON.stringify(name)} would be one more: delete a user or raise the limit`,
      )
    }
  }

export const userRoutes: FastifyPluginAsync<RouteDeps> = async (app, { control }) => {
  const api = app.withTypeProvider<ZodTypeProvider>()
  const tenant = { access: 'tenant' } as const

  api.get(
    '/tenants/:tenant/users',
    {
      config: tenant,
      schema: { summary: "the tenant's users (never their passwords)", params: tenantParams },
    },
    async (req) =>
      Object.entries(control.config.tenants[req.params.tenant]?.users ?? {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, u]) => ({ username: name, acl: u.acl?.map(aclOut) ?? null })),
  )

  api.put(
    '/tenants/:tenant/users/:username',
    {
      config: tenant,
      schema: {
        summary:
          'create or replace a user (the password is stored hashed; without one the user logs in only ' +
          'with a client certificate)',
        params: userParams,
        body: z.strictObject({ password: z.string().min(1).optional(), acl: z.array(aclRuleSchema).optional() }),
      },
    },
    async (req, reply) => {
      const { tenant: id, username: name } = req.params
      const users = control.config.tenants[id]?.users ?? {}
      const existed = Object.hasOwn(users, name)
      const user: UserConfig = {
        ...(req.body.password !== undefined ? { password: await hashInTurn(req.body.password) } : {}),
        ...(req.body.acl !== undefined ? { acl: req.body.acl } : {}),
      }
      await putUser(control, id, name, user, existed ? undefined : withinMaxUsers(id, name))
      return reply.code(existed ? 200 : 201).send({ username: name, acl: user.acl?.map(aclOut) ?? null })
    },
  )

  api.put(
    '/tenants/:tenant/users/:username/password',
    {
      config: tenant,
      schema: {
        summary: "set a user's password",
        params: userParams,
        body: z.strictObject({ password: z.string().min(1) }),
      },
    },
    async (req, reply) => {
      const { tenant: id, username: name } = req.params
      userOf(control, id, name)
      const password = await hashInTurn(req.body.password)
      // Read again after the hash: another change may have landed meanwhile.
      await putUser(control, id, name, { ...userOf(control, id, name), password })
      return reply.code(204).send()
    },
  )

  api.delete(
    '/tenants/:tenant/users/:username',
    {
      config: tenant,
      schema: { summary: 'delete a user', params: userParams },
    },
    async (req, reply) => {
      const { tenant: id, username: name } = req.params
      userOf(control, id, name)
      await putUser(control, id, name, null)
      return reply.code(204).send()
    },
  )

  api.get(
    '/tenants/:tenant/users/:username/acl',
    {
      config: tenant,
      schema: { summary: "a user's own ACL rules", params: userParams },
    },
    async (req) => ({ rules: userOf(control, req.params.tenant, req.params.username).acl?.map(aclOut) ?? null }),
  )

  api.put(
    '/tenants/:tenant/users/:username/acl',
    {
      config: tenant,
      schema: { summary: "replace a user's own ACL rules", params: userParams, body: aclBody },
    },
    async (req) => {
      const { tenant: id, username } = req.params
      const { acl: _old, ...rest } = userOf(control, id, username)
      await putUser(control, id, username, { ...rest, ...(req.body.rules !== null ? { acl: req.body.rules } : {}) })
      return { rules: req.body.rules?.map(aclOut) ?? null }
    },
  )
}
