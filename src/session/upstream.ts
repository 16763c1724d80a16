// The session's own connection to the broker: dialled with the mounted CONNECT, read frame by frame.
// Its CONNACK answers `connack`; what the broker sends behind it (a persistent session's queued
// messages, often in the same TCP segment) is held by the reader until the session is connected and
// calls `open` — a state change never drops the broker's frames.
import type net from 'node:net'
import { FrameReader, MQTT_MAX_REMAINING, PacketType, decodePacket, type ConnackPacket, type Frame } from '../codec.js'
import { wireVersion, type ProtocolVersion } from '../reason-codes.js'
import { openUpstream, type UpstreamTarget } from '../upstream/connect.js'

/** What the upstream tells its session. */
export interface UpstreamEvents {
  /** one frame from the broker after CONNACK; false holds the rest */
  upstreamFrame(frame: Frame): boolean
  /** the broker sent bytes that are not MQTT */
  upstreamMalformed(why: string): void
  /** the socket can take more (after a write returned false) */
  upstreamDrained(): void
  /** the connection failed or closed */
  upstreamGone(why: string, closed: boolean): void
}

export class Upstream {
  readonly socket: net.Socket
  private readonly reader = new FrameReader(MQTT_MAX_REMAINING)
  private waiter: ((p: ConnackPacket | Error) => void) | undefined
  /** false until the session is connected: frames behind the CONNACK wait in the reader */
  private opened = false

  constructor(
    target: UpstreamTarget,
    private readonly version: ProtocolVersion,
    private readonly client: { cork(): void; uncork(): void },
    private readonly events: UpstreamEvents,
  ) {
    const up = (this.socket = openUpstream(target))
    up.on('data', this.onData)
    up.on('drain', () => {
      events.upstreamDrained()
    })
    up.on('error', (err) => {
      this.fail(err)
      events.upstreamGone(err.message, false)
    })
    up.on('close', () => {
      this.fail(new Error('upstream closed before CONNACK'))
      events.upstreamGone('upstream closed', true)
    })
  }

  /** Sends the CONNECT; resolves with the broker's CONNACK, or the error that came first. */
  connack(connectBytes: Buffer): Promise<ConnackPacket | Error> {
    return new Promise((resolve) => {
      this.waiter = (result) => {
        this.waiter = undefined
        resolve(result)
      }
      this.socket.write(connectBytes)
    })
  }

  /** Ends the wait for a CONNACK (timeout, or the session closed); nothing when there is none. */
  fail(err: Error): void {
    this.waiter?.(err)
  }

  /** The session is connected: reads what came behind the CONNACK, then everything as it comes. */
  open(): void {
    this.opened = true
    this.read(undefined)
  }

  private readonly onData = (chunk: Buffer): void => {
    if (!this.opened && this.waiter === undefined) this.reader.hold(chunk)
    else this.read(chunk)
  }

  private read(chunk: Buffer | undefined): void {
    this.client.cork()
    try {
      this.reader.push(chunk, this.onFrame)
    } catch (err) {
      this.events.upstreamMalformed(err instanceof Error ? err.message : String(err))
    } finally {
      this.client.uncork()
    }
  }

  private readonly onFrame = (frame: Frame): boolean => {
    const waiter = this.waiter
    if (waiter !== undefined) {
      waiter(this.decodeConnack(frame))
      return false // what follows the CONNACK waits for the connected session
    }
    return this.opened && this.events.upstreamFrame(frame)
  }

  private decodeConnack(frame: Frame): ConnackPacket | Error {
    if (frame.type !== PacketType.CONNACK) return new Error('expected CONNACK from the broker')
    try {
      const p = decodePacket(frame, wireVersion(this.version))
      return p.cmd === 'connack' ? p : new Error('expected CONNACK from the broker')
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err))
    }
  }
}
