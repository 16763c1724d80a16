// The session's dispatch table once connected: one switch per direction, one handler per packet type
// (packets/). The protocol's gatekeeping before CONNACK (CONNECT first, only once) is the session's.
import { PacketType, type Frame } from '../codec.js'
import type { Connected } from './connected.js'
import { publishFromClient, publishFromUpstream } from './packets/publish.js'
import { ackFromClient, pubrelFromClient, pubrelFromUpstream } from './packets/qos.js'
import { subscribeFromClient, subackFromUpstream } from './packets/subscribe.js'
import { unsubscribeFromClient, unsubackFromUpstream } from './packets/unsubscribe.js'
import { disconnectFromClient, disconnectFromUpstream, pingFromClient } from './packets/disconnect.js'

export function fromClient(c: Connected, frame: Frame): void {
  switch (frame.type) {
    case PacketType.PUBLISH:
      return publishFromClient(c, frame)
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBCOMP:
      return ackFromClient(c, frame)
    case PacketType.PUBREL:
      return pubrelFromClient(c, frame)
    case PacketType.PINGREQ:
      return pingFromClient(c, frame)
    case PacketType.SUBSCRIBE:
      return subscribeFromClient(c, frame)
    case PacketType.UNSUBSCRIBE:
      return unsubscribeFromClient(c, frame)
    case PacketType.DISCONNECT:
      return disconnectFromClient(c, frame)
    case PacketType.CONNECT:
      return c.io.close('protocolError', 'second CONNECT') // [MQTT-3.1.0-2]
    case PacketType.AUTH:
      return c.io.close('protocolError', 'AUTH without an authentication method')
    default:
      return c.io.close('malformedPacket', `packet type ${frame.type} is not sent by clients`)
  }
}

export function fromUpstream(c: Connected, frame: Frame): void {
  switch (frame.type) {
    case PacketType.PUBLISH:
      return publishFromUpstream(c, frame)
    case PacketType.SUBACK:
      return subackFromUpstream(c, frame)
    case PacketType.UNSUBACK:
      return unsubackFromUpstream(c, frame)
    case PacketType.DISCONNECT:
      return disconnectFromUpstream(c, frame)
    case PacketType.PUBREL:
      return pubrelFromUpstream(c, frame)
    case PacketType.CONNACK:
    case PacketType.CONNECT:
    case PacketType.SUBSCRIBE:
    case PacketType.UNSUBSCRIBE:
    case PacketType.PINGREQ:
      c.log.warn({ type: frame.type }, 'unexpected packet from the broker')
      return c.io.close('unspecified', 'protocol error from the broker')
    default:
      // PUBACK, PUBREC, PUBCOMP, PINGRESP, AUTH: no topic, passed as the broker sent them (SPEC §8).
      return c.io.toClient(frame.bytes)
  }
}
