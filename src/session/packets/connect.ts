// CONNECT → CONNACK, as a list of steps run in order (the list is this file's table of contents).
// Each step either refuses with the spec's reason code or lets the next one run; the last one creates
// the connected session, which exists from the CONNACK on.
// Longer than ~300 lines: the connect steps are one list read top to bottom, CONNACK relay included.
import { randomBytes } from 'node:crypto'
import {
  EncodeError,
  PacketType,
  decodeConnect,
  encode,
  type ConnectPacket,
  type ConnackPacket,
  type Frame,
} from '../../codec.js'
import { tryMountClientId, tryMountTopic, unmountTopic, isValidTopicName } from '../../tenancy/namespace.js'
import { wireVersion, type ReasonName } from '../../reason-codes.js'
import type { TenantRuntime } from '../../tenancy/tenants.js'
import { upstreamCredentials } from '../../upstream/connect.js'
import type { SessionPolicy } from '../../policy/session-policy.js'
import { TOPIC_ALIAS_MAXIMUM } from '../topic-aliases.js'
import { compileAclCheck, type AclCheck } from '../acl-check.js'
import { Connected } from '../connected.js'
import type { Connecting } from '../connecting.js'
import { expirySeconds } from './disconnect.js'

/** What the steps learn on the way to CONNACK. */
interface Attempt {
  readonly packet: ConnectPacket
  tenant?: TenantRuntime
  user?: string
  policy?: SessionPolicy
  acl?: AclCheck
  clientId: string
  /** the gateway generated the client ID: the v5 CONNACK carries it */
  assignedId: boolean
  /** as the broker sees them, once checked to fit an MQTT string */
  mounted?: { clientId: string; willTopic?: string; willResponseTopic?: string }
}

/**
 * The limit behind each refusal admission can answer (policy/limits.ts names it for its counters; the
 * host hands the session only the reason), so the operator's log line says which limit it was.
 */
const LIMIT_OF_REFUSAL: Partial<Record<ReasonName, string>> = {
  serverBusy: 'gatewayMaxConnections',
  quotaExceeded: 'maxConnections',
  connectionRateExceeded: 'connectRate',
}

/** Runs the connect steps; the connected session when the client got a successful CONNACK. */
export async function connect(session: Connecting, frame: Frame): Promise<Connected | undefined> {
  if (frame.type !== PacketType.CONNECT) return refuseFirstPacket(session)
  let packet
  try {
    packet = decodeConnect(frame)
  } catch (err) {
    session.log.info({ err: err instanceof Error ? err.message : String(err) }, 'malformed CONNECT')
    session.close(null, 'malformed CONNECT')
    return undefined
  }
  if (packet.cmd !== 'connect') return refuseFirstPacket(session)
  session.version = packet.protocolVersion ?? 4
  // Every line from here on names the client ID the device sent, refusals before authentication included.
  session.named(packet.clientId)
  const a: Attempt = { packet, clientId: packet.clientId, assignedId: false }

  const ok =
    checkProtocol(session, a) &&
    (await authenticate(session, a)) &&
    checkUpstreamProtocol(session, a) &&
    (await admit(session, a)) &&
    assignClientId(session, a) &&
    checkWill(session, a)
  return ok ? await dialUpstream(session, a) : undefined
}

function refuseFirstPacket(session: Connecting): undefined {
  session.close(null, 'first packet was not CONNECT') // [MQTT-3.1.0-1]
  return undefined
}

function checkProtocol(session: Connecting, a: Attempt): boolean {
  if (session.version === 5 && a.packet.properties?.authenticationMethod !== undefined) {
    return session.refuseConnect('badAuthenticationMethod', 'enhanced authentication is not supported')
  }
  return true
}

/**
 * Known once the tenant is: its broker may speak MQTT 3.1.1 only (`upstream.protocol: 3.1.1` — the
 * embedded aedes, RabbitMQ before 3.13), which could not carry a v5 session (SPEC §9).
 */
function checkUpstreamProtocol(session: Connecting, a: Attempt): boolean {
  if (session.version !== 5 || a.tenant === undefined || session.host.upstreamFor(a.tenant).v5) return true
  const why = 'the upstream broker speaks MQTT 3.1.1 only; use an MQTT 5 broker'
  session.log.warn(`MQTT 5 client refused: ${why}`)
  // The device maker sees why in the CONNACK: connect with MQTT 3.1.1 (issue #19).
  return session.refuseConnect('unsupportedProtocolVersion', why, undefined, 'this service speaks MQTT 3.1.1 only')
}

async function authenticate(session: Connecting, a: Attempt): Promise<boolean> {
  const { meta } = session
  const packet = a.packet
  const result = await session.host.authenticate({
    ...(meta.listener.tenant !== undefined ? { listenerTenant: meta.listener.tenant } : {}),
    ...(meta.sniHost !== undefined ? { sniHost: meta.sniHost } : {}),
    ...(meta.certificateName !== undefined ? { certificateName: meta.certificateName } : {}),
    ...(packet.username !== undefined ? { username: packet.username } : {}),
    ...(packet.password !== undefined ? { password: packet.password } : {}),
    remoteAddress: meta.remoteAddress,
  })
  if (!session.stillConnecting) return false // the client left meanwhile
  if (!result.ok) {
    // The client hears one code; the operator's line says which failure it was (never the password).
    return session.refuseConnect(result.reason, 'login refused', {
      cause: result.cause,
      ...(result.tenant !== undefined ? { tenant: result.tenant } : {}),
      ...(packet.username !== undefined ? { username: packet.username } : {}),
      ...(meta.certificateName !== undefined ? { certificateName: meta.certificateName } : {}),
    })
  }
  const tenant = session.host.tenant(result.tenant)
  if (tenant === undefined) return session.refuseConnect('badCredentials', 'tenant vanished during reload')
  a.tenant = tenant
  a.user = result.user
  session.identified(tenant, result.user)
  return true
}

async function admit(session: Connecting, a: Attempt): Promise<boolean> {
  if (a.tenant === undefined) return false
  const policy = await session.host.admit(a.tenant)
  if (typeof policy === 'string') {
    return (
      session.stillConnecting &&
      session.refuseConnect(policy, 'limit reached', { limit: LIMIT_OF_REFUSAL[policy] ?? policy })
    )
  }
  // Handed to the session even when the client left meanwhile: it gives the slot straight back.
  session.admitted(policy)
  a.policy = policy
  return session.stillConnecting
}

/** Client IDs are mounted; an empty one gets a generated ID when the protocol allows it (SPEC §5). */
function assignClientId(session: Connecting, a: Attempt): boolean {
  let id = a.packet.clientId
  if (id === '') {
    const mayAssign = session.version === 5 || (session.version === 4 && a.packet.clean !== false)
    // [MQTT-3.1.3-8]
    if (!mayAssign) return session.refuseConnect('identifierRejected', 'empty client ID without clean session')
    id = `auto-${randomBytes(12).toString('base64url')}`
    a.assignedId = true
  }
  a.clientId = id
  session.named(id)
  // The prefix added to an ID already near 65,535 bytes would not fit: the codec would refuse it anyway.
  const mounted = a.tenant === undefined ? undefined : tryMountClientId(a.tenant.ns, id)
  if (mounted === undefined) return session.refuseConnect('identifierRejected', 'client ID too long once mounted')
  a.mounted = { clientId: mounted }
  return true
}

function checkWill(session: Connecting, a: Attempt): boolean {
  const will = a.packet.will
  const tenant = a.tenant
  if (tenant === undefined) return false
  a.acl = compileAclCheck(tenant, a.user, a.clientId)
  if (will === undefined) return true
  const limits = tenant.limits
  if (!isValidTopicName(will.topic)) return session.refuseConnect('topicNameInvalid', 'invalid will topic')
  const mounted = a.mounted
  if (mounted === undefined) return false
  const willTopic = tryMountTopic(tenant.ns, will.topic)
  // v5 CONNACK 0x90; v3 has no code for it and is closed (SPEC §8).
  if (willTopic === undefined) return session.refuseConnect('topicNameInvalid', 'will topic too long once mounted')
  mounted.willTopic = willTopic
  if (will.topic.startsWith('$')) return session.refuseConnect('notAuthorized', 'will topic starts with $')
  if (!a.acl.allows('publish', will.topic)) return session.refuseConnect('notAuthorized', 'will topic denied by ACL')
  if (limits.maxQos !== undefined && (will.qos ?? 0) > limits.maxQos)
    return session.refuseConnect('qosNotSupported', 'will QoS above the plan')
  if (limits.retain === false && will.retain === true)
    return session.refuseConnect('retainNotSupported', 'retained will not allowed')
  const responseTopic = will.properties?.responseTopic
  if (responseTopic !== undefined) {
    if (!isValidTopicName(responseTopic) || responseTopic.startsWith('$'))
      return session.refuseConnect('topicNameInvalid', 'invalid will response topic')
    mounted.willResponseTopic = tryMountTopic(tenant.ns, responseTopic)
    if (mounted.willResponseTopic === undefined)
      return session.refuseConnect('topicNameInvalid', 'will response topic too long once mounted')
  }
  return true
}

async function dialUpstream(session: Connecting, a: Attempt): Promise<Connected | undefined> {
  const { tenant, packet, mounted } = a
  if (tenant === undefined || mounted === undefined) return undefined
  const target = session.host.upstreamFor(tenant)
  const upstreamVersion = wireVersion(session.version)
  const upstreamConnect: ConnectPacket = {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: upstreamVersion,
    clientId: mounted.clientId,
    clean: packet.clean ?? true,
    keepalive: upstreamKeepalive(packet.keepalive ?? 0),
    ...upstreamCredentials(target, { tenant: tenant.id, username: a.user, clientId: a.clientId }),
  }
  if (packet.will !== undefined) {
    const { properties, ...will } = packet.will
    upstreamConnect.will = { ...will, topic: mounted.willTopic ?? will.topic }
    if (properties !== undefined) {
      upstreamConnect.will.properties =
        mounted.willResponseTopic !== undefined
          ? { ...properties, responseTopic: mounted.willResponseTopic }
          : properties
    }
  }
  if (session.version === 5) upstreamConnect.properties = upstreamConnectProperties(tenant, packet)
  let bytes: Buffer
  try {
    bytes = encode(upstreamConnect, upstreamVersion)
  } catch (err) {
    // The last wall: every mounted field was checked above, so this is a field nobody foresaw (e.g. an
    // upstream username template that grew past 65,535 bytes). Named for the operator, refused cleanly.
    const field = err instanceof EncodeError ? err.field : undefined
    session.log.warn(
      { field, err: err instanceof Error ? err.message : String(err) },
      'mounted CONNECT cannot be encoded',
    )
    session.refuseConnect('unspecified', 'mounted CONNECT cannot be encoded')
    return undefined
  }

  const dialed = performance.now()
  const connack = await session.dialUpstream(target, bytes)
  session.host.upstreamConnected?.((performance.now() - dialed) / 1000, !(connack instanceof Error))
  if (!session.stillConnecting) return undefined
  if (connack instanceof Error) {
    session.log.warn({ err: connack.message, upstream: `${target.host}:${target.port}` }, 'upstream unavailable')
    session.refuseConnect('serverUnavailable', connack.message)
    return undefined
  }
  return relayConnack(session, a, connack)
}

/**
 * The gateway enforces the client's keep alive itself (0x8D, see Session.tick); the broker is
 * given twice as long, so it never cuts first and the device hears "keep alive timeout", not "broker lost".
 */
function upstreamKeepalive(keepalive: number): number {
  return Math.min(keepalive * 2, 65_535)
}

function upstreamConnectProperties(
  tenant: TenantRuntime,
  packet: ConnectPacket,
): NonNullable<ConnectPacket['properties']> {
  // Topic Alias Maximum is not forwarded: the broker then always sends full topics, which unmount needs.
  const {
    topicAliasMaximum: _alias,
    authenticationMethod: _m,
    authenticationData: _d,
    ...props
  } = packet.properties ?? {}
  const limits = tenant.limits
  const prefix = tenant.ns.topicPrefixBytes.length
  // The client's limit is on what it receives, unmounted; the broker measures the mounted packet.
  if (props.maximumPacketSize !== undefined)
    props.maximumPacketSize = Math.min(props.maximumPacketSize + prefix, 268_435_455)
  if (limits.maxSessionExpiry !== undefined && props.sessionExpiryInterval !== undefined) {
    props.sessionExpiryInterval = Math.min(props.sessionExpiryInterval, limits.maxSessionExpiry)
  }
  if (limits.maxInflight !== undefined)
    props.receiveMaximum = Math.min(props.receiveMaximum ?? 65535, limits.maxInflight)
  return props
}

/** The broker's CONNACK, told to the client in its own namespace, with the tenant's limits advertised. */
function relayConnack(session: Connecting, a: Attempt, upstream: ConnackPacket): Connected | undefined {
  const { tenant, policy, acl, packet } = a
  if (tenant === undefined || policy === undefined || acl === undefined) return undefined
  const code = (session.version === 5 ? upstream.reasonCode : upstream.returnCode) ?? 0
  if (code !== 0) {
    session.log.info({ code }, 'broker refused the connection')
    const refusal: ConnackPacket =
      session.version === 5
        ? { cmd: 'connack', sessionPresent: false, reasonCode: code }
        : { cmd: 'connack', sessionPresent: false, returnCode: code }
    session.toClient(encode(refusal, wireVersion(session.version)))
    session.close(null, 'broker refused the connection')
    return undefined
  }
  const limits = tenant.limits
  const requestedKeepalive = packet.keepalive ?? 0
  // The keep alive the client must honour [MQTT-3.2.2-21]: its own, unless the broker's Server Keep Alive
  // is shorter (the broker was asked for twice the client's, so a longer one is no reason to change it).
  const serverKeepAlive = upstream.properties?.serverKeepAlive
  const keepalive =
    serverKeepAlive !== undefined && (requestedKeepalive === 0 || serverKeepAlive < requestedKeepalive)
      ? serverKeepAlive
      : requestedKeepalive
  // How long the broker keeps the session once the connection ends: what its subscriptions count for.
  const requestedExpiry = packet.properties?.sessionExpiryInterval
  const clampedExpiry =
    requestedExpiry !== undefined && limits.maxSessionExpiry !== undefined
      ? Math.min(requestedExpiry, limits.maxSessionExpiry)
      : requestedExpiry
  const expiry =
    session.version === 5
      ? expirySeconds(upstream.properties?.sessionExpiryInterval ?? clampedExpiry ?? 0)
      : packet.clean === false
        ? Infinity
        : 0
  const link = new Connected(session, {
    version: session.version,
    tenant,
    user: a.user,
    clientId: a.clientId,
    policy,
    acl,
    expiry,
    keepalive,
  })
  policy.resume(a.clientId, upstream.sessionPresent)
  if (session.version !== 5) {
    session.toClient(upstream.sessionPresent ? CONNACK_V4_ACCEPTED_SESSION_PRESENT : CONNACK_V4_ACCEPTED)
  } else {
    const connack: ConnackPacket = { cmd: 'connack', sessionPresent: upstream.sessionPresent, reasonCode: 0 }
    const {
      serverReference: _ref,
      assignedClientIdentifier: _assigned,
      responseInformation,
      topicAliasMaximum: _alias,
      maximumPacketSize,
      maximumQoS,
      retainAvailable,
      sessionExpiryInterval,
      serverKeepAlive: _keepalive,
      ...props
    } = upstream.properties ?? {}
    const prefix = tenant.ns.topicPrefixBytes.length
    const out: NonNullable<ConnackPacket['properties']> = { ...props, topicAliasMaximum: TOPIC_ALIAS_MAXIMUM }
    if (a.assignedId) out.assignedClientIdentifier = a.clientId
    if (responseInformation !== undefined) {
      const local = unmountTopic(tenant.ns, responseInformation)
      if (local !== undefined) out.responseInformation = local
    }
    const maxPacket = minDefined(
      maximumPacketSize !== undefined ? maximumPacketSize - prefix : undefined,
      limits.maxPacketSize,
    )
    if (maxPacket !== undefined) out.maximumPacketSize = maxPacket
    const maxQos = minDefined(maximumQoS, limits.maxQos)
    if (maxQos !== undefined && maxQos < 2) out.maximumQoS = maxQos
    if (retainAvailable === false || limits.retain === false) out.retainAvailable = false
    // Receive Maximum: how many QoS 1/2 PUBLISH the client may have unacknowledged towards us.
    const receiveMaximum = minDefined(props.receiveMaximum, limits.maxInflight)
    if (receiveMaximum !== undefined) out.receiveMaximum = receiveMaximum
    if (sessionExpiryInterval !== undefined) out.sessionExpiryInterval = sessionExpiryInterval
    else if (
      limits.maxSessionExpiry !== undefined &&
      requestedExpiry !== undefined &&
      requestedExpiry > limits.maxSessionExpiry
    ) {
      out.sessionExpiryInterval = limits.maxSessionExpiry
    }
    if (keepalive !== requestedKeepalive) out.serverKeepAlive = keepalive
    connack.properties = out
    link.sendToClient(connack)
  }
  session.log.info(
    {
      user: a.user,
      protocol: session.version,
      keepalive,
      clean: packet.clean ?? true,
      sessionPresent: upstream.sessionPresent,
    },
    'connected',
  )
  return link
}

/** The two CONNACKs of every MQTT 3.1/3.1.1 connection that succeeds, encoded once [MQTT-3.2]. */
const CONNACK_V4_ACCEPTED = encode({ cmd: 'connack', sessionPresent: false, returnCode: 0 }, 4)
const CONNACK_V4_ACCEPTED_SESSION_PRESENT = encode({ cmd: 'connack', sessionPresent: true, returnCode: 0 }, 4)

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return Math.min(a, b)
}
