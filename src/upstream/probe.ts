// Readiness as the broker sees it: an MQTT login with the upstream credentials, not a TCP connect, so a
// broker that accepts connections but refuses every login (a wrong UPSTREAM_PASSWORD, a passwd file
// not reloaded) takes the gateway out of its load balancer instead of passing every device to a refusal.
import { randomBytes } from 'node:crypto'
import type { GatewayConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import { dialBroker } from './broker-link.js'
import { upstreamCredentials, type CredentialFields, type UpstreamTarget } from './connect.js'

/** How long the probe waits for the CONNACK: a load balancer polls, so keep under its interval. */
const PROBE_TIMEOUT_MS = 2000

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly why: string }

/**
 * Whom the probe logs in as on the broker `upstream` (none: the default one): the first enabled tenant
 * placed there, by ID, and its first user, so templates like "{tenant}" or "{tenant}.{username}" give
 * a name the broker knows. Undefined when no tenant is there: then any CONNACK shows the broker is up.
 */
export function probeFields(config: GatewayConfig, upstream: string | undefined): CredentialFields | undefined {
  const ids = Object.keys(config.tenants).sort()
  for (const id of ids) {
    const tenant = config.tenants[id]
    if (tenant === undefined || tenant.disabled || tenant.upstream !== upstream) continue
    return {
      tenant: id,
      username: Object.keys(tenant.users)[0],
      clientId: `mtg-ready-${randomBytes(4).toString('hex')}`,
    }
  }
  return undefined
}

export async function probeUpstream(
  target: UpstreamTarget,
  fields: CredentialFields | undefined,
): Promise<ProbeResult> {
  const credentials = fields !== undefined ? upstreamCredentials(target, fields) : {}
  const outcome = await dialBroker(target, {
    timeoutMs: Math.min(PROBE_TIMEOUT_MS, target.connectTimeout),
    ...(fields !== undefined ? { clientId: fields.clientId } : {}),
    ...credentials,
  })
  if (outcome.kind === 'connected') {
    outcome.link.close()
    return { ok: true }
  }
  if (outcome.kind === 'refused') {
    if (fields === undefined) return { ok: true } // no tenant to log in as: the broker answered MQTT
    return {
      ok: false,
      why: `the broker refused the login of tenant ${fields.tenant} (CONNACK return code ${outcome.returnCode})`,
    }
  }
  return { ok: false, why: outcome.error }
}

/** Probes and logs when a broker's readiness changes (a load balancer polls; the log says it once). */
export class ReadinessProbe {
  private readonly last = new Map<string, boolean>()
  constructor(private readonly log: Logger) {}

  async check(name: string, target: UpstreamTarget, fields: CredentialFields | undefined): Promise<boolean> {
    const result = await probeUpstream(target, fields)
    const was = this.last.get(name)
    this.last.set(name, result.ok)
    if (was !== result.ok) {
      const at = { upstream: name, address: `${target.host}:${target.port}` }
      if (result.ok) {
        if (was === false) this.log.info(at, 'upstream broker ready again')
      } else this.log.warn({ ...at, reason: result.why }, 'upstream broker not ready')
    }
    return result.ok
  }
}
