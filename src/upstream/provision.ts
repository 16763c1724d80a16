// mosquitto dynamic security provisioning (`upstream.provision: { type: mosquitto-dynsec }`): the broker
// holds the second wall — one client per tenant that may touch only the tenant's prefix — and the
// gateway keeps it in step with its tenants through mosquitto's own $CONTROL/dynamic-security/v1 API,
// so a tenant created through the admin API or a reload can connect at once, and a deleted one's
// broker client goes. Only roles named `mtg-tenant-…` (and their clients) are the gateway's to change.
import { randomBytes } from 'node:crypto'
import type { GatewayConfig, UpstreamConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import { mountFilter, namespaceFor } from '../tenancy/namespace.js'
import { dialBroker, type BrokerLink } from './broker-link.js'
import { upstreamCredentials, upstreamTarget, type UpstreamTarget } from './connect.js'

const CONTROL = '$CONTROL/dynamic-security/v1'
const ROLE_PREFIX = 'mtg-tenant-'
/** One pass (connect, every command, disconnect) must finish within this, or it is abandoned and logged. */
const PASS_TIMEOUT_MS = 10_000
/** What a tenant's role allows, on its prefix; dynsec denies the rest by default for sending and subscribing. */
const ACL_TYPES = ['publishClientSend', 'publishClientReceive', 'subscribePattern', 'unsubscribePattern'] as const

interface Acl {
  acltype: string
  topic: string
  allow: boolean
  priority?: number
}
interface Response {
  command: string
  error?: string
  data?: Record<string, unknown>
  correlationData?: string
}
type Command = Record<string, unknown> & { command: string }

/** One broker's desired state: its tenants with their broker user, password and ACL topic. */
export interface TenantAccount {
  tenant: string
  username: string
  password: string
  topic: string
}

/** The broker user of tenant `id`: the upstream username template's value (the schema made it per tenant). */
function brokerCredentials(upstream: UpstreamConfig, id: string): { username: string; password: string } {
  const creds = upstreamCredentials(upstream, { tenant: id, username: undefined, clientId: '' })
  return { username: creds.username ?? id, password: creds.password?.toString() ?? '' }
}

/** The tenants placed on `name` (none: the default upstream) as the broker should know them. */
export function accountsFor(
  config: GatewayConfig,
  name: string | undefined,
  upstream: UpstreamConfig,
): TenantAccount[] {
  const out: TenantAccount[] = []
  for (const [id, tenant] of Object.entries(config.tenants)) {
    if (tenant.upstream !== name) continue
    const ns = namespaceFor(id, config.tenancy.namespace)
    out.push({ tenant: id, ...brokerCredentials(upstream, id), topic: mountFilter(ns, '#') ?? `${id}/#` })
  }
  return out.sort((a, b) => a.tenant.localeCompare(b.tenant))
}

/** A dynsec session: commands go out in one PUBLISH each, answers are matched by correlationData. */
class Dynsec {
  private readonly waiting = new Map<string, (r: Response) => void>()
  constructor(private readonly link: BrokerLink) {
    link.onMessage((_topic, payload) => {
      let body: { responses?: Response[] }
      try {
        body = JSON.parse(payload.toString()) as { responses?: Response[] }
      } catch {
        return
      }
      for (const r of body.responses ?? []) {
        const done = r.correlationData === undefined ? undefined : this.waiting.get(r.correlationData)
        if (done !== undefined) {
          this.waiting.delete(r.correlationData as string)
          done(r)
        }
      }
    })
  }

  send(command: Command): Promise<Response> {
    const correlationData = randomBytes(8).toString('hex')
    return new Promise((resolve, reject) => {
      this.waiting.set(correlationData, resolve)
      this.link.gone.then(() => reject(new Error('connection to the broker closed')), reject)
      this.link.publish(CONTROL, JSON.stringify({ commands: [{ ...command, correlationData }] }))
    })
  }

  /** Sends and throws on an error the caller did not expect. */
  async must(command: Command, tolerated: RegExp = /^$/): Promise<Response> {
    const r = await this.send(command)
    if (r.error !== undefined && r.error !== '' && !tolerated.test(r.error))
      throw new Error(`${command.command}: ${r.error}`)
    return r
  }
}

export class DynsecProvisioner {
  private readonly target: UpstreamTarget
  constructor(
    private readonly name: string | undefined,
    private readonly upstream: UpstreamConfig,
    private readonly log: Logger,
  ) {
    this.target = upstreamTarget(upstream)
  }

  /** Makes the broker's tenant clients and roles match `config`; logs and returns false when it could not. */
  async apply(config: GatewayConfig): Promise<boolean> {
    const provision = this.upstream.provision
    if (provision === undefined) return true
    const at = { upstream: this.name ?? 'default', address: `${this.target.host}:${this.target.port}` }
    const outcome = await dialBroker(this.target, {
      username: provision.username,
      password: Buffer.from(provision.password),
      timeoutMs: this.target.connectTimeout,
    })
    if (outcome.kind !== 'connected') {
      this.log.error(
        {
          ...at,
          reason:
            outcome.kind === 'refused'
              ? `the broker refused the provisioning login (CONNACK return code ${outcome.returnCode})`
              : outcome.error,
        },
        'broker provisioning failed; tenants keep the broker clients they had',
      )
      return false
    }
    const link = outcome.link
    let timer: NodeJS.Timeout | undefined
    try {
      await link.subscribe(`${CONTROL}/response`)
      const dynsec = new Dynsec(link)
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`not done within ${PASS_TIMEOUT_MS} ms`)), PASS_TIMEOUT_MS)
      })
      const changes = await Promise.race([this.pass(dynsec, accountsFor(config, this.name, this.upstream)), timeout])
      if (changes.length > 0) this.log.info({ ...at, changes }, 'broker clients provisioned')
      return true
    } catch (err) {
      this.log.error(
        { ...at, reason: err instanceof Error ? err.message : String(err) },
        'broker provisioning failed; tenants keep the broker clients they had',
      )
      return false
    } finally {
      clearTimeout(timer)
      link.close()
    }
  }

  private async pass(dynsec: Dynsec, accounts: TenantAccount[]): Promise<string[]> {
    const changes: string[] = []
    const listed = await dynsec.must({ command: 'listRoles', verbose: false, count: -1 })
    const roles = new Set(
      ((listed.data?.roles ?? []) as unknown[]).map((r) =>
        typeof r === 'string' ? r : String((r as { rolename?: unknown }).rolename),
      ),
    )
    const wanted = new Set(accounts.map((a) => ROLE_PREFIX + a.tenant))
    for (const a of accounts) {
      const rolename = ROLE_PREFIX + a.tenant
      const acls: Acl[] = ACL_TYPES.map((acltype) => ({ acltype, topic: a.topic, allow: true }))
      if (!roles.has(rolename)) {
        await dynsec.must({
          command: 'createRole',
          rolename,
          textname: `mqtt-tenant-gateway: tenant ${a.tenant}`,
          acls,
        })
        changes.push(`role ${rolename} created`)
      } else {
        // The namespace pattern may have changed: the role's ACLs are made exactly the wanted ones.
        const role = (await dynsec.must({ command: 'getRole', rolename })).data?.role as { acls?: Acl[] } | undefined
        const have = role?.acls ?? []
        const key = (x: Acl): string => `${x.acltype} ${x.topic} ${String(x.allow)}`
        const wantKeys = new Set(acls.map(key))
        for (const x of have)
          if (!wantKeys.has(key(x)))
            await dynsec.must({ command: 'removeRoleACL', rolename, acltype: x.acltype, topic: x.topic })
        const haveKeys = new Set(have.map(key))
        for (const x of acls)
          if (!haveKeys.has(key(x))) await dynsec.must({ command: 'addRoleACL', rolename, ...x }, /already exists/i)
      }
      const client = await dynsec.send({ command: 'getClient', username: a.username })
      if (client.error !== undefined && client.error !== '') {
        await dynsec.must({
          command: 'createClient',
          username: a.username,
          password: a.password,
          textname: `mqtt-tenant-gateway: tenant ${a.tenant}`,
          roles: [{ rolename }],
        })
        changes.push(`client ${a.username} created`)
        continue
      }
      const clientRoles = (
        (client.data?.client as { roles?: Array<{ rolename: string }> } | undefined)?.roles ?? []
      ).map((r) => r.rolename)
      if (!clientRoles.includes(rolename)) {
        await dynsec.must({ command: 'addClientRole', username: a.username, rolename })
        changes.push(`client ${a.username} given ${rolename}`)
      }
      // dynsec cannot show a password, and setting one disconnects the client's connections: try it.
      if (!(await this.passwordWorks(a))) {
        await dynsec.must({ command: 'setClientPassword', username: a.username, password: a.password })
        changes.push(`client ${a.username} password set`)
      }
    }
    for (const rolename of roles) {
      if (!rolename.startsWith(ROLE_PREFIX) || wanted.has(rolename)) continue
      const { username } = brokerCredentials(this.upstream, rolename.slice(ROLE_PREFIX.length))
      await dynsec.must({ command: 'deleteClient', username }, /not found/i)
      await dynsec.must({ command: 'deleteRole', rolename }, /not found/i)
      changes.push(`tenant ${rolename.slice(ROLE_PREFIX.length)} removed`)
    }
    return changes
  }

  private async passwordWorks(a: TenantAccount): Promise<boolean> {
    const outcome = await dialBroker(this.target, {
      username: a.username,
      password: Buffer.from(a.password),
      timeoutMs: this.target.connectTimeout,
    })
    if (outcome.kind === 'connected') outcome.link.close()
    return outcome.kind === 'connected'
  }
}

/** A provisioner for each broker of `config` that asks for one. */
export function provisioners(config: GatewayConfig, log: Logger): DynsecProvisioner[] {
  const out: DynsecProvisioner[] = []
  if (config.upstream.provision !== undefined) out.push(new DynsecProvisioner(undefined, config.upstream, log))
  for (const [name, u] of Object.entries(config.upstreams))
    if (u.provision !== undefined) out.push(new DynsecProvisioner(name, u, log))
  return out
}
