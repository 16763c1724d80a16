// SUBSCRIBE and its SUBACK. The gateway refuses what the tenant may not subscribe (its own code in the
// SUBACK), forwards the rest mounted, and merges the broker's codes into the places it left open.
import type { Frame, SubackPacket, SubscribePacket, Subscription } from '../../codec.js'
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

/** What the gateway decided for one filter: refused, a new subscription (a slot), or one held already. */
type FilterVerdict = ReasonName | 'new' | 'held'

export function subscribeFromClient(c: Connected, frame: Frame): void {
  const packet = c.decodeClient(frame)
  if (packet?.cmd !== 'subscribe') return
  // [MQTT-3.8.3-2]
  if (packet.subscriptions.length === 0) return c.io.close('malformedPacket', 'SUBSCRIBE without a topic filter')
  const { tenant, policy } = c
  const mounted = packet.subscriptions.map((sub) => tryMountFilter(tenant.ns, sub.topic))
  let room = policy.subscriptionRoom(mounted.flatMap((m) => ('filter' in m ? [m.filter] : [])))
  const verdicts = packet.subscriptions.map((sub, i): FilterVerdict => {
    const m = mounted[i] as Mounted
    const refusal = vetFilter(c, sub.topic, m)
    if (refusal !== undefined) return refusal
    if (!('filter' in m)) return 'topicFilterInvalid'
    // A filter the client already holds is a resubscription and takes no new slot.
    if (policy.isSubscribed(m.filter)) return 'held'
    return room-- > 0 ? 'new' : 'quotaExceeded'
  })
  const fresh = verdicts.filter((v) => v === 'new').length
  const asked = fresh > 0 ? policy.reserveSubscriptions(fresh) : undefined
  if (asked === undefined) return forwardSubscribe(c, packet, mounted, verdicts, fresh, 0)
  // In a cluster the tenant's count is Redis's: the packets behind this one wait for its answer, in order.
  c.io.holdInput()
  asked
    .then((granted) => {
      forwardSubscribe(c, packet, mounted, verdicts, granted, granted)
      c.io.resumeInput()
    })
    .catch((err: unknown) => {
      c.log.error({ err }, 'SUBSCRIBE failed unexpectedly')
      c.io.close('unspecified', 'internal error')
    })
}

/**
 * Sends the SUBACK codes the gateway decided and forwards the rest, mounted: of the new filters, the first
 * `grant` take a slot and the others are refused (quota); `reserved` of them the cluster counted already.
 */
function forwardSubscribe(
  c: Connected,
  packet: SubscribePacket,
  mounted: Mounted[],
  verdicts: FilterVerdict[],
  grant: number,
  reserved: number,
): void {
  const maxQos = c.tenant.limits.maxQos ?? 2
  const codes: Array<number | null> = []
  const forward: Subscription[] = []
  packet.subscriptions.forEach((sub, i) => {
    const m = mounted[i] as Mounted
    let verdict = verdicts[i] as FilterVerdict
    if (verdict === 'new' && grant-- <= 0) verdict = 'quotaExceeded'
    if (verdict !== 'new' && verdict !== 'held') {
      c.policy.countRefusal(verdict)
      codes.push(subackFailure(verdict, c.version))
      return
    }
    const topic = (m as { filter: string }).filter
    forward.push({ ...sub, topic, qos: Math.min(sub.qos, maxQos) as Subscription['qos'] })
    codes.push(null)
  })
  const messageId = packet.messageId ?? 0
  if (forward.length === 0) return c.sendToClient({ cmd: 'suback', messageId, granted: codes as number[] })
  c.pendingAcks.set(messageId, { codes, filters: forward.map((f) => f.topic), reserved })
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
  c.policy.subscribed(
    decided.filters.filter((_f, i) => (fromBroker[i] ?? 0x80) < 0x80),
    decided.reserved,
  )
  c.sendToClient({ ...packet, granted: mergeCodes(decided, fromBroker) })
}
