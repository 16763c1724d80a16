// The bounds the codec holds every packet to, on bytes and on decoded fields, without mqtt-packet:
// how long a string may be once encoded, how many v5 properties one packet may carry, which
// properties may not repeat. Kept apart from codec.ts so the rules read without the parser plumbing.
import { isUtf8 } from 'node:buffer'
import type { Packet } from 'mqtt-packet'

/** An MQTT string or binary field carries a two-byte length [MQTT-1.5.4-1, 1.5.6]. */
export const MAX_STRING_BYTES = 65_535

/**
 * Properties one property section may carry. MQTT sets no bound, and every user property costs
 * mqtt-packet an object key: 120,000 of them in one 1.4 MB PUBLISH took 0.5 s of CPU, during which no
 * tenant's packets moved. Clients send a handful; 1,024 leaves room for any real use and keeps the
 * worst packet to about a millisecond.
 */
export const MAX_PROPERTIES = 1024

/** Why a field cannot be encoded: the packet would be corrupt, not merely refused by the peer. */
export class EncodeError extends Error {
  constructor(
    /**
     * the field's path in the packet, e.g. `clientId`, `will.topic`, `properties.responseTopic`, `unsubscriptions.0`
     */
    readonly field: string,
    message: string,
  ) {
    super(message)
    this.name = 'EncodeError'
  }
}

/**
 * Value sizes of the v5 properties by identifier [MQTT-2.2.2.2]; `repeat` marks those that may occur more than once.
 */
type PropertyKind = 'byte' | 'int16' | 'int32' | 'varint' | 'string' | 'binary' | 'pair'
const PROPERTY_KINDS: ReadonlyMap<number, { kind: PropertyKind; repeat?: true }> = new Map([
  [0x01, { kind: 'byte' }],
  [0x02, { kind: 'int32' }],
  [0x03, { kind: 'string' }],
  [0x08, { kind: 'string' }],
  [0x09, { kind: 'binary' }],
  [0x0b, { kind: 'varint', repeat: true }],
  [0x11, { kind: 'int32' }],
  [0x12, { kind: 'string' }],
  [0x13, { kind: 'int16' }],
  [0x15, { kind: 'string' }],
  [0x16, { kind: 'binary' }],
  [0x17, { kind: 'byte' }],
  [0x18, { kind: 'int32' }],
  [0x19, { kind: 'byte' }],
  [0x1a, { kind: 'string' }],
  [0x1c, { kind: 'string' }],
  [0x1f, { kind: 'string' }],
  [0x21, { kind: 'int16' }],
  [0x22, { kind: 'int16' }],
  [0x23, { kind: 'int16' }],
  [0x24, { kind: 'byte' }],
  [0x25, { kind: 'byte' }],
  [0x26, { kind: 'pair', repeat: true }],
  [0x27, { kind: 'int32' }],
  [0x28, { kind: 'byte' }],
  [0x29, { kind: 'byte' }],
  [0x2a, { kind: 'byte' }],
])
const FIXED_SIZE: Partial<Record<PropertyKind, number>> = { byte: 1, int16: 2, int32: 4 }

/**
 * Walks the property section whose length varint starts at `offset` (bytes only, nothing decoded) and
 * says why it may not be decoded: too many properties, a property that may occur once occurring twice
 * (a Protocol Error [MQTT-2.2.2.2], which mqtt-packet would turn into an array the gateway never
 * expects), or a value running past the section. Undefined when mqtt-packet may parse it; an unknown
 * identifier is left to mqtt-packet, which refuses it.
 */
export function propertySectionProblem(buf: Buffer, offset: number, end: number): string | undefined {
  let length = 0
  let multiplier = 1
  let pos = offset
  for (let i = 0; ; i++) {
    if (i === 4 || pos >= end) return undefined // malformed: mqtt-packet says so itself
    const byte = buf[pos++] as number
    length += (byte & 0x7f) * multiplier
    multiplier *= 128
    if ((byte & 0x80) === 0) break
  }
  const sectionEnd = pos + length
  if (sectionEnd > end) return undefined
  let count = 0
  let seenLow = 0 // identifiers 0..31, then 32..63: two integers, no allocation per section
  let seenHigh = 0
  while (pos < sectionEnd) {
    const id = buf[pos++] as number
    const spec = PROPERTY_KINDS.get(id)
    if (spec === undefined) return undefined
    if (++count > MAX_PROPERTIES) return `more than ${MAX_PROPERTIES} properties`
    const bit = 1 << (id & 31)
    const seen = id < 32 ? seenLow : seenHigh
    if (spec.repeat !== true && (seen & bit) !== 0) return `property 0x${id.toString(16)} more than once`
    if (id < 32) seenLow |= bit
    else seenHigh |= bit
    const fixed = FIXED_SIZE[spec.kind]
    if (fixed !== undefined) {
      pos += fixed
    } else if (spec.kind === 'varint') {
      while (pos < sectionEnd && ((buf[pos++] as number) & 0x80) !== 0);
    } else {
      if (pos + 2 > sectionEnd) return 'property runs past its section'
      pos += 2 + buf.readUInt16BE(pos)
      if (spec.kind === 'pair') {
        if (pos + 2 > sectionEnd) return 'property runs past its section'
        pos += 2 + buf.readUInt16BE(pos)
      }
    }
    if (pos > sectionEnd) return 'property runs past its section'
  }
  return undefined
}

/**
 * A string mqtt-packet decoded may hide ill-formed UTF-8: Node's decoder turns every ill-formed
 * sequence (surrogates included) into U+FFFD, so client IDs `\xff` and `\xfe` would both become `\ufffd`
 * and take over each other's session. Only a string holding U+FFFD needs its bytes looked at.
 */
export function isWellFormedString(decoded: string, bytes: Buffer): boolean {
  return !decoded.includes('\ufffd') || isUtf8(bytes)
}

/**
 * The first string or binary field of `packet` that cannot be written with a two-byte length: its path
 * and byte length. Only a PUBLISH payload is exempt (it is not length-prefixed). Walks every field, so a
 * field added later is covered without a list to keep up to date.
 */
export function overlongField(packet: Packet): { field: string; bytes: number } | undefined {
  return walk(packet as unknown as Record<string, unknown>, '', packet.cmd === 'publish')
}

function walk(
  node: Record<string, unknown> | unknown[],
  path: string,
  skipPayload: boolean,
): { field: string; bytes: number } | undefined {
  for (const [key, value] of Object.entries(node)) {
    if (skipPayload && path === '' && key === 'payload') continue
    const field = path === '' ? key : `${path}.${key}`
    // user property names are strings on the wire too
    if (path.endsWith('userProperties') && Buffer.byteLength(key) > MAX_STRING_BYTES)
      return { field, bytes: Buffer.byteLength(key) }
    let bytes = -1
    if (typeof value === 'string') bytes = Buffer.byteLength(value)
    else if (Buffer.isBuffer(value)) bytes = value.length
    else if (typeof value === 'object' && value !== null) {
      const inner = walk(value as Record<string, unknown>, field, false)
      if (inner !== undefined) return inner
    }
    if (bytes > MAX_STRING_BYTES) return { field, bytes }
  }
  return undefined
}
