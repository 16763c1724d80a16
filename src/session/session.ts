// One client connection and its own upstream connection: the pipe between them, its state, its
// back-pressure and its ending. What happens to each packet lives in connect.ts, from-client.ts and
// from-upstream.ts; this file is the plumbing they share.
import type net from 'node:net'
import type { Duplex } from 'node:stream'
import { FrameReader, FrameError, decodePacket, encode, MQTT_MAX_REMAINING, type Frame, type Packet, type ConnackPacket } from '../codec.js'
import { Reason, reasonCode, type ProtocolVersion, type ReasonName } from '../reason-codes.js'
import { ConnectionLog, type Logger } from '../log.js'
import type { ListenerConfig } from '../config/schema.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import type { AuthRequest, AuthResult } from '../tenancy/auth.js'
import { openUpstream, type UpstreamTarget } from '../upstream/connect.js'
import type { TopicAliases } from './topic-aliases.js'
import type { SessionPolicy } from '../policy/session-policy.js'
import { Pause } from './pause.js'
import { connect } from './connect.js'
import { onClientFrame } from './from-client.js'
import { onUpstreamFrame } from './from-upstream.js'

/** What a session needs from the gateway around it: a narrow, injectable surface. */
export interface SessionHost {
  readonly log: Logger
  authenticate (req: AuthRequest): Promise<AuthResult>
  tenant (id: string): TenantRuntime | undefined
  upstreamFor (tenant: TenantRuntime): UpstreamTarget
  /** admission (connection quotas and rates); a refusal, or the policy the session keeps until it ends */
  admit (session: Session): Promise<SessionPolicy | ReasonName>
  /** called exactly once for every admitted session when it ends */
  release (session: Session, policy: SessionPolicy): void
  /** called once when both of the session's sockets are gone: the session needs no more ticks */
  forget (session: Session): void
  /** how long the broker took to answer the upstream CONNECT (seconds), for the metrics */
  upstreamConnected?: (seconds: number, ok: boolean) => void
}

/** What the gateway decided for a SUBSCRIBE/UNSUBSCRIBE before forwarding the rest to the broker. */
export interface PendingAck {
  /** per filter of the client's packet: the gateway's own code, or null where the broker's code goes */
  readonly codes: Array<number | null>
  /** the mounted filters forwarded, in order */
  readonly filters: string[]
}

export interface ConnectionMeta {
  readonly listener: ListenerConfig
  readonly remoteAddress: string
  readonly remotePort: number
  /** the load balancer's address, when the client's came in a PROXY protocol header */
  readonly via?: string
  /** mutual TLS listeners: the verified client certificate's CN ('' when it has none), which stands for the username and password */
  readonly certificateName?: string
  /** TLS SNI host name, when the listener is TLS and the client sent one */
  readonly sniHost?: string
}

/** CONNECT (with its will) may not exceed this before a tenant's own limit is known. */
const PRE_CONNECT_MAX_BYTES = 1024 * 1024
/** How long a socket the gateway ended may wait for its peer's FIN before it is destroyed. */
const LINGER_MS = 2000
/** TCP keep-alive idle time for clients without an MQTT keep alive. */
const TCP_KEEPALIVE_IDLE_MS = 60_000

type State = 'awaitConnect' | 'connecting' | 'connected' | 'closed'

/**
 * The client's side of a session: a TCP or TLS socket, or a WebSocket carried as a stream
 * (listeners/websocket.ts), whose TCP keep-alive is its underlying socket's.
 */
export type ClientStream = Duplex & { setKeepAlive?: (enable: boolean, initialDelay: number) => unknown }

export { Pause }

export class Session {
  state: State = 'awaitConnect'
  /** the client's protocol version (3 = MQTT 3.1, 4 = 3.1.1, 5) */
  version: ProtocolVersion = 4
  tenant: TenantRuntime | undefined
  user: string | undefined
  /** tenant-local client ID (as the device knows it) */
  clientId = ''
  upstream: net.Socket | undefined
  policy: SessionPolicy | undefined
  aliases: TopicAliases | undefined
  /** SUBSCRIBE/UNSUBSCRIBE in flight to the broker, by message ID (UNSUBSCRIBE as −id−1) */
  pendingAcks: Map<number, PendingAck> | undefined
  /** QoS 2 packet IDs the gateway acknowledged itself (refused or dropped), so their PUBREL is answered here */
  localQos2: Set<number> | undefined
  /** QoS 2 packet IDs of foreign messages the gateway acknowledged to the broker and dropped */
  foreignQos2: Set<number> | undefined
  readonly connectedAt = Date.now()
  /** seconds within which a whole packet must arrive, 0 for none (set at CONNACK) */
  keepalive = 0
  /** whole packets read from the client; the keep-alive sweep compares it between rounds */
  framesIn = 0
  private sweptFrames = 0
  private quietSince = this.connectedAt
  private tcpKeepAlive = false
  /**
   * The one deadline of the state the session is in, checked by `tick`: CONNECT (awaitConnect), the
   * broker's CONNACK (connecting, once dialled), the peers' FIN (closed). Not a timer per session:
   * three timers set and cleared on every connection cost more than the gateway's one clock.
   */
  private deadline: number
  private forgotten = false

  private readonly clientReader = new FrameReader(PRE_CONNECT_MAX_BYTES)
  private readonly upstreamReader = new FrameReader(MQTT_MAX_REMAINING)
  private pauses = 0
  /** true while frames are being read, so a resume from within does not read them twice */
  private reading = false
  private connackWaiter: ((p: ConnackPacket | Error) => void) | undefined
  private admitted = false

  /** Log lines about this connection, with its listener, remote address, tenant and client ID. */
  readonly log: ConnectionLog

  constructor (readonly host: SessionHost, readonly client: ClientStream, readonly meta: ConnectionMeta) {
    this.log = new ConnectionLog(host.log, () => ({
      listener: meta.listener.name,
      remote: `${meta.remoteAddress}:${meta.remotePort}`,
      ...(meta.via !== undefined ? { via: meta.via } : {}),
      ...(this.tenant !== undefined ? { tenant: this.tenant.id, clientId: this.clientId } : {}),
    }))
    client.on('data', this.onClientData)
    client.on('error', this.onClientGone)
    client.on('close', this.onClientGone)
    client.on('drain', () => { this.upstream?.resume() })
    this.deadline = this.connectedAt + meta.listener.connectTimeout
  }

  get v5 (): boolean { return this.version === 5 }
  /** a getter, so TypeScript does not keep a narrowing of `state` across calls that may close */
  get ended (): boolean { return this.state === 'closed' }
  /** The version spoken to the broker: MQTT 3.1 clients are carried as 3.1.1 (SPEC §5). */
  get upstreamVersion (): ProtocolVersion { return this.version === 5 ? 5 : 4 }

  // ---- client → gateway ----------------------------------------------------------------------

  private readonly onClientData = (chunk: Buffer): void => {
    // A chunk can still come after a pause (already read by the stream): held, in order, with the rest.
    if (this.pauses !== 0 || this.reading) this.clientReader.hold(chunk)
    else this.readFrames(chunk)
    this.policy?.afterClientChunk(this, chunk.length)
  }

  /**
   * Reads whole frames (from `chunk`, or the held ones) until the session pauses: frames after a pause
   * stay in the reader, so a throttled, back-pressured or still-connecting client is not read ahead.
   */
  private readFrames (chunk: Buffer | undefined): void {
    const up = this.upstream
    this.reading = true
    up?.cork()
    try {
      this.clientReader.push(chunk, this.onClientFrame)
    } catch (err) {
      if (err instanceof FrameError && err.tooLarge) this.close('packetTooLarge', err.message)
      else this.close('malformedPacket', err instanceof Error ? err.message : String(err))
    } finally {
      up?.uncork()
      this.reading = false
    }
  }

  /** One frame from the client; false once the session paused or ended, so the reader holds the rest. */
  private readonly onClientFrame = (frame: Frame): boolean => {
    this.framesIn++
    if (this.state === 'connected') onClientFrame(this, frame)
    // Pipelined after CONNECT: the pause that connecting sets holds the rest, in order, until CONNACK (SPEC §8).
    else if (this.state === 'awaitConnect') this.startConnect(frame)
    return this.pauses === 0 && this.state !== 'closed'
  }

  private startConnect (frame: Frame): void {
    this.deadline = Infinity // until the broker is dialled
    this.state = 'connecting'
    this.pauseClient(Pause.connecting)
    connect(this, frame).then((ok) => {
      if (!ok || this.state !== 'connecting') return
      this.state = 'connected'
      this.clientReader.maxBytes = this.tenant?.limits.maxPacketSize ?? MQTT_MAX_REMAINING
      this.resumeClient(Pause.connecting)
    }, (err: unknown) => {
      this.log.error({ err }, 'connect failed unexpectedly')
      this.close('unspecified', 'internal error')
    })
  }

  private readonly onClientGone = (err?: Error | boolean): void => {
    if (this.state !== 'closed') {
      if (err instanceof Error) this.log.debug({ err: err.message }, 'client socket error')
      // No DISCONNECT came first, so the upstream is cut abruptly too: the broker publishes the will.
      this.close(null, 'client closed the connection')
    }
    this.forgetWhenGone()
  }

  /** Tells the host once both sockets are gone, so a session is ticked from accept to its last socket. */
  private forgetWhenGone (): void {
    if (this.forgotten || !this.client.destroyed || this.upstream?.destroyed === false) return
    this.forgotten = true
    this.host.forget(this)
  }

  /**
   * The session's clock, called about twice a second by the gateway for every session it has not
   * forgotten: the deadline of the current state, and the keep alive once connected.
   */
  tick (now: number): void {
    switch (this.state) {
      case 'awaitConnect':
        if (now >= this.deadline) this.close(null, 'no CONNECT within connectTimeout')
        break
      case 'connecting':
        if (now >= this.deadline) this.connackWaiter?.(new Error('upstream CONNACK timeout'))
        break
      case 'connected':
        this.checkKeepAlive(now)
        break
      case 'closed':
        if (now >= this.deadline) this.destroy()
        break
    }
  }

  /** Both sockets cut at once: a peer that never closed its side, or the gateway's shutdown. */
  destroy (): void {
    this.client.destroy()
    this.upstream?.destroy()
  }

  /**
   * A client that sent no whole packet for 1.5 × its keep alive is cut with 0x8D [MQTT-3.1.2-22] — a
   * half-open socket, or a sender dribbling a packet byte by byte, which the broker would only see as an
   * upstream that went quiet. A counter on the packet path and the tick cost less than a timer reset per
   * packet.
   */
  private checkKeepAlive (now: number): void {
    if (this.keepalive === 0) {
      // Without a keep alive nothing would notice a peer that vanished: TCP's own probes do, after a
      // minute idle. Switched on at the first tick, so a connection that comes and goes does not pay it.
      if (!this.tcpKeepAlive) {
        this.tcpKeepAlive = true
        this.client.setKeepAlive?.(true, TCP_KEEPALIVE_IDLE_MS)
      }
      return
    }
    // While the gateway itself is not reading the client (throttled, back-pressure), silence is ours.
    if (this.framesIn !== this.sweptFrames || this.pauses !== 0) {
      this.sweptFrames = this.framesIn
      this.quietSince = now
    } else if (now - this.quietSince > this.keepalive * 1500) {
      this.close('keepAliveTimeout', 'no packet within 1.5 × keep alive')
    }
  }

  // ---- broker → gateway ----------------------------------------------------------------------

  /** Opens the upstream, sends the mounted CONNECT and resolves with the broker's CONNACK. */
  dialUpstream (target: UpstreamTarget, connectBytes: Buffer): Promise<ConnackPacket | Error> {
    return new Promise((resolve) => {
      const up = openUpstream(target)
      this.upstream = up
      this.deadline = Date.now() + target.connectTimeout
      this.connackWaiter = (result) => { this.connackWaiter = undefined; resolve(result) }
      up.on('data', this.onUpstreamData)
      up.on('drain', () => { this.resumeClient(Pause.backpressure) })
      up.on('error', (err) => {
        this.connackWaiter?.(err)
        this.upstreamGone(err.message)
      })
      up.on('close', () => {
        this.connackWaiter?.(new Error('upstream closed before CONNACK'))
        this.upstreamGone('upstream closed')
        this.forgetWhenGone()
      })
      up.write(connectBytes)
    })
  }

  private readonly onUpstreamData = (chunk: Buffer): void => {
    this.client.cork()
    try {
      this.upstreamReader.push(chunk, this.onUpstreamFrame)
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'malformed packet from the broker')
      this.close('unspecified', 'malformed packet from the broker')
    } finally {
      this.client.uncork()
    }
  }

  private readonly onUpstreamFrame = (frame: Frame): void => {
    if (this.connackWaiter !== undefined) {
      let result: ConnackPacket | Error = new Error('expected CONNACK from the broker')
      if (frame.type === 2) {
        const p = this.decodeUpstream(frame)
        if (p?.cmd === 'connack') result = p
      }
      this.connackWaiter(result)
      return
    }
    if (this.state === 'connected') onUpstreamFrame(this, frame)
  }

  private upstreamGone (why: string): void {
    if (this.state === 'connected') this.close('upstreamLost', why)
  }

  // ---- shared plumbing -----------------------------------------------------------------------

  /** Decodes a client frame; on a malformed packet the session is closed and undefined returned. */
  decodeClient (frame: Frame): Packet | undefined {
    try {
      return decodePacket(frame, this.version === 5 ? 5 : 4)
    } catch (err) {
      this.close('malformedPacket', err instanceof Error ? err.message : String(err))
      return undefined
    }
  }

  decodeUpstream (frame: Frame): Packet | undefined {
    try {
      return decodePacket(frame, this.upstreamVersion)
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'malformed packet from the broker')
      this.close('unspecified', 'malformed packet from the broker')
      return undefined
    }
  }

  toUpstream (bytes: Buffer): void {
    const up = this.upstream
    if (up === undefined || up.destroyed) return
    // A broker that cannot keep up pauses the client, so memory per connection stays bounded.
    if (!up.write(bytes)) this.pauseClient(Pause.backpressure)
  }

  toClient (bytes: Buffer): void {
    if (this.client.destroyed) return
    if (!this.client.write(bytes)) this.upstream?.pause()
  }

  sendToClient (packet: Packet): void {
    this.toClient(encode(packet, this.version === 5 ? 5 : 4))
  }

  sendToUpstream (packet: Packet): void {
    this.toUpstream(encode(packet, this.upstreamVersion))
  }

  pauseClient (why: number): void {
    if (this.pauses === 0) this.client.pause()
    this.pauses |= why
  }

  /** Lifts one reason for not reading the client; the last one lifted reads the held frames first. */
  resumeClient (why: number): void {
    if ((this.pauses & why) === 0) return
    this.pauses &= ~why
    if (this.pauses !== 0 || this.state === 'closed' || this.reading) return
    if (this.clientReader.buffered > 0) {
      this.readFrames(undefined)
      this.policy?.afterClientChunk(this, 0)
    }
    // Reading the held frames may have paused or ended the session again.
    if (this.pauses === 0 && !this.ended) this.client.resume()
  }

  /** A reload's new snapshot of this session's tenant: its limits and ACL apply from the next packet. */
  applyTenant (tenant: TenantRuntime): void {
    this.tenant = tenant
    if (this.state === 'connected') this.clientReader.maxBytes = tenant.limits.maxPacketSize ?? MQTT_MAX_REMAINING
  }

  markAdmitted (policy: SessionPolicy): void {
    this.policy = policy
    this.admitted = true
  }

  /**
   * Ends the session. `reason` is told to a v5 client in DISCONNECT (after CONNACK) when given. After
   * the client's own DISCONNECT (`clientDisconnected`) its socket is closed at once — it may send
   * nothing more [MQTT-3.14.4-2], so there is no FIN of its to wait for — and the upstream is ended
   * after the forwarded DISCONNECT; otherwise the client is ended (flushing what is written to it) and
   * the upstream cut abruptly, so the broker publishes the will.
   */
  close (reason: ReasonName | null, why: string, opts: { clientDisconnected?: boolean } = {}): void {
    if (this.state === 'closed') return
    const wasConnected = this.state === 'connected'
    this.state = 'closed'
    this.deadline = Date.now() + LINGER_MS
    this.connackWaiter?.(new Error(why))
    // Closed by the gateway for a reason the device should hear (malformed, limits, upstream lost): an
    // operator wants that in the log; ordinary leaves and shutdown (one line per client) stay at debug.
    if (reason !== null && reason !== 'serverShuttingDown') this.log.info({ reason, why }, 'session closed')
    else this.log.debug({ why }, 'session closed')
    const code = reason !== null && wasConnected && this.v5 ? reasonCode(reason, 5) : null
    if (code !== null && reason !== null && !this.client.destroyed) {
      this.client.write(encode({ cmd: 'disconnect', reasonCode: code, properties: { reasonString: Reason[reason].text } }, 5))
    }
    if (opts.clientDisconnected === true) {
      this.client.destroy()
      if (this.upstream !== undefined) endSocket(this.upstream)
    } else {
      endSocket(this.client)
      this.upstream?.destroy()
    }
    if (this.admitted && this.policy !== undefined) {
      this.admitted = false
      this.host.release(this, this.policy)
    }
  }

  /** CONNACK with a refusal, then close; v3 has no code for some refusals and is simply closed. */
  refuseConnect (reason: ReasonName, why: string): false {
    const code = reasonCode(reason, this.version === 5 ? 5 : 4)
    if (code !== null && !this.client.destroyed) {
      const connack: ConnackPacket = this.version === 5
        ? { cmd: 'connack', sessionPresent: false, reasonCode: code }
        : { cmd: 'connack', sessionPresent: false, returnCode: code }
      this.client.write(encode(connack, this.version === 5 ? 5 : 4))
    }
    this.log.info({ reason, why }, 'connection refused')
    this.close(null, why)
    return false
  }
}

/** Flush and send FIN; the closed session's tick destroys the socket if the peer never closes its side. */
function endSocket (socket: Duplex): void {
  if (!socket.destroyed) socket.end()
}
