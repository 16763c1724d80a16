// Dialing the broker: one upstream connection per client, so sessions, QoS, retained messages and
// wills stay the broker's job. A tenant's broker is the default `upstream`, or one of the named
// `upstreams` it is placed on (`tenants.X.upstream`), so one gateway can spread tenants over brokers.
import net from 'node:net'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import type { GatewayConfig, UpstreamConfig } from '../config/schema.js'

export interface UpstreamTarget {
  readonly host: string
  readonly port: number
  readonly tls: boolean
  readonly ca?: Buffer
  readonly rejectUnauthorized: boolean
  /** templates with {tenant}, {username}, {clientId} */
  readonly username?: string
  readonly password?: string
  /** bounds the TCP connect and the CONNACK, in ms */
  readonly connectTimeout: number
  /** false for `protocol: 3.1.1` and the embedded aedes: MQTT 5 clients are refused with 0x84 */
  readonly v5: boolean
}

/** Every broker of a configuration: the default and the named ones. */
export interface UpstreamTargets {
  readonly default: UpstreamTarget
  readonly named: ReadonlyMap<string, UpstreamTarget>
}

export function upstreamTargets(config: GatewayConfig, embedded?: { host: string; port: number }): UpstreamTargets {
  return {
    default: upstreamTarget(config.upstream, embedded),
    named: new Map(Object.entries(config.upstreams).map(([name, u]) => [name, upstreamTarget(u)])),
  }
}

/** The broker a tenant placed on `name` (none: the default) is carried to. */
export function targetOf(targets: UpstreamTargets, name: string | undefined): UpstreamTarget {
  return (name === undefined ? undefined : targets.named.get(name)) ?? targets.default
}

/** The target for `upstream`; `embedded` resolves to the in-process broker's loopback address. */
export function upstreamTarget(upstream: UpstreamConfig, embedded?: { host: string; port: number }): UpstreamTarget {
  let host: string
  let port: number
  let secure = false
  if (upstream.url === 'embedded') {
    if (embedded === undefined) throw new Error('embedded upstream is not running')
    ;({ host, port } = embedded)
  } else {
    const url = new URL(upstream.url)
    secure = url.protocol === 'mqtts:'
    host = url.hostname.replace(/^\[|\]$/g, '')
    port = url.port === '' ? (secure ? 8883 : 1883) : Number(url.port)
  }
  return {
    host,
    port,
    tls: secure,
    ...(upstream.ca !== undefined ? { ca: readFileSync(upstream.ca) } : {}),
    rejectUnauthorized: upstream.rejectUnauthorized,
    ...(upstream.username !== undefined ? { username: upstream.username } : {}),
    ...(upstream.password !== undefined && upstream.password !== '' ? { password: upstream.password } : {}),
    connectTimeout: upstream.connectTimeout,
    v5: upstream.url !== 'embedded' && upstream.protocol !== '3.1.1',
  }
}

export function openUpstream(target: UpstreamTarget): net.Socket {
  const socket = target.tls
    ? tls.connect({
        host: target.host,
        port: target.port,
        servername: net.isIP(target.host) === 0 ? target.host : undefined,
        ...(target.ca !== undefined ? { ca: target.ca } : {}),
        rejectUnauthorized: target.rejectUnauthorized,
      })
    : net.connect({ host: target.host, port: target.port, noDelay: true }) // set once connected, not twice
  if (target.tls) socket.setNoDelay(true)
  return socket
}

export interface CredentialFields {
  tenant: string
  username: string | undefined
  clientId: string
}

function fill(template: string, f: CredentialFields): string {
  return template.replace(/\{(tenant|username|clientId)\}/g, (_m, key: keyof CredentialFields) => f[key] ?? '')
}

/** Username/password sent to the broker, from the upstream templates; none when not configured. */
export function upstreamCredentials(
  target: { readonly username?: string | undefined; readonly password?: string | undefined },
  f: CredentialFields,
): { username?: string; password?: Buffer } {
  return {
    ...(target.username !== undefined ? { username: fill(target.username, f) } : {}),
    ...(target.password !== undefined ? { password: Buffer.from(fill(target.password, f)) } : {}),
  }
}
