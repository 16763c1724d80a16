// PUBACK, PUBREC, PUBREL, PUBCOMP, both directions. They carry no topic, so they pass as raw bytes once
// their shape is checked — except the QoS 2 flows the gateway answered itself: a refused PUBLISH from a
// v3 client (acknowledged and dropped) and a foreign message from the broker (never delivered).
import type { Frame } from '../../codec.js'
import type { Connected } from '../connected.js'

/** PUBACK/PUBREC/PUBCOMP from the client. */
export function ackFromClient(c: Connected, frame: Frame): void {
  forwardAck(c, frame, 0)
}

export function pubrelFromClient(c: Connected, frame: Frame): void {
  if (frame.flags !== 0x02) return c.io.close('malformedPacket', 'PUBREL with reserved flags') // [MQTT-3.6.1-1]
  if (frame.bytes.length >= 4) {
    const id = frame.bytes.readUInt16BE(frame.headerLength)
    if (c.takeLocalQos2(id)) return c.sendToClient({ cmd: 'pubcomp', messageId: id })
  }
  forwardAck(c, frame, 0x02)
}

/** Checked for shape and passed as raw bytes. */
function forwardAck(c: Connected, frame: Frame, flags: number): void {
  const remaining = frame.bytes.length - frame.headerLength
  const wellFormed = frame.flags === flags && (c.v5 ? remaining >= 2 : remaining === 2)
  if (!wellFormed) return c.io.close('malformedPacket', 'malformed acknowledgement')
  if (remaining > 3 && c.decodeClient(frame) === undefined) return // v5 properties: let the codec vet them
  c.io.toUpstream(frame.bytes)
}

export function pubrelFromUpstream(c: Connected, frame: Frame): void {
  if (frame.bytes.length >= 4) {
    const id = frame.bytes.readUInt16BE(frame.headerLength)
    if (c.takeForeignQos2(id)) return c.sendToUpstream({ cmd: 'pubcomp', messageId: id })
  }
  c.io.toClient(frame.bytes)
}
