// What the CONNECT steps (packets/connect.ts) need: the gateway's narrow surface and the session as it
// is before CONNACK. Interfaces only, so the steps and the session do not import each other.
import type { Duplex } from 'node:stream'
import type { ConnackPacket } from '../codec.js'
import type { ListenerConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import type { ProtocolVersion, ReasonName } from '../reason-codes.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import type { AuthRequest, AuthResult } from '../tenancy/auth.js'
import type { UpstreamTarget } from '../upstream/connect.js'
import type { SessionPolicy } from '../policy/session-policy.js'
import type { SessionIO } from './connected.js'

/** What connecting needs from the gateway around it. */
export interface ConnectHost {
  readonly log: Logger
  authenticate(req: AuthRequest): Promise<AuthResult>
  tenant(id: string): TenantRuntime | undefined
  upstreamFor(tenant: TenantRuntime): UpstreamTarget
  /** admission (connection quotas and rates): a refusal, or the policy the session keeps until it ends */
  admit(tenant: TenantRuntime): Promise<SessionPolicy | ReasonName>
  /** how long the broker took to answer the upstream CONNECT (seconds), for the metrics */
  upstreamConnected?: (seconds: number, ok: boolean) => void
}

export interface ConnectionMeta {
  readonly listener: ListenerConfig
  readonly remoteAddress: string
  readonly remotePort: number
  /** the load balancer's address, when the client's came in a PROXY protocol header */
  readonly via?: string
  /**
   * mutual TLS listeners: the verified client certificate's CN ('' when it has none), which stands for the username and
   * password
   */
  readonly certificateName?: string
  /** TLS SNI host name, when the listener is TLS and the client sent one */
  readonly sniHost?: string
}

/**
 * The client's side of a session: a TCP or TLS socket, or a WebSocket carried as a stream
 * (listeners/websocket.ts), whose TCP keep-alive is its underlying socket's.
 */
export type ClientStream = Duplex & { setKeepAlive?: (enable: boolean, initialDelay: number) => unknown }

/** The session between its CONNECT and its CONNACK, as the connect steps see it. */
export interface Connecting extends SessionIO {
  readonly host: ConnectHost
  readonly meta: ConnectionMeta
  /** false once the session has ended (refused, or the client left with nothing to carry) */
  readonly stillConnecting: boolean
  version: ProtocolVersion
  /** the tenant and user authentication found */
  identified(tenant: TenantRuntime, user: string | undefined): void
  /** admitted under `policy`, which the session gives back exactly once when it ends */
  admitted(policy: SessionPolicy): void
  /** the tenant-local client ID, given or generated */
  named(clientId: string): void
  /** opens the upstream, sends the mounted CONNECT and resolves with the broker's CONNACK */
  dialUpstream(target: UpstreamTarget, connectBytes: Buffer): Promise<ConnackPacket | Error>
  /**
   * CONNACK with a refusal (v3: close without one when it has no code), then close; `details` go on the
   * refusal's one log line (the failed login's cause, the limit that refused).
   */
  refuseConnect(reason: ReasonName, why: string, details?: Record<string, unknown>, reasonString?: string): false
}
