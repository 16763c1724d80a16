// SUBSCRIBE and its SUBACK. The gateway refuses what the tenant may not subscribe (its own code in the
// SUBACK), forwards the rest mounted, and merges the broker's codes into the places it left open.
import type { Frame, SubackPacket, Subscription } from '../../codec.js'
import { tryMountFilter, parseShared, type FilterRefusal } from '../../tenancy/namespace.js'
import { subackFailure, type ReasonName } from '../../reason-codes.js'
import type { Connected, PendingAck } from '../connected.js'

/**
 * What a filter that cannot be mounted gets: $SYS and every other `$` filter, shared or not, belong to
 * the broker (SPEC §5); one too long once mounted is as invalid as a malformed one (SUBACK 0x8F / 0x80).
 */
const MOUNT_REFUSAL: Record<FilterRefusal, ReasonName> = {
  invalid: 'topicFilterInvalid',
  reserved: 'notAuthorized',
  tooLong: 'topicFilterInvalid',
}

type Mounted = ReturnType<typeof tryMountFilter>

/** Why a filter may not be subscribed, or undefined when it may (SPEC §5, §6, §7). */
function vetFilter(c: Connected, filter: string, mounted: Mounted): ReasonName | undefined {
  if ('refused' in mounted) return MOUNT_REFUSAL[mounted.refused]
  const local = parseShared(filter)?.filter ?? filter
  const limits = c.tenant.limits
  if (
    (limits.maxTopicLength !== undefined && Buffer.byteLength(local) > limits.maxTopicLength) ||
    (limits.maxTopicLevels !== undefined && local.split('/').length > limits.maxTopicLevels)
  )
    return 'topicFilterInvalid'
  if (!c.acl.allows('subscribe', filter)) return 'notAuthorized'
  return undefined
}

export function subscribeFromClient(c: Connected, frame: Frame): void {
  const packet = c.decodeClient(frame)
  if (packet?.cmd !== 'subscribe') return
  // [MQTT-3.8.3-2]
  if (packet.subscriptions.length === 0) return c.io.close('malformedPacket', 'SUBSCRIBE without a topic filter')
  const { tenant, policy } = c
  const maxQos = tenant.limits.maxQos ?? 2
  const codes: Array<number | null> = []
  const forward: Subscription[] = []
  const mounted = packet.subscriptions.map((sub) => tryMountFilter(tenant.ns, sub.topic))
  let room = policy.subscriptionRoom(mounted.flatMap((m) => ('filter' in m ? [m.filter] : [])))
  packet.subscriptions.forEach((sub, i) => {
    const m = mounted[i] as Mounted
    const filter = 'filter' in m ? m.filter : undefined
    let refusal = vetFilter(c, sub.topic, m)
    // A filter the client already holds is a resubscription and takes no new slot.
    if (refusal === undefined && filter !== undefined && !policy.isSubscribed(filter) && room-- <= 0)
      refusal = 'quotaExceeded'
    if (refusal !== undefined || filter === undefined) {
      const reason = refusal ?? 'topicFilterInvalid'
      policy.countRefusal(reason)
      codes.push(subackFailure(reason, c.version))
      return
    }
    forward.push({ ...sub, topic: filter, qos: Math.min(sub.qos, maxQos) as Subscription['qos'] })
    codes.push(null)
  })
  const messageId = packet.messageId ?? 0
  if (forward.length === 0) return c.sendToClient({ cmd: 'suback', messageId, granted: codes as number[] })
  c.pendingAcks.set(messageId, { codes, filters: forward.map((f) => f.topic) })
  c.sendToUpstream({ ...packet, subscriptions: forward })
}

/** Merges the broker's codes into the places the gateway left open (filters it refused itself). */
export function mergeCodes(pending: PendingAck, fromBroker: number[]): number[] {
  let next = 0
  return pending.codes.map((code) => code ?? fromBroker[next++] ?? 0x80)
}

export function subackFromUpstream(c: Connected, frame: Frame): void {
  const pending = c.pendingAcks
  if (pending.size === 0) return c.io.toClient(frame.bytes)
  const packet = c.decodeUpstream(frame) as SubackPacket | undefined
  if (packet === undefined) return
  const messageId = packet.messageId ?? 0
  const decided = pending.get(messageId)
  if (decided === undefined) return c.io.toClient(frame.bytes)
  pending.delete(messageId)
  const fromBroker = packet.granted as number[]
  c.policy.subscribed(decided.filters.filter((_f, i) => (fromBroker[i] ?? 0x80) < 0x80))
  c.sendToClient({ ...packet, granted: mergeCodes(decided, fromBroker) })
}
