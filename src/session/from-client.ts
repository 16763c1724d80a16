// Packets from the client after CONNACK: mounted, vetted against ACL and limits, forwarded upstream.
import { PacketType, type Frame, type PublishPacket, type Subscription } from '../codec.js'
import { mountFilter, mountTopic, isValidTopicName, isValidTopicFilter, parseShared } from '../tenancy/namespace.js'
import { Reason, subackFailure, type ReasonName } from '../reason-codes.js'
import { readPublish, topicBytesProblem, mountPublish, topicLevels, type PublishView } from './publish.js'
import { aclFor } from './acl-check.js'
import type { Session } from './session.js'

export function onClientFrame (session: Session, frame: Frame): void {
  switch (frame.type) {
    case PacketType.PUBLISH: return onPublish(session, frame)
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBCOMP:
      return forwardAck(session, frame, 0)
    case PacketType.PUBREL: return onPubrel(session, frame)
    case PacketType.PINGREQ:
      if (frame.flags !== 0 || frame.bytes.length !== 2) return session.close('malformedPacket', 'malformed PINGREQ')
      return session.toUpstream(frame.bytes)
    case PacketType.SUBSCRIBE: return onSubscribe(session, frame)
    case PacketType.UNSUBSCRIBE: return onUnsubscribe(session, frame)
    case PacketType.DISCONNECT: return onDisconnect(session, frame)
    case PacketType.CONNECT: return session.close('protocolError', 'second CONNECT') // [MQTT-3.1.0-2]
    case PacketType.AUTH: return session.close('protocolError', 'AUTH without an authentication method')
    default: return session.close('malformedPacket', `packet type ${frame.type} is not sent by clients`)
  }
}

// ---- PUBLISH ---------------------------------------------------------------------------------

const MAX_TOPIC_BYTES = 65535

function onPublish (session: Session, frame: Frame): void {
  const view = readPublish(frame, session.v5)
  if (view === null) return session.close('malformedPacket', 'malformed PUBLISH')
  // Topic alias or response topic to rewrite: the slow path, through the codec.
  if (session.v5 && (view.hasProperties || view.topicLength === 0)) return onPublishWithProperties(session, frame)
  const buf = frame.bytes
  const problem = topicBytesProblem(buf, view.topicOffset, view.topicLength)
  if (problem !== undefined) return session.close(problem, 'invalid topic name')
  const tenant = session.tenant
  if (tenant === undefined) return
  const acl = aclFor(session)
  const refusal = vetPublish(session, view.qos, view.retain, view.topicLength, topicLevels(buf, view),
    buf[view.topicOffset] === 0x24,
    acl.open ? undefined : buf.toString('utf8', view.topicOffset, view.topicOffset + view.topicLength))
  if (refusal !== undefined) return refusePublish(session, view, refusal)
  session.policy?.countPublish(session)
  session.toUpstream(mountPublish(frame, view, tenant.ns.topicPrefixBytes))
}

function onPublishWithProperties (session: Session, frame: Frame): void {
  const packet = session.decodeClient(frame)
  if (packet?.cmd !== 'publish') return
  const tenant = session.tenant
  if (tenant === undefined) return
  const props = packet.properties
  const alias = props?.topicAlias
  if (alias !== undefined) {
    const aliases = session.aliases
    if (aliases === undefined || !aliases.inRange(alias)) return session.close('topicAliasInvalid', `topic alias ${alias} out of range`)
    if (packet.topic === '') {
      const topic = aliases.get(alias)
      if (topic === undefined) return session.close('protocolError', `unknown topic alias ${alias}`)
      packet.topic = topic
    } else {
      aliases.put(alias, packet.topic)
    }
    delete props?.topicAlias
  }
  const topic = packet.topic
  if (!isValidTopicName(topic)) return session.close('topicNameInvalid', 'invalid topic name')
  const view = { qos: packet.qos, packetId: packet.messageId ?? 0 }
  const responseTopic = props?.responseTopic
  if (responseTopic !== undefined && !isValidTopicName(responseTopic)) return session.close('topicNameInvalid', 'invalid response topic')
  const acl = aclFor(session)
  const byteLength = Buffer.byteLength(topic)
  let refusal = vetPublish(session, packet.qos, packet.retain, byteLength, topic.split('/').length, topic.startsWith('$'), acl.open ? undefined : topic)
  if (refusal === undefined && responseTopic?.startsWith('$') === true) refusal = 'notAuthorized'
  if (refusal !== undefined) return refusePublish(session, view, refusal)
  session.policy?.countPublish(session)
  const upstream: PublishPacket = { ...packet, topic: mountTopic(tenant.ns, topic) }
  if (props !== undefined && responseTopic !== undefined) upstream.properties = { ...props, responseTopic: mountTopic(tenant.ns, responseTopic) }
  session.sendToUpstream(upstream)
}

/**
 * Decides whether a PUBLISH may go upstream: undefined when it may, else the refusal the client gets on
 * its PUBACK/PUBREC. Limits that end the connection (QoS, retain) close it here and answer 'closed'.
 */
function vetPublish (session: Session, qos: number, retain: boolean, topicBytes: number, levels: number, dollar: boolean, topic: string | undefined): ReasonName | 'closed' | undefined {
  const tenant = session.tenant
  if (tenant === undefined) return 'closed'
  const limits = tenant.limits
  if (limits.maxQos !== undefined && qos > limits.maxQos) { session.close('qosNotSupported', 'PUBLISH above maxQos'); return 'closed' }
  if (retain && limits.retain === false) { session.close('retainNotSupported', 'retained PUBLISH not allowed'); return 'closed' }
  if (dollar) return 'notAuthorized' // $SYS and friends belong to the broker, not to a tenant (SPEC §5)
  if (topicBytes + tenant.ns.topicPrefixBytes.length > MAX_TOPIC_BYTES) return 'topicNameInvalid'
  if ((limits.maxTopicLength !== undefined && topicBytes > limits.maxTopicLength) ||
      (limits.maxTopicLevels !== undefined && levels > limits.maxTopicLevels)) return 'topicNameInvalid'
  if (topic !== undefined && !aclFor(session).allows('publish', topic)) return 'notAuthorized'
  return undefined
}

/** v5: PUBACK/PUBREC with the reason; v3: acknowledged and dropped (SPEC §6); QoS 0: dropped. */
function refusePublish (session: Session, view: Pick<PublishView, 'qos' | 'packetId'>, refusal: ReasonName | 'closed'): void {
  if (refusal === 'closed') return
  session.policy?.countRefusal(refusal)
  if (view.qos === 0) return
  const messageId = view.packetId
  const cmd = view.qos === 1 ? 'puback' : 'pubrec'
  if (session.v5) {
    session.sendToClient({ cmd, messageId, reasonCode: Reason[refusal].v5 })
  } else {
    session.sendToClient({ cmd, messageId })
    if (view.qos === 2) (session.localQos2 ??= new Set()).add(messageId)
  }
}

function onPubrel (session: Session, frame: Frame): void {
  if (frame.flags !== 0x02) return session.close('malformedPacket', 'PUBREL with reserved flags') // [MQTT-3.6.1-1]
  const local = session.localQos2
  if (local !== undefined && frame.bytes.length >= 4) {
    const id = frame.bytes.readUInt16BE(frame.headerLength)
    if (local.delete(id)) return session.sendToClient({ cmd: 'pubcomp', messageId: id })
  }
  forwardAck(session, frame, 0x02)
}

/** PUBACK/PUBREC/PUBREL/PUBCOMP carry no topic: checked for shape and passed as raw bytes. */
function forwardAck (session: Session, frame: Frame, flags: number): void {
  const remaining = frame.bytes.length - frame.headerLength
  const wellFormed = frame.flags === flags && (session.v5 ? remaining >= 2 : remaining === 2)
  if (!wellFormed) return session.close('malformedPacket', 'malformed acknowledgement')
  if (remaining > 3 && session.decodeClient(frame) === undefined) return // v5 properties: let the codec vet them
  session.toUpstream(frame.bytes)
}

// ---- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------------------

/** Why a filter may not be subscribed, or undefined when it may (SPEC §5, §6, §7). */
function vetFilter (session: Session, filter: string): ReasonName | undefined {
  const tenant = session.tenant
  if (tenant === undefined || !isValidTopicFilter(filter)) return 'topicFilterInvalid'
  const mounted = mountFilter(tenant.ns, filter)
  // $SYS and every other `$` filter, shared or not, belong to the broker (SPEC §5).
  if (mounted === undefined) return filter.startsWith('$share/') && parseShared(filter) === undefined ? 'topicFilterInvalid' : 'notAuthorized'
  const local = parseShared(filter)?.filter ?? filter
  const limits = tenant.limits
  if ((limits.maxTopicLength !== undefined && Buffer.byteLength(local) > limits.maxTopicLength) ||
      (limits.maxTopicLevels !== undefined && local.split('/').length > limits.maxTopicLevels)) return 'topicFilterInvalid'
  if (Buffer.byteLength(mounted) > MAX_TOPIC_BYTES) return 'topicFilterInvalid'
  if (!aclFor(session).allows('subscribe', filter)) return 'notAuthorized'
  return undefined
}

function onSubscribe (session: Session, frame: Frame): void {
  const packet = session.decodeClient(frame)
  if (packet?.cmd !== 'subscribe') return
  const tenant = session.tenant
  const policy = session.policy
  if (tenant === undefined || policy === undefined) return
  const maxQos = tenant.limits.maxQos ?? 2
  const codes: Array<number | null> = []
  const forward: Subscription[] = []
  const mounted = packet.subscriptions.map((sub) => mountFilter(tenant.ns, sub.topic))
  let room = policy.subscriptionRoom(session, mounted.filter((f): f is string => f !== undefined))
  packet.subscriptions.forEach((sub, i) => {
    const filter = mounted[i]
    let refusal = vetFilter(session, sub.topic)
    // A filter the client already holds is a resubscription and takes no new slot.
    if (refusal === undefined && filter !== undefined && !policy.isSubscribed(filter) && room-- <= 0) refusal = 'quotaExceeded'
    if (refusal !== undefined || filter === undefined) {
      const reason = refusal ?? 'topicFilterInvalid'
      policy.countRefusal(reason)
      codes.push(subackFailure(reason, session.version))
      return
    }
    forward.push({ ...sub, topic: filter, qos: Math.min(sub.qos, maxQos) as Subscription['qos'] })
    codes.push(null)
  })
  const messageId = packet.messageId ?? 0
  if (forward.length === 0) {
    session.sendToClient({ cmd: 'suback', messageId, granted: codes as number[] })
    return
  }
  ;(session.pendingAcks ??= new Map()).set(messageId, { codes, filters: forward.map((f) => f.topic) })
  session.sendToUpstream({ ...packet, subscriptions: forward })
}

/** v5 UNSUBACK code for a filter that never reached the broker: No subscription existed. */
const NO_SUBSCRIPTION_EXISTED = 0x11

function onUnsubscribe (session: Session, frame: Frame): void {
  const packet = session.decodeClient(frame)
  if (packet?.cmd !== 'unsubscribe') return
  const tenant = session.tenant
  if (tenant === undefined) return
  const codes: Array<number | null> = []
  const forward: string[] = []
  for (const filter of packet.unsubscriptions) {
    const mounted = isValidTopicFilter(filter) ? mountFilter(tenant.ns, filter) : undefined
    if (mounted === undefined) {
      codes.push(isValidTopicFilter(filter) ? NO_SUBSCRIPTION_EXISTED : Reason.topicFilterInvalid.v5)
      continue
    }
    forward.push(mounted)
    codes.push(null)
  }
  const messageId = packet.messageId ?? 0
  if (forward.length === 0) {
    session.sendToClient(session.v5 ? { cmd: 'unsuback', messageId, granted: codes as number[] } : { cmd: 'unsuback', messageId, granted: [] })
    return
  }
  // Negative keys keep UNSUBSCRIBE apart from SUBSCRIBE with the same message ID.
  ;(session.pendingAcks ??= new Map()).set(-messageId - 1, { codes, filters: forward })
  session.sendToUpstream({ ...packet, unsubscriptions: forward })
}

// ---- DISCONNECT ------------------------------------------------------------------------------

/** Forwarded before the upstream is closed, so the broker discards the will (or sends it for v5 0x04). */
function onDisconnect (session: Session, frame: Frame): void {
  if (frame.flags !== 0) return session.close('malformedPacket', 'DISCONNECT with reserved flags')
  if (session.v5 && frame.bytes.length > 3 && session.decodeClient(frame) === undefined) return
  session.toUpstream(frame.bytes)
  session.close(null, 'client disconnected', { clientDisconnected: true })
}

