// UNSUBSCRIBE and its UNSUBACK: filters outside the tenant never reach the broker (v5: 0x11 No
// subscription existed, or 0x8F for an invalid filter), the rest go mounted.
import type { Frame, UnsubackPacket } from '../../codec.js'
import { mountFilter, isValidTopicFilter } from '../../tenancy/namespace.js'
import { Reason } from '../../reason-codes.js'
import type { Connected } from '../connected.js'
import { mergeCodes } from './subscribe.js'

/** v5 UNSUBACK code for a filter that never reached the broker: No subscription existed. */
const NO_SUBSCRIPTION_EXISTED = 0x11

export function unsubscribeFromClient (c: Connected, frame: Frame): void {
  const packet = c.decodeClient(frame)
  if (packet?.cmd !== 'unsubscribe') return
  if (packet.unsubscriptions.length === 0) return c.io.close('malformedPacket', 'UNSUBSCRIBE without a topic filter') // [MQTT-3.10.3-2]
  const ns = c.tenant.ns
  const codes: Array<number | null> = []
  const forward: string[] = []
  for (const filter of packet.unsubscriptions) {
    const mounted = isValidTopicFilter(filter) ? mountFilter(ns, filter) : undefined
    if (mounted === undefined) {
      codes.push(isValidTopicFilter(filter) ? NO_SUBSCRIPTION_EXISTED : Reason.topicFilterInvalid.v5)
      continue
    }
    forward.push(mounted)
    codes.push(null)
  }
  const messageId = packet.messageId ?? 0
  if (forward.length === 0) {
    return c.sendToClient(c.v5 ? { cmd: 'unsuback', messageId, granted: codes as number[] } : { cmd: 'unsuback', messageId, granted: [] })
  }
  // Negative keys keep UNSUBSCRIBE apart from SUBSCRIBE with the same message ID.
  c.pendingAcks.set(-messageId - 1, { codes, filters: forward })
  c.sendToUpstream({ ...packet, unsubscriptions: forward })
}

export function unsubackFromUpstream (c: Connected, frame: Frame): void {
  const messageId = frame.bytes.length >= frame.headerLength + 2 ? frame.bytes.readUInt16BE(frame.headerLength) : 0
  const decided = c.pendingAcks.get(-messageId - 1)
  if (decided === undefined) return c.io.toClient(frame.bytes)
  c.pendingAcks.delete(-messageId - 1)
  c.policy.unsubscribed(decided.filters)
  if (!c.v5) return c.io.toClient(frame.bytes)
  const packet = c.decodeUpstream(frame) as UnsubackPacket | undefined
  if (packet === undefined) return
  c.sendToClient({ ...packet, granted: mergeCodes(decided, packet.granted) })
}
