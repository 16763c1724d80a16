// UNSUBSCRIBE and its UNSUBACK: filters outside the tenant never reach the broker (v5: 0x11 No
// subscription existed, or 0x8F for an invalid filter or one too long once mounted; v3 has no code for
// those and is closed), the rest go mounted.
import type { Frame, UnsubackPacket } from '../../codec.js'
import { tryMountFilter } from '../../tenancy/namespace.js'
import { Reason } from '../../reason-codes.js'
import type { Connected } from '../connected.js'
import { mergeCodes } from './subscribe.js'

/** v5 UNSUBACK code for a filter that never reached the broker: No subscription existed. */
const NO_SUBSCRIPTION_EXISTED = 0x11

export function unsubscribeFromClient(c: Connected, frame: Frame): void {
  const packet = c.decodeClient(frame)
  if (packet?.cmd !== 'unsubscribe') return
  // [MQTT-3.10.3-2]
  if (packet.unsubscriptions.length === 0) return c.io.close('malformedPacket', 'UNSUBSCRIBE without a topic filter')
  const ns = c.tenant.ns
  const codes: Array<number | null> = []
  const forward: string[] = []
  for (const filter of packet.unsubscriptions) {
    const mounted = tryMountFilter(ns, filter)
    if ('filter' in mounted) {
      forward.push(mounted.filter)
      codes.push(null)
    } else if (mounted.refused === 'reserved') {
      codes.push(NO_SUBSCRIPTION_EXISTED) // the tenant can hold no `$` subscription to end
    } else if (c.v5) {
      codes.push(Reason.topicFilterInvalid.v5)
    } else {
      // v3 can only refuse by closing (3.1.1 §4.8); an UNSUBACK would tell the device it worked.
      return c.io.close(
        'topicFilterInvalid',
        mounted.refused === 'tooLong' ? 'UNSUBSCRIBE filter too long once mounted' : 'invalid UNSUBSCRIBE filter',
      )
    }
  }
  const messageId = packet.messageId ?? 0
  if (forward.length === 0) {
    return c.sendToClient(
      c.v5 ? { cmd: 'unsuback', messageId, granted: codes as number[] } : { cmd: 'unsuback', messageId, granted: [] },
    )
  }
  // Negative keys keep UNSUBSCRIBE apart from SUBSCRIBE with the same message ID.
  c.pendingAcks.set(-messageId - 1, { codes, filters: forward, reserved: 0 })
  c.sendToUpstream({ ...packet, unsubscriptions: forward })
}

export function unsubackFromUpstream(c: Connected, frame: Frame): void {
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
