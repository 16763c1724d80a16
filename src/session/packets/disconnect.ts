// DISCONNECT, both directions, and the keep-alive ping the client sends.
import type { Frame } from '../../codec.js'
import type { Connected } from '../connected.js'

/**
 * Forwarded before the upstream is closed, so the broker discards the will (or sends it for v5 0x04).
 * A v5 Session Expiry is clamped to the plan's maxSessionExpiry here too, as in CONNECT (SPEC §7).
 */
export function disconnectFromClient(c: Connected, frame: Frame): void {
  if (frame.flags !== 0) return c.io.close('malformedPacket', 'DISCONNECT with reserved flags')
  const packet = c.v5 && frame.bytes.length > 3 ? c.decodeClient(frame) : undefined
  if (packet !== undefined && packet.cmd !== 'disconnect') return
  const props = packet?.properties
  const requested = props?.sessionExpiryInterval
  const max = c.tenant.limits.maxSessionExpiry
  if (packet !== undefined && props !== undefined && requested !== undefined && max !== undefined && requested > max) {
    props.sessionExpiryInterval = max
    c.sendToUpstream(packet)
  } else {
    if (c.v5 && frame.bytes.length > 3 && packet === undefined) return // malformed: closed by decodeClient
    c.io.toUpstream(frame.bytes)
  }
  if (props?.sessionExpiryInterval !== undefined) c.expiry = expirySeconds(props.sessionExpiryInterval)
  c.io.close(null, 'client disconnected', { clientDisconnected: true })
}

/** v5 Session Expiry Interval in seconds; 0xFFFFFFFF means the session never expires [MQTT-3.1.2.11.2]. */
export function expirySeconds(interval: number): number {
  return interval === 0xffffffff ? Infinity : interval
}

export function pingFromClient(c: Connected, frame: Frame): void {
  if (frame.flags !== 0 || frame.bytes.length !== 2) return c.io.close('malformedPacket', 'malformed PINGREQ')
  c.io.toUpstream(frame.bytes)
}

/** The broker's DISCONNECT reaches a v5 client without Server Reference (another tenant's world). */
export function disconnectFromUpstream(c: Connected, frame: Frame): void {
  if (c.v5) {
    const packet = c.decodeUpstream(frame)
    if (packet?.cmd === 'disconnect') {
      if (packet.properties !== undefined) delete packet.properties.serverReference
      c.sendToClient(packet)
    }
  }
  c.io.close(null, 'broker disconnected the client')
}
