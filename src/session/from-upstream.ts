// Packets from the broker after CONNACK: unmounted into the tenant's namespace and passed to the client.
// A message from outside the tenant's prefix is never delivered: it is acknowledged to the broker,
// dropped, and logged as an isolation fault.
import { PacketType, type Frame, type PublishPacket, type SubackPacket, type UnsubackPacket } from '../codec.js'
import { unmountTopic } from '../tenancy/namespace.js'
import { readPublish, unmountPublish, type PublishView } from './publish.js'
import type { PendingAck, Session } from './session.js'

export function onUpstreamFrame (session: Session, frame: Frame): void {
  switch (frame.type) {
    case PacketType.PUBLISH: return onPublish(session, frame)
    case PacketType.SUBACK: return onSuback(session, frame)
    case PacketType.UNSUBACK: return onUnsuback(session, frame)
    case PacketType.DISCONNECT: return onDisconnect(session, frame)
    case PacketType.PUBREL: return onPubrel(session, frame)
    case PacketType.CONNACK:
    case PacketType.CONNECT:
    case PacketType.SUBSCRIBE:
    case PacketType.UNSUBSCRIBE:
    case PacketType.PINGREQ:
      session.log.warn({ type: frame.type }, 'unexpected packet from the broker')
      return session.close('unspecified', 'protocol error from the broker')
    default:
      // PUBACK, PUBREC, PUBCOMP, PINGRESP, AUTH: no topic, passed as the broker sent them (SPEC §8).
      return session.toClient(frame.bytes)
  }
}

function onPublish (session: Session, frame: Frame): void {
  const tenant = session.tenant
  if (tenant === undefined) return
  const view = readPublish(frame, session.upstreamVersion === 5)
  if (view === null) return session.close('unspecified', 'malformed PUBLISH from the broker')
  if (view.hasProperties) return onPublishWithProperties(session, frame, view)
  const out = unmountPublish(frame, view, tenant.ns.topicPrefixBytes)
  if (out === null) return dropForeign(session, view, frame.bytes.toString('utf8', view.topicOffset, view.topicOffset + view.topicLength))
  session.policy?.countDelivery(out.length)
  session.toClient(out)
}

function onPublishWithProperties (session: Session, frame: Frame, view: PublishView): void {
  const packet = session.decodeUpstream(frame)
  const ns = session.tenant?.ns
  if (packet?.cmd !== 'publish' || ns === undefined) return
  const topic = unmountTopic(ns, packet.topic)
  if (topic === undefined) return dropForeign(session, view, packet.topic)
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
  session.policy?.countDelivery(frame.bytes.length)
  session.sendToClient(out)
}

/** Never delivered; acknowledged so the broker's in-flight window does not stall. */
function dropForeign (session: Session, view: PublishView, topic: string): void {
  session.log.error({ topic }, 'isolation fault: message outside the tenant namespace dropped')
  session.policy?.countIsolationFault()
  if (view.qos === 1) session.sendToUpstream({ cmd: 'puback', messageId: view.packetId })
  if (view.qos === 2) {
    ;(session.foreignQos2 ??= new Set()).add(view.packetId)
    session.sendToUpstream({ cmd: 'pubrec', messageId: view.packetId })
  }
}

function onPubrel (session: Session, frame: Frame): void {
  const foreign = session.foreignQos2
  if (foreign !== undefined && frame.bytes.length >= 4) {
    const id = frame.bytes.readUInt16BE(frame.headerLength)
    if (foreign.delete(id)) return session.sendToUpstream({ cmd: 'pubcomp', messageId: id })
  }
  session.toClient(frame.bytes)
}

/** Merges the broker's codes into the places the gateway left open (filters it refused itself). */
function merge (pending: PendingAck, fromBroker: number[]): number[] {
  let next = 0
  return pending.codes.map((code) => code ?? fromBroker[next++] ?? 0x80)
}

function onSuback (session: Session, frame: Frame): void {
  const pending = session.pendingAcks
  if (pending === undefined) return session.toClient(frame.bytes)
  const packet = session.decodeUpstream(frame) as SubackPacket | undefined
  if (packet === undefined) return
  const messageId = packet.messageId ?? 0
  const decided = pending.get(messageId)
  if (decided === undefined) return session.toClient(frame.bytes)
  pending.delete(messageId)
  const fromBroker = packet.granted as number[]
  session.policy?.subscribed(decided.filters.filter((_f, i) => (fromBroker[i] ?? 0x80) < 0x80))
  session.sendToClient({ ...packet, granted: merge(decided, fromBroker) })
}

function onUnsuback (session: Session, frame: Frame): void {
  const pending = session.pendingAcks
  const messageId = frame.bytes.length >= frame.headerLength + 2 ? frame.bytes.readUInt16BE(frame.headerLength) : 0
  const decided = pending?.get(-messageId - 1)
  if (pending === undefined || decided === undefined) return session.toClient(frame.bytes)
  pending.delete(-messageId - 1)
  session.policy?.unsubscribed(decided.filters)
  if (!session.v5) return session.toClient(frame.bytes)
  const packet = session.decodeUpstream(frame) as UnsubackPacket | undefined
  if (packet === undefined) return
  session.sendToClient({ ...packet, granted: merge(decided, packet.granted) })
}

/** The broker's DISCONNECT reaches a v5 client without Server Reference (another tenant's world). */
function onDisconnect (session: Session, frame: Frame): void {
  if (session.v5) {
    const packet = session.decodeUpstream(frame)
    if (packet?.cmd === 'disconnect') {
      if (packet.properties !== undefined) delete packet.properties.serverReference
      session.sendToClient(packet)
    }
  }
  session.close(null, 'broker disconnected the client')
}
