// Every refusal the gateway can answer, once, with its code per protocol version (SPEC §4–§8).
// `v3` is the CONNACK return code (MQTT 3.1/3.1.1) or SUBACK failure code where it applies;
// `null` means v3 has no way to say it and the connection is closed (or the packet dropped) instead.

export type ProtocolVersion = 3 | 4 | 5

/**
 * The version packets are encoded and decoded with, and spoken to the broker: MQTT 3.1 lays packets out
 * as 3.1.1 does, and a 3.1 client is carried to the broker as 3.1.1 (brokers may refuse 3.1).
 */
export function wireVersion(version: ProtocolVersion): 4 | 5 {
  return version === 5 ? 5 : 4
}

export interface ReasonCode {
  readonly v5: number
  readonly v3: number | null
  readonly text: string
}

export const Reason = {
  success: { v5: 0x00, v3: 0x00, text: 'success' },
  unspecified: { v5: 0x80, v3: null, text: 'unspecified error' },
  malformedPacket: { v5: 0x81, v3: null, text: 'malformed packet' },
  protocolError: { v5: 0x82, v3: null, text: 'protocol error' },
  unsupportedProtocolVersion: { v5: 0x84, v3: 0x01, text: 'unsupported protocol version' },
  identifierRejected: { v5: 0x85, v3: 0x02, text: 'client identifier not valid' },
  badCredentials: { v5: 0x86, v3: 0x04, text: 'bad user name or password' },
  notAuthorized: { v5: 0x87, v3: 0x05, text: 'not authorized' },
  serverUnavailable: { v5: 0x88, v3: 0x03, text: 'server unavailable' },
  serverBusy: { v5: 0x89, v3: 0x03, text: 'server busy' },
  // 0x88 exists only in CONNACK; DISCONNECT has no "server unavailable" [MQTT-3.14.2.1], and clients
  // built on mqtt-packet drop a DISCONNECT 0x88 as malformed. So a lost broker is 0x80 with this text.
  upstreamLost: { v5: 0x80, v3: null, text: 'upstream broker unavailable' },
  serverShuttingDown: { v5: 0x8b, v3: null, text: 'server shutting down' },
  badAuthenticationMethod: { v5: 0x8c, v3: null, text: 'bad authentication method' },
  keepAliveTimeout: { v5: 0x8d, v3: null, text: 'keep alive timeout' },
  sessionTakenOver: { v5: 0x8e, v3: null, text: 'session taken over' },
  topicFilterInvalid: { v5: 0x8f, v3: 0x80, text: 'topic filter invalid' },
  topicNameInvalid: { v5: 0x90, v3: null, text: 'topic name invalid' },
  topicAliasInvalid: { v5: 0x94, v3: null, text: 'topic alias invalid' },
  packetTooLarge: { v5: 0x95, v3: null, text: 'packet too large' },
  messageRateTooHigh: { v5: 0x96, v3: null, text: 'message rate too high' },
  quotaExceeded: { v5: 0x97, v3: 0x03, text: 'quota exceeded' },
  administrativeAction: { v5: 0x98, v3: null, text: 'administrative action' },
  retainNotSupported: { v5: 0x9a, v3: null, text: 'retain not supported' },
  qosNotSupported: { v5: 0x9b, v3: null, text: 'QoS not supported' },
  connectionRateExceeded: { v5: 0x9f, v3: 0x03, text: 'connection rate exceeded' },
} as const satisfies Record<string, ReasonCode>

export type ReasonName = keyof typeof Reason

/** SUBACK failure in v3 is always 0x80, whatever the v5 reason. */
export const V3_SUBACK_FAILURE = 0x80

/** The code to put on the wire for `reason` to a client of `version`, or null when v3 cannot say it. */
export function reasonCode(reason: ReasonName, version: ProtocolVersion): number | null {
  const r: ReasonCode = Reason[reason]
  return version === 5 ? r.v5 : r.v3
}

/** SUBACK granted-QoS/reason byte for a refused filter. */
export function subackFailure(reason: ReasonName, version: ProtocolVersion): number {
  return version === 5 ? Reason[reason].v5 : V3_SUBACK_FAILURE
}
