// One client connection and its own upstream connection: the state machine between them, their
// reading and back-pressure, and the session's ending. What happens to each packet lives in packets/
// (dispatched by dispatch.ts); the connect steps in packets/connect.ts.
//
//   awaitConnect ─CONNECT─▶ connecting ─CONNACK─▶ connected ─client's input ends─▶ draining ─held input forwarded─▶
// closed
//
// No transition discards input: frames read behind a CONNECT wait for the CONNACK, the broker's frames
// behind its CONNACK wait for the connected session, and a client's FIN (or reset) only means that no
// more bytes will come — what was read before it is still forwarded, at the client's rate, for up to
// `throttleLinger`; what is left then is dropped and counted. Only `close` ends a session.
// Longer than ~300 lines: the state machine, its clock and close() are one transition table, kept together.
import type net from 'node:net'
import {
  EncodeError,
  FrameError,
  MQTT_MAX_REMAINING,
  PacketType,
  encode,
  type Frame,
  type ConnackPacket,
} from '../codec.js'
import { Reason, reasonCode, wireVersion, type ProtocolVersion, type ReasonName } from '../reason-codes.js'
import { ConnectionLog } from '../log.js'
import type { TenantRuntime } from '../tenancy/tenants.js'
import type { UpstreamTarget } from '../upstream/connect.js'
import type { DropReason } from '../policy/counters.js'
import { DISCONNECT, GO, type SessionPolicy } from '../policy/session-policy.js'
import type { Connected, SessionIO } from './connected.js'
import type { ClientStream, ConnectHost, Connecting, ConnectionMeta } from './connecting.js'
import { connect } from './packets/connect.js'
import { fromClient, fromUpstream } from './dispatch.js'
import { Upstream, type UpstreamEvents } from './upstream.js'
import { ClientInput, Hold } from './client-input.js'

export type { ClientStream, ConnectionMeta } from './connecting.js'

/** What a session needs from the gateway around it: a narrow, injectable surface. */
export interface SessionHost extends ConnectHost {
  /** ms a client's received packets are still forwarded after it left (SPEC §8) */
  readonly throttleLinger: number
  /**
   * The session is about to dial the broker with its client ID: it is now that ID's newest session. In a
   * cluster the other gateways hear it first (the promise), so the one holding the ID says 0x8E.
   */
  claim(session: Session): void | Promise<void>
  /** whether a newer session of the same tenant and client ID has claimed it since (a takeover) */
  displaced(session: Session): boolean
  /** admitted: the gateway lists it from now on */
  enter(session: Session): void
  /** called exactly once for every admitted session when it ends, with its broker session's expiry (s) */
  release(session: Session, policy: SessionPolicy, expirySeconds: number): void
  /** called once when both of the session's sockets are gone: the session needs no more ticks */
  forget(session: Session): void
}

/** CONNECT (with its will) may not exceed this before a tenant's own limit is known. */
const PRE_CONNECT_MAX_BYTES = 1024 * 1024
/** How long a socket the gateway ended may wait for its peer's FIN before it is destroyed. */
const CLOSE_LINGER_MS = 2000
/** TCP keep-alive idle time for clients without an MQTT keep alive. */
const TCP_KEEPALIVE_IDLE_MS = 60_000

type State = 'awaitConnect' | 'connecting' | 'connected' | 'draining' | 'closed'

export class Session implements Connecting, SessionIO, UpstreamEvents {
  state: State = 'awaitConnect'
  /** the client's protocol version (3 = MQTT 3.1, 4 = 3.1.1, 5) */
  version: ProtocolVersion = 4
  /** who the client is, as the connect steps find out (for logs and the admin API) */
  tenant: TenantRuntime | undefined
  user: string | undefined
  clientId = ''
  policy: SessionPolicy | undefined
  /** the connected session, from CONNACK on */
  link: Connected | undefined
  /** the broker connection, once dialled */
  up: Upstream | undefined
  readonly connectedAt = Date.now()
  private tcpKeepAlive = false
  /**
   * The one deadline of the state the session is in, checked by `tick`: CONNECT (awaitConnect), the
   * broker's CONNACK (connecting, once dialled), the linger (draining), the peers' FIN (closed). Not a
   * timer per session: timers set and cleared on every connection cost more than the gateway's one clock.
   */
  private deadline: number
  private forgotten = false

  private readonly input: ClientInput

  /** Log lines about this connection, with its listener, remote address, tenant and client ID. */
  readonly log: ConnectionLog

  constructor(
    readonly host: SessionHost,
    readonly client: ClientStream,
    readonly meta: ConnectionMeta,
  ) {
    this.input = new ClientInput(client, PRE_CONNECT_MAX_BYTES, () => {
      if (this.state !== 'closed') this.process(undefined)
    })
    this.log = new ConnectionLog(host.log, () => ({
      listener: meta.listener.name,
      remote: `${meta.remoteAddress}:${meta.remotePort}`,
      ...(meta.via !== undefined ? { via: meta.via } : {}),
      ...(this.tenant !== undefined ? { tenant: this.tenant.id } : {}),
      // From the decoded CONNECT on, before authentication: a refused login names the device too.
      ...(this.state !== 'awaitConnect' ? { clientId: this.clientId } : {}),
    }))
    client.on('data', this.onClientData)
    client.on('end', this.onClientEnd)
    client.on('error', this.onClientGone)
    client.on('close', this.onClientGone)
    client.on('drain', this.onClientDrain)
    this.deadline = this.connectedAt + meta.listener.connectTimeout
  }

  get v5(): boolean {
    return this.version === 5
  }
  /** a getter, so TypeScript does not keep a narrowing of `state` across calls that may close */
  get ended(): boolean {
    return this.state === 'closed'
  }
  get stillConnecting(): boolean {
    return this.state === 'connecting'
  }

  // ---- client → gateway ----------------------------------------------------------------------

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.state === 'closed') return
    this.policy?.countIn(chunk.length)
    // A chunk can still come after a pause (already read by the stream): held, in order, with the rest.
    if (this.input.free) this.process(chunk)
    else this.input.keep(chunk)
  }

  /**
   * Processes whole frames (from `chunk`, or the held ones) until something holds the session: the
   * frames after a hold stay in the reader, in order, until it is lifted.
   */
  private process(chunk: Buffer | undefined): void {
    const up = this.up?.socket
    const input = this.input
    input.processing = true
    up?.cork()
    try {
      input.reader.push(chunk, this.onClientFrame)
    } catch (err) {
      if (err instanceof FrameError && err.tooLarge) this.close('packetTooLarge', err.message)
      else this.close('malformedPacket', err instanceof Error ? err.message : String(err))
    } finally {
      up?.uncork()
      input.processing = false
    }
    // A client that left is done once everything it sent before is forwarded (a partial frame is not a packet).
    if (this.state === 'draining' && input.holds === 0) this.close(null, 'client closed the connection')
    else if (this.state !== 'closed') input.sync()
  }

  /** One frame from the client; false once the session is held or ended, so the reader keeps the rest. */
  private readonly onClientFrame = (frame: Frame): boolean => {
    this.input.frames++
    const link = this.link
    if (link !== undefined) {
      const policy = link.policy
      if (!policy.paced) {
        fromClient(link, frame)
      } else {
        // Charged before it is forwarded: one read cannot outrun the rate, however many packets it holds.
        const verdict = policy.charge(frame.type === PacketType.PUBLISH, frame.bytes.length, Date.now())
        if (verdict === DISCONNECT) {
          this.close('messageRateTooHigh', 'rate limit reached')
          return false
        }
        fromClient(link, frame)
        if (verdict !== GO && this.state !== 'closed') this.input.holdFor(verdict)
      }
    } else if (this.state === 'awaitConnect') {
      this.startConnect(frame)
    }
    return this.input.holds === 0 && this.state !== 'closed'
  }

  private startConnect(frame: Frame): void {
    this.deadline = Infinity // until the broker is dialled
    this.state = 'connecting'
    this.input.hold(Hold.connecting)
    connect(this, frame).then(
      (link) => {
        if (link === undefined || this.state !== 'connecting') return
        this.link = link
        this.state = this.input.ended ? 'draining' : 'connected'
        this.deadline = this.input.ended ? Date.now() + this.host.throttleLinger : Infinity
        this.input.reader.maxBytes = link.tenant.limits.maxPacketSize ?? MQTT_MAX_REMAINING
        // The broker's packets that came behind its CONNACK (a persistent session's queue), then the client's behind
        // its CONNECT.
        this.up?.open()
        this.input.release(Hold.connecting)
      },
      (err: unknown) => {
        // An EncodeError is the codec's last wall, not a crash: the connect steps refuse over-long mounted
        // fields themselves, so one getting here names a field they missed.
        if (err instanceof EncodeError)
          this.log.warn({ field: err.field, err: err.message }, 'CONNECT could not be encoded')
        else this.log.error({ err }, 'connect failed unexpectedly')
        if (this.state === 'connecting') this.refuseConnect('unspecified', 'internal error')
        else this.close('unspecified', 'internal error')
      },
    )
  }

  private readonly onClientEnd = (): void => {
    this.endOfInput()
  }

  private readonly onClientGone = (err?: Error | boolean): void => {
    if (err instanceof Error) this.log.debug({ err: err.message }, 'client socket error')
    this.endOfInput()
    this.forgetWhenGone()
  }

  /** The client's FIN, reset or close: nothing more will be read, and nothing can be written to it. */
  private endOfInput(): void {
    if (this.input.ended) return
    this.input.end()
    this.up?.socket.resume() // nor does the broker wait for its output to drain
    switch (this.state) {
      case 'awaitConnect':
        return this.close(null, 'client closed the connection')
      case 'connecting':
        // Nothing sent behind the CONNECT: no reason to go on. Otherwise its packets are carried (SPEC §8).
        if (this.input.reader.buffered === 0) this.close(null, 'client closed the connection')
        return
      case 'connected':
        this.state = 'draining'
        this.deadline = Date.now() + this.host.throttleLinger
        if (this.input.free) this.process(undefined)
    }
  }

  private readonly onClientDrain = (): void => {
    this.up?.socket.resume()
    this.input.release(Hold.clientOutput)
  }

  /** Tells the host once both sockets are gone, so a session is ticked from accept to its last socket. */
  private forgetWhenGone(): void {
    if (this.forgotten || !this.client.destroyed || this.up?.socket.destroyed === false) return
    this.forgotten = true
    this.host.forget(this)
  }

  // ---- the clock -------------------------------------------------------------------------------

  /**
   * The session's clock, called about twice a second by the gateway for every session it has not
   * forgotten: the deadline of the current state, and the keep alive once connected.
   */
  tick(now: number): void {
    switch (this.state) {
      case 'awaitConnect':
        if (now >= this.deadline) this.close(null, 'no CONNECT within connectTimeout')
        break
      case 'connecting':
        if (now >= this.deadline) this.up?.fail(new Error('upstream CONNACK timeout'))
        break
      case 'connected':
        this.checkKeepAlive(now)
        break
      case 'draining':
        if (now >= this.deadline) this.close(null, 'linger after the client left ran out', 'lingerExpired')
        break
      case 'closed':
        if (now >= this.deadline) this.destroy()
        break
    }
  }

  /** Both sockets cut at once: a peer that never closed its side, or the gateway's shutdown. */
  destroy(): void {
    this.client.destroy()
    this.up?.socket.destroy()
  }

  /**
   * A client that sent no whole packet for 1.5 × its keep alive is cut with 0x8D [MQTT-3.1.2-22] — a
   * half-open socket, or a sender dribbling a packet byte by byte, which the broker would only see as an
   * upstream that went quiet. A counter on the packet path and the tick cost less than a timer reset per
   * packet.
   */
  private checkKeepAlive(now: number): void {
    const keepalive = this.link?.keepalive ?? 0
    if (keepalive === 0) {
      // Without a keep alive nothing would notice a peer that vanished: TCP's own probes do, after a
      // minute idle. Switched on at the first tick, so a connection that comes and goes does not pay it.
      if (!this.tcpKeepAlive) {
        this.tcpKeepAlive = true
        this.client.setKeepAlive?.(true, TCP_KEEPALIVE_IDLE_MS)
      }
      return
    }
    if (this.input.silence(now) > keepalive * 1500) this.close('keepAliveTimeout', 'no packet within 1.5 × keep alive')
  }

  // ---- broker → gateway ----------------------------------------------------------------------

  async dialUpstream(target: UpstreamTarget, connectBytes: Buffer): Promise<ConnackPacket | Error> {
    const claimed = this.host.claim(this)
    if (claimed !== undefined) await claimed
    if (this.state !== 'connecting') return new Error('the client left before the broker was dialled')
    this.deadline = Date.now() + target.connectTimeout
    const up = new Upstream(target, this.version, this.client, this)
    this.up = up
    return up.connack(connectBytes)
  }

  upstreamFrame(frame: Frame): boolean {
    const link = this.link
    if (link === undefined || this.state === 'closed') return false
    fromUpstream(link, frame)
    return true
  }

  upstreamMalformed(why: string): void {
    this.log.warn({ err: why }, 'malformed packet from the broker')
    this.close('unspecified', 'malformed packet from the broker')
  }

  upstreamDrained(): void {
    this.input.release(Hold.upstream)
  }

  upstreamGone(why: string, closed: boolean): void {
    if (closed) this.forgetWhenGone()
    if (this.link === undefined) return
    // The broker drops the older connection of a client ID that connected again (SPEC §8).
    if (this.host.displaced(this)) this.close('sessionTakenOver', 'another connection took the session over')
    else this.close('upstreamLost', why)
  }

  // ---- shared plumbing -----------------------------------------------------------------------

  toUpstream(bytes: Buffer): void {
    const up = this.up?.socket
    if (up === undefined || !up.writable) return
    // A broker that cannot keep up holds the client, so memory per connection stays bounded.
    if (!up.write(bytes)) this.input.hold(Hold.upstream)
  }

  /**
   * Everything written to the client — forwarded or the gateway's own replies — counts toward one bound
   * (its stream's high-water mark): past it, neither the broker nor the client is read until it drains.
   */
  toClient(bytes: Buffer): void {
    const client = this.client
    if (!client.writable) return
    if (!client.write(bytes) && !this.input.ended) {
      this.up?.socket.pause()
      this.input.hold(Hold.clientOutput)
    }
  }

  holdInput(): void {
    this.input.hold(Hold.cluster)
  }

  resumeInput(): void {
    if (this.state !== 'closed') this.input.release(Hold.cluster)
  }

  identified(tenant: TenantRuntime, user: string | undefined): void {
    this.tenant = tenant
    this.user = user
  }

  admitted(policy: SessionPolicy): void {
    this.policy = policy
    // The client left while the limiter answered: the slot goes straight back.
    if (this.state === 'closed') this.host.release(this, policy, 0)
    else this.host.enter(this)
  }

  named(clientId: string): void {
    this.clientId = clientId
  }

  /** A reload's new snapshot of this session's tenant: its limits and ACL apply from the next packet. */
  applyTenant(tenant: TenantRuntime): void {
    this.tenant = tenant
    const link = this.link
    if (link === undefined) return
    link.retenant(tenant)
    this.input.reader.maxBytes = tenant.limits.maxPacketSize ?? MQTT_MAX_REMAINING
  }

  /**
   * Ends the session. `reason` is told to a v5 client in DISCONNECT (after CONNACK) when given. After
   * the client's own DISCONNECT (`clientDisconnected`) its socket is closed at once — it may send
   * nothing more [MQTT-3.14.4-2] — and the upstream ended after the forwarded DISCONNECT; otherwise
   * the client is ended (flushing what is written to it) and the upstream ended without a DISCONNECT,
   * so the broker publishes the will. PUBLISH packets still held are dropped and counted.
   */
  close(reason: ReasonName | null, why: string, opts: { clientDisconnected?: boolean } | DropReason = {}): void {
    if (this.state === 'closed') return
    const link = this.link
    this.state = 'closed'
    this.deadline = Date.now() + CLOSE_LINGER_MS
    this.up?.fail(new Error(why))
    this.input.stop()
    const clientDisconnected = typeof opts === 'object' && opts.clientDisconnected === true
    this.logClose(reason, why, link !== undefined)
    if (link !== undefined && !clientDisconnected) this.dropHeld(typeof opts === 'string' ? opts : 'sessionEnded', link)
    const code = reason !== null && link !== undefined && this.v5 ? reasonCode(reason, 5) : null
    if (code !== null && reason !== null && this.client.writable) {
      this.client.write(
        encode({ cmd: 'disconnect', reasonCode: code, properties: { reasonString: Reason[reason].text } }, 5),
      )
    }
    if (clientDisconnected) this.client.destroy()
    else endSocket(this.client)
    if (this.up !== undefined) endSocket(this.up.socket)
    const policy = this.policy
    if (policy !== undefined) this.host.release(this, policy, link?.expiry ?? 0)
  }

  /**
   * A connected session's end is one info line, like mosquitto's "Client … disconnected": why, the
   * reason the device was told (if any) and how long since it connected. A connection that never got
   * a CONNACK logged its refusal already, or is noise (a port scan): debug unless it was told a reason.
   */
  private logClose(reason: ReasonName | null, why: string, connected: boolean): void {
    if (!connected) {
      if (reason !== null) this.log.info({ reason, why }, 'session closed')
      else this.log.debug({ why }, 'session closed')
      return
    }
    const fields = { ...(reason !== null ? { reason } : {}), why, durationMs: Date.now() - this.connectedAt }
    // A shutdown would write one line per client; the gateway logs the shutdown itself.
    if (reason === 'serverShuttingDown') this.log.debug(fields, 'disconnected')
    else this.log.info(fields, 'disconnected')
  }

  /**
   * Counts (and logs) the PUBLISH packets read from the client and never forwarded: never silently. A
   * DISCONNECT among them is still forwarded, so the client's orderly leave does not fire its will.
   */
  private dropHeld(reason: DropReason, link: Connected): void {
    const { publishes, disconnect } = this.input.discard()
    if (disconnect !== undefined) fromClient(link, disconnect)
    if (publishes === 0) return
    link.policy.countDropped(reason, publishes)
    this.log.warn({ reason, dropped: publishes }, 'PUBLISH packets received from the client were dropped unforwarded')
  }

  /**
   * CONNACK with a refusal, then close; v3 has no code for some refusals and is simply closed. A v5
   * client is told `reasonString` when given: only for refusals that reveal nothing about credentials.
   */
  refuseConnect(reason: ReasonName, why: string, details?: Record<string, unknown>, reasonString?: string): false {
    const code = reasonCode(reason, this.version)
    if (code !== null) {
      const connack: ConnackPacket =
        this.version === 5
          ? {
              cmd: 'connack',
              sessionPresent: false,
              reasonCode: code,
              ...(reasonString !== undefined ? { properties: { reasonString } } : {}),
            }
          : { cmd: 'connack', sessionPresent: false, returnCode: code }
      this.toClient(encode(connack, wireVersion(this.version)))
    }
    this.log.info({ ...details, reason, why }, 'connection refused')
    this.close(null, why)
    return false
  }
}

/** Flush and send FIN; the closed session's tick destroys the socket if the peer never closes its side. */
function endSocket(socket: ClientStream | net.Socket): void {
  if (!socket.destroyed) socket.end()
}
