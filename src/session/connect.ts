// CONNECT → CONNACK, as a list of steps run in order (the list is this file's table of contents).
// Each step either refuses with the spec's reason code or lets the next one run.
import { randomBytes } from 'node:crypto'
import { decodeConnect, encode, type ConnectPacket, type ConnackPacket, type Frame } from '../codec.js'
import { mountClientId, mountTopic, unmountTopic, isValidTopicName } from '../tenancy/namespace.js'
import { upstreamCredentials } from '../upstream/connect.js'
import { TOPIC_ALIAS_MAXIMUM, TopicAliases } from './topic-aliases.js'
import { aclFor } from './acl-check.js'
import type { Session } from './session.js'

/** Runs the connect steps; true when the client got a successful CONNACK. */
export async function connect (session: Session, frame: Frame): Promise<boolean> {
  if (frame.type !== 1) return refuseFirstPacket(session)
  let packet
  try {
    packet = decodeConnect(frame)
  } catch (err) {
    session.log.info({ err: err instanceof Error ? err.message : String(err) }, 'malformed CONNECT')
    session.close(null, 'malformed CONNECT')
    return false
  }
  if (packet.cmd !== 'connect') return refuseFirstPacket(session)
  session.version = packet.protocolVersion ?? 4

  return checkProtocol(session, packet) &&
    await authenticate(session, packet) &&
    checkUpstreamProtocol(session) &&
    await admit(session) &&
    assignClientId(session, packet) &&
    checkWill(session, packet) &&
    await dialUpstream(session, packet)
}

function refuseFirstPacket (session: Session): false {
  session.close(null, 'first packet was not CONNECT') // [MQTT-3.1.0-1]
  return false
}

function checkProtocol (session: Session, packet: ConnectPacket): boolean {
  if (session.version === 5 && packet.properties?.authenticationMethod !== undefined) {
    return session.refuseConnect('badAuthenticationMethod', 'enhanced authentication is not supported')
  }
  return true
}

/** Known once the tenant is: its broker may be the embedded aedes, which speaks MQTT 3.1.1 only (SPEC §9). */
function checkUpstreamProtocol (session: Session): boolean {
  if (session.version !== 5 || session.tenant === undefined || session.host.upstreamFor(session.tenant).v5) return true
  session.log.warn('MQTT 5 client refused: the embedded broker speaks MQTT 3.1.1 only; use Mosquitto or EMQX as upstream for MQTT 5')
  return session.refuseConnect('unsupportedProtocolVersion', 'MQTT 5 needs a real upstream broker')
}

async function authenticate (session: Session, packet: ConnectPacket): Promise<boolean> {
  const { meta } = session
  const result = await session.host.authenticate({
    ...(meta.listener.tenant !== undefined ? { listenerTenant: meta.listener.tenant } : {}),
    ...(meta.sniHost !== undefined ? { sniHost: meta.sniHost } : {}),
    ...(meta.certificateName !== undefined ? { certificateName: meta.certificateName } : {}),
    ...(packet.username !== undefined ? { username: packet.username } : {}),
    ...(packet.password !== undefined ? { password: packet.password } : {}),
    remoteAddress: meta.remoteAddress,
  })
  if (session.state !== 'connecting') return false // the client left meanwhile
  if (!result.ok) return session.refuseConnect(result.reason, 'authentication failed')
  const tenant = session.host.tenant(result.tenant)
  if (tenant === undefined) return session.refuseConnect('badCredentials', 'tenant vanished during reload')
  session.tenant = tenant
  session.user = result.user
  return true
}

async function admit (session: Session): Promise<boolean> {
  const policy = await session.host.admit(session)
  if (session.state !== 'connecting') {
    // The client left while the limiter answered: give the slot straight back.
    if (typeof policy !== 'string') session.host.release(session, policy)
    return false
  }
  if (typeof policy === 'string') return session.refuseConnect(policy, 'limit reached')
  session.markAdmitted(policy)
  return true
}

/** Client IDs are mounted; an empty one gets a generated ID when the protocol allows it (SPEC §5). */
function assignClientId (session: Session, packet: ConnectPacket): boolean {
  let id = packet.clientId
  if (id === '') {
    const mayAssign = session.version === 5 || (session.version === 4 && packet.clean !== false)
    if (!mayAssign) return session.refuseConnect('identifierRejected', 'empty client ID without clean session') // [MQTT-3.1.3-8]
    id = `auto-${randomBytes(12).toString('base64url')}`
    assignedIds.add(session)
  }
  session.clientId = id
  return true
}

/** Sessions whose client ID the gateway generated: their CONNACK carries it (v5). */
const assignedIds = new WeakSet<Session>()

function checkWill (session: Session, packet: ConnectPacket): boolean {
  const will = packet.will
  if (will === undefined) return true
  const limits = session.tenant?.limits
  if (!isValidTopicName(will.topic)) return session.refuseConnect('topicNameInvalid', 'invalid will topic')
  if (will.topic.startsWith('$')) return session.refuseConnect('notAuthorized', 'will topic starts with $')
  if (!aclFor(session).allows('publish', will.topic)) return session.refuseConnect('notAuthorized', 'will topic denied by ACL')
  if (limits?.maxQos !== undefined && (will.qos ?? 0) > limits.maxQos) return session.refuseConnect('qosNotSupported', 'will QoS above the plan')
  if (limits?.retain === false && will.retain === true) return session.refuseConnect('retainNotSupported', 'retained will not allowed')
  const responseTopic = will.properties?.responseTopic
  if (responseTopic !== undefined && (!isValidTopicName(responseTopic) || responseTopic.startsWith('$'))) {
    return session.refuseConnect('topicNameInvalid', 'invalid will response topic')
  }
  return true
}

async function dialUpstream (session: Session, packet: ConnectPacket): Promise<boolean> {
  const tenant = session.tenant
  if (tenant === undefined) return false
  const ns = tenant.ns
  const target = session.host.upstreamFor(tenant)
  const mountedId = mountClientId(ns, session.clientId)
  const upstreamConnect: ConnectPacket = {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: session.upstreamVersion === 5 ? 5 : 4,
    clientId: mountedId,
    clean: packet.clean ?? true,
    keepalive: upstreamKeepalive(packet.keepalive ?? 0),
    ...upstreamCredentials(target, { tenant: tenant.id, username: session.user, clientId: session.clientId }),
  }
  if (packet.will !== undefined) {
    const { properties, ...will } = packet.will
    upstreamConnect.will = { ...will, topic: mountTopic(ns, will.topic) }
    if (properties !== undefined) {
      upstreamConnect.will.properties = properties.responseTopic !== undefined
        ? { ...properties, responseTopic: mountTopic(ns, properties.responseTopic) }
        : properties
    }
  }
  if (session.version === 5) upstreamConnect.properties = upstreamConnectProperties(session, packet)

  const dialed = performance.now()
  const connack = await session.dialUpstream(target, encode(upstreamConnect, session.upstreamVersion))
  session.host.upstreamConnected?.((performance.now() - dialed) / 1000, !(connack instanceof Error))
  if (session.state !== 'connecting') return false
  if (connack instanceof Error) {
    session.log.warn({ err: connack.message, upstream: `${target.host}:${target.port}` }, 'upstream unavailable')
    return session.refuseConnect('serverUnavailable', connack.message)
  }
  return relayConnack(session, connack, packet.properties?.sessionExpiryInterval, packet.keepalive ?? 0)
}

/**
 * The gateway enforces the client's keep alive itself (0x8D, see Session.tick); the broker is
 * given twice as long, so it never cuts first and the device hears "keep alive timeout", not "broker lost".
 */
function upstreamKeepalive (keepalive: number): number {
  return Math.min(keepalive * 2, 65_535)
}

function upstreamConnectProperties (session: Session, packet: ConnectPacket): NonNullable<ConnectPacket['properties']> {
  // Topic Alias Maximum is not forwarded: the broker then always sends full topics, which unmount needs.
  const { topicAliasMaximum: _alias, authenticationMethod: _m, authenticationData: _d, ...props } = packet.properties ?? {}
  const limits = session.tenant?.limits
  const prefix = Buffer.byteLength(session.tenant?.ns.topicPrefix ?? '')
  // The client's limit is on what it receives, unmounted; the broker measures the mounted packet.
  if (props.maximumPacketSize !== undefined) props.maximumPacketSize = Math.min(props.maximumPacketSize + prefix, 268_435_455)
  if (limits?.maxSessionExpiry !== undefined && props.sessionExpiryInterval !== undefined) {
    props.sessionExpiryInterval = Math.min(props.sessionExpiryInterval, limits.maxSessionExpiry)
  }
  if (limits?.maxInflight !== undefined) props.receiveMaximum = Math.min(props.receiveMaximum ?? 65535, limits.maxInflight)
  return props
}

/** The broker's CONNACK, told to the client in its own namespace, with the tenant's limits advertised. */
function relayConnack (session: Session, upstream: ConnackPacket, requestedExpiry: number | undefined, requestedKeepalive: number): boolean {
  const ns = session.tenant?.ns
  const limits = session.tenant?.limits
  const code = (session.upstreamVersion === 5 ? upstream.reasonCode : upstream.returnCode) ?? 0
  if (code !== 0) {
    session.log.info({ code }, 'broker refused the connection')
    const refusal: ConnackPacket = session.version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: code }
      : { cmd: 'connack', sessionPresent: false, returnCode: code }
    session.sendToClient(refusal)
    session.close(null, 'broker refused the connection')
    return false
  }
  // The keep alive the client must honour [MQTT-3.2.2-21]: its own, unless the broker's Server Keep Alive
  // is shorter (the broker was asked for twice the client's, so a longer one is no reason to change it).
  const serverKeepAlive = upstream.properties?.serverKeepAlive
  const keepalive = serverKeepAlive !== undefined && (requestedKeepalive === 0 || serverKeepAlive < requestedKeepalive) ? serverKeepAlive : requestedKeepalive
  session.keepalive = keepalive
  if (session.version !== 5) {
    session.toClient(upstream.sessionPresent ? CONNACK_V4_ACCEPTED_SESSION_PRESENT : CONNACK_V4_ACCEPTED)
  } else {
    const connack: ConnackPacket = { cmd: 'connack', sessionPresent: upstream.sessionPresent, reasonCode: 0 }
    const {
      serverReference: _ref, assignedClientIdentifier: _assigned, responseInformation, topicAliasMaximum: _alias,
      maximumPacketSize, maximumQoS, retainAvailable, sessionExpiryInterval, serverKeepAlive: _keepalive, ...props
    } = upstream.properties ?? {}
    const prefix = Buffer.byteLength(ns?.topicPrefix ?? '')
    const out: NonNullable<ConnackPacket['properties']> = { ...props, topicAliasMaximum: TOPIC_ALIAS_MAXIMUM }
    if (assignedIds.has(session)) out.assignedClientIdentifier = session.clientId
    if (responseInformation !== undefined && ns !== undefined) {
      const local = unmountTopic(ns, responseInformation)
      if (local !== undefined) out.responseInformation = local
    }
    const maxPacket = minDefined(maximumPacketSize !== undefined ? maximumPacketSize - prefix : undefined, limits?.maxPacketSize)
    if (maxPacket !== undefined) out.maximumPacketSize = maxPacket
    const maxQos = minDefined(maximumQoS, limits?.maxQos)
    if (maxQos !== undefined && maxQos < 2) out.maximumQoS = maxQos
    if (retainAvailable === false || limits?.retain === false) out.retainAvailable = false
    // Receive Maximum: how many QoS 1/2 PUBLISH the client may have unacknowledged towards us.
    const receiveMaximum = minDefined(props.receiveMaximum, limits?.maxInflight)
    if (receiveMaximum !== undefined) out.receiveMaximum = receiveMaximum
    if (sessionExpiryInterval !== undefined) out.sessionExpiryInterval = sessionExpiryInterval
    else if (limits?.maxSessionExpiry !== undefined && requestedExpiry !== undefined && requestedExpiry > limits.maxSessionExpiry) {
      out.sessionExpiryInterval = limits.maxSessionExpiry
    }
    if (keepalive !== requestedKeepalive) out.serverKeepAlive = keepalive
    connack.properties = out
    session.aliases = new TopicAliases()
    session.sendToClient(connack)
  }
  session.log.info({ user: session.user, protocol: session.version }, 'connected')
  return true
}

/** The two CONNACKs of every MQTT 3.1/3.1.1 connection that succeeds, encoded once [MQTT-3.2]. */
const CONNACK_V4_ACCEPTED = encode({ cmd: 'connack', sessionPresent: false, returnCode: 0 }, 4)
const CONNACK_V4_ACCEPTED_SESSION_PRESENT = encode({ cmd: 'connack', sessionPresent: true, returnCode: 0 }, 4)

function minDefined (a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return Math.min(a, b)
}
