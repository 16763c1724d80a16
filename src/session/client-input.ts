// What the session has read from its client and not processed yet, and why: the frame reader, the
// holds on processing (connecting, a rate's debt, back-pressure either way, a SUBSCRIBE waiting for
// the cluster's count), and whether the socket itself is read. Holding stops processing; only
// back-pressure, or a full read-ahead, stops reading.
import { FrameReader, PacketType, type Frame } from '../codec.js'
import type { ClientStream } from './connecting.js'

/** Why the client's frames are not being processed now: several may hold at once (a bit each). */
export const Hold = { connecting: 1, throttle: 2, upstream: 4, clientOutput: 8, cluster: 16 } as const

/**
 * While only connecting, a rate or the cluster holds the client, its socket is still read, up to this many
 * bytes: so its FIN is seen (and the linger starts) when it leaves, not once its backlog has been forwarded.
 */
const READ_AHEAD_HOLDS = Hold.connecting | Hold.throttle | Hold.cluster
const READ_AHEAD_BYTES = 64 * 1024

export class ClientInput {
  readonly reader: FrameReader
  holds = 0
  /** true while frames are being processed, so a release from within does not process them twice */
  processing = false
  /** the client's FIN (or reset) came: no more bytes will */
  ended = false
  /** whole packets read; the keep-alive sweep compares it between rounds */
  frames = 0
  private sweptFrames = 0
  private quietSince = Date.now()
  private paused = false
  private timer: NodeJS.Timeout | undefined

  /** `resume` is called when the last hold is lifted outside processing: the held frames' turn. */
  constructor(
    private readonly socket: ClientStream,
    maxBytes: number,
    private readonly resume: () => void,
  ) {
    this.reader = new FrameReader(maxBytes)
  }

  /** Nothing holds and nothing is being processed: a new chunk may be processed at once. */
  get free(): boolean {
    return this.holds === 0 && !this.processing
  }

  /** Keeps a chunk read while held, in order, after what is held already. */
  keep(chunk: Buffer): void {
    this.reader.hold(chunk)
    this.sync()
  }

  hold(why: number): void {
    this.holds |= why
    this.sync()
  }

  /** Lifts one reason for not processing; the last one lifted hands the held frames back. */
  release(why: number): void {
    if ((this.holds & why) === 0) return
    this.holds &= ~why
    if (this.free) this.resume()
    else this.sync()
  }

  /** A rate's verdict: the next frames wait exactly as long as the debt takes to pay. */
  holdFor(ms: number): void {
    this.hold(Hold.throttle)
    clearTimeout(this.timer)
    this.timer = setTimeout(this.endHold, ms)
  }

  private readonly endHold = (): void => {
    this.timer = undefined
    this.release(Hold.throttle)
  }

  /** The client's FIN, reset or close: its output bound can no longer drain, so it holds nothing. */
  end(): void {
    this.ended = true
    this.holds &= ~Hold.clientOutput
  }

  /** The session ended: no timer outlives it. */
  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /**
   * How long (ms) no whole packet came, as of `now`, called by the clock's sweep. While the gateway
   * itself holds the client (a rate, back-pressure), the silence is the gateway's, not the client's.
   */
  silence(now: number): number {
    if (this.frames !== this.sweptFrames || this.holds !== 0) {
      this.sweptFrames = this.frames
      this.quietSince = now
    }
    return now - this.quietSince
  }

  /** Empties what is held, unprocessed: how many PUBLISH it held, and its DISCONNECT if one came. */
  discard(): { publishes: number; disconnect: Frame | undefined } {
    let publishes = 0
    let disconnect: Frame | undefined
    try {
      this.reader.push(undefined, (f) => {
        if (f.type === PacketType.PUBLISH) publishes++
        else if (f.type === PacketType.DISCONNECT) disconnect = f
      })
    } catch {
      /* the rest is not whole packets */
    }
    return { publishes, disconnect }
  }

  /** Reads the socket unless a hold needs it stopped (back-pressure), or read-ahead is full. */
  sync(): void {
    const h = this.holds
    const stop = !this.ended && h !== 0 && ((h & ~READ_AHEAD_HOLDS) !== 0 || this.reader.buffered >= READ_AHEAD_BYTES)
    if (stop === this.paused) return
    this.paused = stop
    if (stop) this.socket.pause()
    else this.socket.resume()
  }
}
