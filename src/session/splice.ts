// The PUBLISH fast path. Only the topic changes between the client and the broker, so the packet is
// rewritten by splicing bytes: going up, one allocation (header + prefix + the untouched rest); coming
// down, none at all — the prefix is cut out in place. v5 packets carrying properties (topic alias,
// response topic) take the slow path in the session, through the codec.
import { isUtf8 } from 'node:buffer'
import { type Frame, varintLength, writeVarint, readVarint } from '../codec.js'

export interface PublishView {
  readonly qos: number
  readonly retain: boolean
  /** offset of the topic's first byte in frame.bytes */
  readonly topicOffset: number
  readonly topicLength: number
  /** 0 for QoS 0 */
  readonly packetId: number
  /** v5 only: true when the property section is not empty */
  readonly hasProperties: boolean
  /** bytes of application payload */
  readonly payloadLength: number
}

const SLASH = 0x2f
const PLUS = 0x2b
const HASH = 0x23

/** Reads a PUBLISH's variable header, or returns null when it is malformed. */
export function readPublish(frame: Frame, v5: boolean): PublishView | null {
  const buf = frame.bytes
  const end = buf.length
  const qos = (frame.flags >> 1) & 0x03
  if (qos === 3) return null // [MQTT-3.3.1-4]
  let pos = frame.headerLength
  if (pos + 2 > end) return null
  const topicLength = buf.readUInt16BE(pos)
  const topicOffset = pos + 2
  pos = topicOffset + topicLength
  let packetId = 0
  if (qos > 0) {
    if (pos + 2 > end) return null
    packetId = buf.readUInt16BE(pos)
    if (packetId === 0) return null // [MQTT-2.3.1-1]
    pos += 2
  } else if (pos > end) {
    return null
  }
  let hasProperties = false
  if (v5) {
    const props = readVarint(buf, pos, end)
    if (props === null) return null
    hasProperties = props[0] > 0
    pos += props[1] + props[0]
    if (pos > end) return null
  }
  return {
    qos,
    retain: (frame.flags & 0x01) === 1,
    topicOffset,
    topicLength,
    packetId,
    hasProperties,
    payloadLength: end - pos,
  }
}

/**
 * What is wrong with a topic name as the client may publish it, if anything: ill-formed UTF-8 or U+0000
 * makes the packet malformed [MQTT-1.5.4-1, -2]; empty or a wildcard is an invalid topic name [MQTT-4.7.3].
 */
export function topicBytesProblem(
  buf: Buffer,
  offset: number,
  length: number,
): 'malformedPacket' | 'topicNameInvalid' | undefined {
  const end = offset + length
  let wildcard = false
  for (let i = offset; i < end; i++) {
    const b = buf[i]
    if (b === 0) return 'malformedPacket'
    if (b === PLUS || b === HASH) wildcard = true
  }
  if (!isUtf8(buf.subarray(offset, end))) return 'malformedPacket'
  return length === 0 || wildcard ? 'topicNameInvalid' : undefined
}

/** Number of topic levels (tenant-local), counted on bytes: '/' is never part of a UTF-8 sequence. */
export function topicLevels(buf: Buffer, view: PublishView): number {
  let levels = 1
  const end = view.topicOffset + view.topicLength
  for (let i = view.topicOffset; i < end; i++) if (buf[i] === SLASH) levels++
  return levels
}

/** Client → broker: the same packet with `prefix` in front of its topic. */
export function mountPublish(frame: Frame, view: PublishView, prefix: Buffer): Buffer {
  const src = frame.bytes
  const remaining = src.length - frame.headerLength + prefix.length
  const out = Buffer.allocUnsafe(1 + varintLength(remaining) + remaining)
  out[0] = src[0] as number
  let pos = writeVarint(out, 1, remaining)
  pos = out.writeUInt16BE(view.topicLength + prefix.length, pos)
  pos += prefix.copy(out, pos)
  src.copy(out, pos, view.topicOffset)
  return out
}

/**
 * Broker → client: the packet with `prefix` cut from its topic, rewritten in place (the header and
 * topic length are written just before the unprefixed topic; the frame's own bytes are reused).
 * Returns null when the topic is not under `prefix`: a message from outside the tenant is never delivered.
 */
export function unmountPublish(frame: Frame, view: PublishView, prefix: Buffer): Buffer | null {
  const buf = frame.bytes
  const plen = prefix.length
  if (view.topicLength <= plen) return null
  if (buf.compare(prefix, 0, plen, view.topicOffset, view.topicOffset + plen) !== 0) return null
  const remaining = buf.length - frame.headerLength - plen
  const newTopicLengthAt = view.topicOffset + plen - 2
  buf.writeUInt16BE(view.topicLength - plen, newTopicLengthAt)
  const start = newTopicLengthAt - 1 - varintLength(remaining)
  buf[start] = buf[0] as number
  writeVarint(buf, start + 1, remaining)
  return buf.subarray(start)
}
