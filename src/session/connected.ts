// The connected session: one value, created at CONNACK, holding everything the packet handlers need —
// tenant, namespace, ACL, policy, aliases and what is in flight. Before CONNACK there is none, so no
// handler ever checks for a missing tenant or policy.
import { EncodeError, decodePacket, encode, type Frame, type Packet } from '../codec.js'
import type { ConnectionLog } from '../log.js'
import { wireVersion, type ReasonName, type ProtocolVersion } from '../reason-codes.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import type { SessionPolicy } from '../policy/session-policy.js'
import { compileAclCheck, type AclCheck } from './acl-check.js'
import { TopicAliases } from './topic-aliases.js'

/** What the handlers may do with the session's two sockets (the Session implements it). */
export interface SessionIO {
  readonly log: ConnectionLog
  /** raw bytes to the broker; back-pressure stops reading the client */
  toUpstream(bytes: Buffer): void
  /** raw bytes to the client; past its output bound, neither the client nor the broker is read */
  toClient(bytes: Buffer): void
  /**
   * Stops processing the client's packets until `resumeInput` (in order: the ones after wait), while an
   * answer the next packets depend on is on its way (the cluster's count of subscriptions)
   */
  holdInput(): void
  resumeInput(): void
  /** ends the session; `reason` is told to a v5 client in DISCONNECT */
  close(reason: ReasonName | null, why: string, opts?: { clientDisconnected?: boolean }): void
}

/** What the gateway decided for a SUBSCRIBE/UNSUBSCRIBE before forwarding the rest to the broker. */
export interface PendingAck {
  /** per filter of the client's packet: the gateway's own code, or null where the broker's code goes */
  readonly codes: Array<number | null>
  /** the mounted filters forwarded, in order */
  readonly filters: string[]
  /** how many of them the cluster's count of subscriptions granted (SUBSCRIBE only) */
  readonly reserved: number
}

export interface ConnectedInit {
  readonly version: ProtocolVersion
  readonly tenant: TenantRuntime
  readonly user: string | undefined
  readonly clientId: string
  readonly policy: SessionPolicy
  readonly acl: AclCheck
  /** seconds the broker keeps the session after the connection (0: none; Infinity: never) */
  readonly expiry: number
  /** seconds within which a whole packet must come from the client (0: none), as told in CONNACK */
  readonly keepalive: number
}

export class Connected {
  readonly version: ProtocolVersion
  readonly v5: boolean
  /** MQTT 3.1 clients are carried as 3.1.1 (SPEC §5) */
  readonly upstreamVersion: ProtocolVersion
  readonly user: string | undefined
  /** tenant-local, as the device knows it */
  readonly clientId: string
  readonly policy: SessionPolicy
  /** a reload's new snapshot replaces it (see retenant) */
  tenant: TenantRuntime
  acl: AclCheck
  /**
   * seconds the broker keeps the session after the connection (0: none; Infinity: never); a v5 DISCONNECT may change it
   */
  expiry: number
  readonly keepalive: number
  /** v5 Topic Alias resolution; v3 has none */
  readonly aliases: TopicAliases | undefined
  /** SUBSCRIBE/UNSUBSCRIBE in flight to the broker, by message ID (UNSUBSCRIBE as −id−1) */
  readonly pendingAcks = new Map<number, PendingAck>()
  /** QoS 2 packet IDs the gateway acknowledged itself (refused), so their PUBREL is answered here */
  private localQos2: Set<number> | undefined
  /** QoS 2 packet IDs of foreign messages the gateway acknowledged to the broker and dropped */
  private foreignQos2: Set<number> | undefined

  constructor(
    readonly io: SessionIO,
    init: ConnectedInit,
  ) {
    this.version = init.version
    this.v5 = init.version === 5
    this.upstreamVersion = wireVersion(init.version)
    this.user = init.user
    this.clientId = init.clientId
    this.policy = init.policy
    this.tenant = init.tenant
    this.acl = init.acl
    this.expiry = init.expiry
    this.keepalive = init.keepalive
    this.aliases = this.v5 ? new TopicAliases() : undefined
  }

  get log(): ConnectionLog {
    return this.io.log
  }

  /** A reload's new snapshot of the tenant: its limits and ACL apply from the next packet. */
  retenant(tenant: TenantRuntime): void {
    this.tenant = tenant
    this.acl = compileAclCheck(tenant, this.user, this.clientId)
  }

  markLocalQos2(id: number): void {
    ;(this.localQos2 ??= new Set()).add(id)
  }
  takeLocalQos2(id: number): boolean {
    return this.localQos2?.delete(id) === true
  }
  markForeignQos2(id: number): void {
    ;(this.foreignQos2 ??= new Set()).add(id)
  }
  takeForeignQos2(id: number): boolean {
    return this.foreignQos2?.delete(id) === true
  }

  /** Decodes a client frame; on a malformed packet the session is closed and undefined returned. */
  decodeClient(frame: Frame): Packet | undefined {
    try {
      return decodePacket(frame, this.upstreamVersion)
    } catch (err) {
      this.io.close('malformedPacket', err instanceof Error ? err.message : String(err))
      return undefined
    }
  }

  decodeUpstream(frame: Frame): Packet | undefined {
    try {
      return decodePacket(frame, this.upstreamVersion)
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'malformed packet from the broker')
      this.io.close('unspecified', 'malformed packet from the broker')
      return undefined
    }
  }

  sendToClient(packet: Packet): void {
    const bytes = this.encode(packet, this.upstreamVersion)
    if (bytes !== undefined) this.io.toClient(bytes)
  }

  sendToUpstream(packet: Packet): void {
    const bytes = this.encode(packet, this.upstreamVersion)
    if (bytes !== undefined) this.io.toUpstream(bytes)
  }

  /**
   * A packet that cannot be encoded as a whole ends the session with a reason; it never crashes the
   * process. The handlers refuse over-long mounted fields with their own codes first, so this line
   * names a field they missed.
   */
  private encode(packet: Packet, version: ProtocolVersion): Buffer | undefined {
    try {
      return encode(packet, version)
    } catch (err) {
      const field = err instanceof EncodeError ? err.field : undefined
      this.log.warn(
        { err: err instanceof Error ? err.message : String(err), cmd: packet.cmd, field },
        'packet could not be encoded',
      )
      this.io.close('unspecified', 'packet could not be encoded')
      return undefined
    }
  }
}
