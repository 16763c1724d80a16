// The one codec boundary: only this module imports mqtt-packet. Frames are cut from the byte stream
// here without decoding them, so packets the gateway does not rewrite (acks, pings) pass as raw bytes,
// and PUBLISH can be rewritten by splicing (see session/splice.ts).
// Longer than ~300 lines on purpose: everything that touches mqtt-packet stays behind this one boundary.
import mqttPacket from 'mqtt-packet'
import type { Packet } from 'mqtt-packet'
import type { ProtocolVersion } from './reason-codes.js'
import {
  EncodeError,
  MAX_STRING_BYTES,
  isWellFormedString,
  overlongField,
  propertySectionProblem,
} from './codec-limits.js'

export { EncodeError, MAX_STRING_BYTES, MAX_PROPERTIES } from './codec-limits.js'

export type {
  Packet,
  IConnectPacket as ConnectPacket,
  IConnackPacket as ConnackPacket,
  IPublishPacket as PublishPacket,
  ISubscribePacket as SubscribePacket,
  ISubackPacket as SubackPacket,
  IUnsubscribePacket as UnsubscribePacket,
  IUnsubackPacket as UnsubackPacket,
  IDisconnectPacket as DisconnectPacket,
  ISubscription as Subscription,
} from 'mqtt-packet'

/** Fixed-header packet types [MQTT-2.1.2]. */
export const PacketType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
} as const

/** The largest Remaining Length MQTT can express (268,435,455 bytes). */
export const MQTT_MAX_REMAINING = 268_435_455

/** A whole MQTT control packet as it came off the wire. */
export interface Frame {
  /** packet type, the high nibble of byte 0 */
  readonly type: number
  /** the low nibble of byte 0 (PUBLISH: dup/qos/retain) */
  readonly flags: number
  /** bytes of fixed header (1 + length of the Remaining Length varint) */
  readonly headerLength: number
  /** the whole packet, header included; a view into the socket's chunk, not a copy */
  readonly bytes: Buffer
}

export class FrameError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message)
  }
}

/**
 * Cuts a byte stream into frames. Bytes of an incomplete frame are kept until the rest arrives;
 * a frame larger than `maxBytes` is an error before its body is buffered, so memory stays bounded.
 * The reader of the frames may stop it between two frames (a paused session): what follows is held,
 * not read, until the next `push`.
 */
export class FrameReader {
  /** held bytes: an incomplete frame, or frames not read yet; joined only when read (dribbled bytes cost O(n)) */
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** total length of the incomplete frame once its header is known, else 0 */
  private needed = 0
  /**
   * Set by the first FrameError: after it the stream has no frame boundaries, so whatever else arrives
   * (a client told to go keeps sending until it hears so: megabytes on loopback) is dropped, not held.
   */
  private failed = false
  constructor(public maxBytes: number) {}

  /**
   * Appends `chunk` (none: reads on through what is held) and calls `onFrame` for every complete frame
   * until it returns false; throws FrameError on bad input.
   */
  push(chunk: Buffer | undefined, onFrame: (frame: Frame) => unknown): void {
    if (this.failed) return
    let buf: Buffer
    if (this.pendingBytes === 0) {
      if (chunk === undefined) return
      buf = chunk
    } else {
      if (chunk !== undefined) this.hold(chunk)
      if (this.pendingBytes < this.needed) return
      buf = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes)
      this.pending = []
      this.pendingBytes = 0
    }
    this.needed = 0
    let offset = 0
    const end = buf.length
    while (offset < end) {
      // Remaining Length: up to 4 bytes of 7-bit groups [MQTT-2.2.3]
      let multiplier = 1
      let remaining = 0
      let pos = offset + 1
      let complete = false
      for (let i = 0; i < 4 && pos < end; i++) {
        const byte = buf[pos++] as number
        remaining += (byte & 0x7f) * multiplier
        multiplier *= 128
        if ((byte & 0x80) === 0) {
          complete = true
          break
        }
        if (i === 3) throw this.fail(new FrameError('malformed remaining length'))
      }
      if (!complete) break
      const headerLength = pos - offset
      const total = headerLength + remaining
      if (total > this.maxBytes)
        throw this.fail(new FrameError(`packet of ${total} bytes exceeds ${this.maxBytes}`, true))
      if (offset + total > end) {
        this.needed = total
        break
      }
      const first = buf[offset] as number
      const goOn = onFrame({
        type: first >> 4,
        flags: first & 0x0f,
        headerLength,
        bytes: buf.subarray(offset, offset + total),
      })
      offset += total
      if (goOn === false) break
    }
    if (offset < end) {
      this.pending.push(buf.subarray(offset))
      this.pendingBytes = end - offset
    }
  }

  private fail(err: FrameError): FrameError {
    this.failed = true
    this.pending = []
    this.pendingBytes = 0
    return err
  }

  /** Keeps `chunk` after what is held, without reading it (the reader of the frames is paused). */
  hold(chunk: Buffer): void {
    if (chunk.length === 0 || this.failed) return
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
  }

  /** bytes held: an incomplete frame, or frames not read yet */
  get buffered(): number {
    return this.pendingBytes
  }
}

/** Bytes needed for a Remaining Length varint. */
export function varintLength(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

/** Writes a Remaining Length varint at `offset`; returns the offset after it. */
export function writeVarint(buf: Buffer, offset: number, n: number): number {
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    buf[offset++] = byte
  } while (n > 0)
  return offset
}

/** Reads a varint (v5 property length) at `offset`: [value, bytes used], or null if malformed/truncated. */
export function readVarint(buf: Buffer, offset: number, end: number): [number, number] | null {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4; i++) {
    if (offset + i >= end) return null
    const byte = buf[offset + i] as number
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return [value, i + 1]
    multiplier *= 128
  }
  return null
}

/** The parts of mqtt-packet's parser the decoder wraps: its string and property readers (mqtt-packet 9). */
interface ParserInternals {
  _pos: number
  _parseString: () => string | null
  _parseProperties: () => unknown
  _emitError: (err: Error) => void
}

/**
 * Decodes one complete frame with mqtt-packet. One parser per protocol version serves every
 * connection: a frame is always whole, so a parse starts and ends within one call and no state is
 * carried between frames. A parser left holding bytes (an error, or a packet shorter than its frame)
 * is replaced, so nothing leaks into the next frame, which may be another connection's.
 *
 * Two of the parser's readers are wrapped, so the rules hold for every field of every packet type
 * without a second parser: strings must be well-formed UTF-8 ([MQTT-1.5.4-1]; mqtt-packet would put
 * U+FFFD in their place), and a property section is walked on its bytes first (codec-limits.ts), so a
 * packet with too many properties costs a scan, not an object with a key per property.
 */
class PacketDecoder {
  private parser: ReturnType<typeof mqttPacket.parser>
  private result: Packet | null = null
  private error: Error | null = null
  /** the body (after the fixed header) of the frame being parsed: the parser's offsets index into it */
  private body: Buffer = Buffer.alloc(0)

  constructor(private readonly protocolVersion: ProtocolVersion) {
    this.parser = this.freshParser()
  }

  private freshParser(): ReturnType<typeof mqttPacket.parser> {
    const parser = mqttPacket.parser({ protocolVersion: this.protocolVersion })
    parser.on('packet', (p: Packet) => {
      this.result = p
    })
    parser.on('error', (e: Error) => {
      this.error = e
    })
    const internals = parser as unknown as ParserInternals
    const parseString = internals._parseString
    const parseProperties = internals._parseProperties
    const body = (): Buffer => this.body
    internals._parseString = function (this: ParserInternals) {
      const start = this._pos + 2
      const value = parseString.call(this)
      if (value !== null && !isWellFormedString(value, body().subarray(start, this._pos))) {
        this._emitError(new Error('ill-formed UTF-8 string'))
      }
      return value
    }
    internals._parseProperties = function (this: ParserInternals) {
      const b = body()
      const problem = propertySectionProblem(b, this._pos, b.length)
      if (problem !== undefined) {
        this._emitError(new Error(problem))
        return {}
      }
      return parseProperties.call(this)
    }
    return parser
  }

  decode(frame: Frame): Packet {
    this.result = null
    this.error = null
    this.body = frame.bytes.subarray(frame.headerLength)
    const left = this.parser.parse(frame.bytes)
    const packet = this.result as Packet | null
    const error = this.error as Error | null
    this.result = null
    this.body = EMPTY
    if (error !== null || packet === null || left !== 0) {
      this.parser = this.freshParser()
      throw new FrameError(error?.message ?? (packet === null ? 'incomplete packet' : 'packet shorter than its frame'))
    }
    return packet
  }
}

const EMPTY = Buffer.alloc(0)

const decoders = new Map<ProtocolVersion, PacketDecoder>()
/**
 * CONNECT has its own: parsing one sets the parser's version to the packet's, which must not leak into a connection's
 * decoder.
 */
const connectDecoder = new PacketDecoder(4)

/** Decodes one complete frame of a connection speaking `protocolVersion`; throws FrameError when malformed. */
export function decodePacket(frame: Frame, protocolVersion: ProtocolVersion): Packet {
  // The broker's CONNACK to every 3.1.1 connection is four bytes: read here, not by a parser [MQTT-3.2].
  if (frame.type === PacketType.CONNACK && protocolVersion !== 5 && frame.bytes.length === 4 && frame.flags === 0) {
    const flags = frame.bytes[2] as number
    if (flags > 1) throw new FrameError('Invalid connack flags, bits 7-1 must be set to 0')
    return { cmd: 'connack', sessionPresent: flags === 1, returnCode: frame.bytes[3] as number }
  }
  let decoder = decoders.get(protocolVersion)
  if (decoder === undefined) decoders.set(protocolVersion, (decoder = new PacketDecoder(protocolVersion)))
  return decoder.decode(frame)
}

/** Decodes a CONNECT frame; the version comes from the packet itself. */
export function decodeConnect(frame: Frame): Packet {
  return connectDecoder.decode(frame)
}

/**
 * Encodes a packet for a peer speaking `protocolVersion` (mqtt-packet falls back to v4 without it).
 * The last wall before a socket: throws EncodeError rather than return bytes that are not one whole,
 * valid packet. mqtt-packet writes no length for a string over 65,535 bytes and drops the rest of the
 * packet, yet keeps the full Remaining Length, so the broker would read the sender's next packets as
 * this one's fields and then parse bytes the sender chose as packets of their own: a tenant's mounted
 * UNSUBSCRIBE filter one prefix too long let it PUBLISH into another tenant's namespace. So every
 * length-prefixed field is checked before, and the Remaining Length against the bytes after.
 */
export function encode(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
  const overlong = overlongField(packet)
  if (overlong !== undefined) {
    throw new EncodeError(
      overlong.field,
      `${packet.cmd} ${overlong.field} is ${overlong.bytes} bytes, over ${MAX_STRING_BYTES}`,
    )
  }
  let bytes: Buffer
  try {
    bytes = mqttPacket.generate(packet, { protocolVersion })
  } catch (err) {
    // mqtt-packet refuses some packets itself (by emitting an error on its accumulator, which throws).
    throw new EncodeError('', `${packet.cmd}: ${err instanceof Error ? err.message : String(err)}`)
  }
  const declared = readVarint(bytes, 1, bytes.length)
  if (declared === null || 1 + declared[1] + declared[0] !== bytes.length) {
    throw new EncodeError('', `${packet.cmd} encoded to ${bytes.length} bytes, not the length it declares`)
  }
  return bytes
}
