// PUBLISH, both directions. Client → broker: vetted against the plan and the ACL, mounted, forwarded
// by splicing bytes (one allocation); broker → client: unmounted in place. v5 packets with properties
// (topic alias, response topic) take the slow path through the codec. A message from outside the
// tenant's prefix is never delivered: acknowledged to the broker, dropped, logged as an isolation fault.
import type { Frame, PublishPacket } from '../../codec.js'
import { tryMountTopic, unmountTopic, isValidTopicName } from '../../tenancy/namespace.js'
import { Reason, type ReasonName } from '../../reason-codes.js'
import {
  readPublish,
  topicBytesProblem,
  mountPublish,
  unmountPublish,
  topicLevels,
  type PublishView,
} from '../splice.js'
import type { Connected } from '../connected.js'

const MAX_TOPIC_BYTES = 65535
const DOLLAR = 0x24

// ---- client → broker -------------------------------------------------------------------------

export function publishFromClient(c: Connected, frame: Frame): void {
  const view = readPublish(frame, c.v5)
  if (view === null) return c.io.close('malformedPacket', 'malformed PUBLISH')
  // Topic alias or response topic to rewrite: the slow path, through the codec.
  if (c.v5 && (view.hasProperties || view.topicLength === 0)) return publishWithProperties(c, frame)
  const buf = frame.bytes
  const problem = topicBytesProblem(buf, view.topicOffset, view.topicLength)
  if (problem !== undefined) return c.io.close(problem, 'invalid topic name')
  const acl = c.acl
  const refusal = vetPublish(
    c,
    view.qos,
    view.retain,
    view.topicLength,
    topicLevels(buf, view),
    buf[view.topicOffset] === DOLLAR,
    acl.open ? undefined : buf.toString('utf8', view.topicOffset, view.topicOffset + view.topicLength),
  )
  if (refusal !== undefined) return refusePublish(c, view, refusal)
  c.policy.countPublish()
  c.io.toUpstream(mountPublish(frame, view, c.tenant.ns.topicPrefixBytes))
}

function publishWithProperties(c: Connected, frame: Frame): void {
  const packet = c.decodeClient(frame)
  if (packet?.cmd !== 'publish') return
  const props = packet.properties
  const alias = props?.topicAlias
  if (alias !== undefined) {
    const aliases = c.aliases
    if (aliases === undefined || !aliases.inRange(alias))
      return c.io.close('topicAliasInvalid', `topic alias ${alias} out of range`)
    if (packet.topic === '') {
      const topic = aliases.get(alias)
      if (topic === undefined) return c.io.close('protocolError', `unknown topic alias ${alias}`)
      packet.topic = topic
    } else {
      aliases.put(alias, packet.topic)
    }
    delete props?.topicAlias
  }
  const topic = packet.topic
  if (!isValidTopicName(topic)) return c.io.close('topicNameInvalid', 'invalid topic name')
  const view = { qos: packet.qos, packetId: packet.messageId ?? 0 }
  const responseTopic = props?.responseTopic
  if (responseTopic !== undefined && !isValidTopicName(responseTopic))
    return c.io.close('topicNameInvalid', 'invalid response topic')
  const byteLength = Buffer.byteLength(topic)
  let refusal = vetPublish(
    c,
    packet.qos,
    packet.retain,
    byteLength,
    topic.split('/').length,
    topic.startsWith('$'),
    c.acl.open ? undefined : topic,
  )
  if (refusal === undefined && responseTopic?.startsWith('$') === true) refusal = 'notAuthorized'
  const ns = c.tenant.ns
  const mountedTopic = tryMountTopic(ns, topic)
  // A Response Topic near 65,535 bytes outgrows its MQTT string once mounted: PUBACK/PUBREC 0x90, like the topic.
  const mountedResponse = responseTopic === undefined ? undefined : tryMountTopic(ns, responseTopic)
  if (
    refusal === undefined &&
    (mountedTopic === undefined || (responseTopic !== undefined && mountedResponse === undefined))
  )
    refusal = 'topicNameInvalid'
  if (refusal !== undefined || mountedTopic === undefined) return refusePublish(c, view, refusal ?? 'topicNameInvalid')
  c.policy.countPublish()
  const upstream: PublishPacket = { ...packet, topic: mountedTopic }
  if (props !== undefined && mountedResponse !== undefined)
    upstream.properties = { ...props, responseTopic: mountedResponse }
  c.sendToUpstream(upstream)
}

/**
 * Decides whether a PUBLISH may go upstream: undefined when it may, else the refusal the client gets on
 * its PUBACK/PUBREC. Limits that end the connection (QoS, retain) close it here and answer 'closed'.
 */
function vetPublish(
  c: Connected,
  qos: number,
  retain: boolean,
  topicBytes: number,
  levels: number,
  dollar: boolean,
  topic: string | undefined,
): ReasonName | 'closed' | undefined {
  const tenant = c.tenant
  const limits = tenant.limits
  if (limits.maxQos !== undefined && qos > limits.maxQos) {
    c.io.close('qosNotSupported', 'PUBLISH above maxQos')
    return 'closed'
  }
  if (retain && limits.retain === false) {
    c.io.close('retainNotSupported', 'retained PUBLISH not allowed')
    return 'closed'
  }
  if (dollar) return 'notAuthorized' // $SYS and friends belong to the broker, not to a tenant (SPEC §5)
  if (topicBytes + tenant.ns.topicPrefixBytes.length > MAX_TOPIC_BYTES) {
    // Too long once mounted: v5 hears 0x90 on its PUBACK/PUBREC; v3 has no code, and a silently dropped
    // message would look delivered, so it is closed (SPEC §8).
    if (c.v5) return 'topicNameInvalid'
    c.io.close('topicNameInvalid', 'topic too long once mounted')
    return 'closed'
  }
  if (
    (limits.maxTopicLength !== undefined && topicBytes > limits.maxTopicLength) ||
    (limits.maxTopicLevels !== undefined && levels > limits.maxTopicLevels)
  )
    return 'topicNameInvalid'
  if (topic !== undefined && !c.acl.allows('publish', topic)) return 'notAuthorized'
  return undefined
}

/** v5: PUBACK/PUBREC with the reason; v3: acknowledged and dropped (SPEC §6); QoS 0: dropped. */
function refusePublish(
  c: Connected,
  view: Pick<PublishView, 'qos' | 'packetId'>,
  refusal: ReasonName | 'closed',
): void {
  if (refusal === 'closed') return
  c.policy.countRefusal(refusal)
  if (view.qos === 0) return
  const messageId = view.packetId
  const cmd = view.qos === 1 ? 'puback' : 'pubrec'
  if (c.v5) {
    c.sendToClient({ cmd, messageId, reasonCode: Reason[refusal].v5 })
  } else {
    c.sendToClient({ cmd, messageId })
    if (view.qos === 2) c.markLocalQos2(messageId)
  }
}

// ---- broker → client -------------------------------------------------------------------------

export function publishFromUpstream(c: Connected, frame: Frame): void {
  const view = readPublish(frame, c.upstreamVersion === 5)
  if (view === null) return c.io.close('unspecified', 'malformed PUBLISH from the broker')
  if (view.hasProperties) return upstreamPublishWithProperties(c, frame, view)
  const out = unmountPublish(frame, view, c.tenant.ns.topicPrefixBytes)
  if (out === null)
    return dropForeign(c, view, frame.bytes.toString('utf8', view.topicOffset, view.topicOffset + view.topicLength))
  c.policy.countDelivery(out.length)
  c.io.toClient(out)
}

function upstreamPublishWithProperties(c: Connected, frame: Frame, view: PublishView): void {
  const packet = c.decodeUpstream(frame)
  if (packet?.cmd !== 'publish') return
  const ns = c.tenant.ns
  const topic = unmountTopic(ns, packet.topic)
  if (topic === undefined) return dropForeign(c, view, packet.topic)
  const out: PublishPacket = { ...packet, topic }
  const props = packet.properties
  if (props !== undefined) {
    const { topicAlias: _alias, responseTopic, ...rest } = props
    out.properties = rest
    // A response topic from outside the tenant is removed rather than leaked.
    if (responseTopic !== undefined) {
      const local = unmountTopic(ns, responseTopic)
      if (local !== undefined) out.properties.responseTopic = local
    }
  }
  c.policy.countDelivery(frame.bytes.length)
  c.sendToClient(out)
}

/** Never delivered; acknowledged so the broker's in-flight window does not stall. */
function dropForeign(c: Connected, view: PublishView, topic: string): void {
  c.log.error({ topic }, 'isolation fault: message outside the tenant namespace dropped')
  c.policy.countIsolationFault()
  if (view.qos === 1) c.sendToUpstream({ cmd: 'puback', messageId: view.packetId })
  if (view.qos === 2) {
    c.markForeignQos2(view.packetId)
    c.sendToUpstream({ cmd: 'pubrec', messageId: view.packetId })
  }
}
