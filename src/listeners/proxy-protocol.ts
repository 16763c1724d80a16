// PROXY protocol v1 and v2 (haproxy's proxy-protocol.txt) for listeners behind a load balancer: the
// balancer writes the client's address ahead of the client's first byte, and the gateway uses that
// address wherever it would use the socket's — logs, the per-IP limits, the admin API's client list.
// proxy-protocol-js parses headers it is given whole, but a socket delivers them in pieces and followed
// by the client's bytes; the framing (how long is the header?) is the part that matters here, so the
// parser is this file's, and the tests check it against that library's builder and against haproxy.
import { isIPv4, isIPv6, type Socket } from 'node:net'
import ipaddr from 'ipaddr.js'

/** Where a proxied connection really comes from. */
export interface ProxySource {
  readonly address: string
  readonly port: number
}

export type ProxyHeader =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** `length` bytes of header; no `source` when the balancer speaks for itself (LOCAL, UNKNOWN, UNSPEC, UNIX) */
  | { readonly kind: 'header'; readonly length: number; readonly source?: ProxySource }

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')
const V2_FIXED = 16
const V1_PREFIX = Buffer.from('PROXY ')
/** the longest v1 line the protocol allows, CRLF included */
const V1_MAX = 107

const INCOMPLETE: ProxyHeader = { kind: 'incomplete' }
const invalid = (reason: string): ProxyHeader => ({ kind: 'invalid', reason })

/** Reads a PROXY header (v1 or v2) at the start of `buf`: whole, not yet whole, or not one. */
export function parseProxyHeader(buf: Buffer): ProxyHeader {
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < V2_FIXED ? INCOMPLETE : parseV2(buf)
  if (startsLike(buf, V1_PREFIX)) return parseV1(buf)
  return invalid('no PROXY protocol header')
}

/** true when `buf` matches `prefix` for as many bytes as both have */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length)
  return buf.compare(prefix, 0, n, 0, n) === 0
}

// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 1883\r\n", or "PROXY UNKNOWN …\r\n"
function parseV1(buf: Buffer): ProxyHeader {
  const end = buf.subarray(0, V1_MAX).indexOf('\r\n')
  if (end === -1) return buf.length >= V1_MAX ? invalid('v1 header without CRLF within 107 bytes') : INCOMPLETE
  const length = end + 2
  const [, family, src, dst, srcPort, dstPort, ...extra] = buf.toString('latin1', 0, end).split(' ')
  if (family === 'UNKNOWN') return { kind: 'header', length }
  const isIp = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isIPv6 : undefined
  if (isIp === undefined) return invalid(`v1 protocol ${JSON.stringify(family)}`)
  if (src === undefined || dst === undefined || !isIp(src) || !isIp(dst) || extra.length > 0)
    return invalid('v1 addresses')
  const port = v1Port(srcPort)
  if (port === undefined || v1Port(dstPort) === undefined) return invalid('v1 ports')
  return { kind: 'header', length, source: { address: canonical(ipaddr.parse(src)), port } }
}

function v1Port(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return undefined
  const port = Number(text)
  return port <= 65_535 ? port : undefined
}

function parseV2(buf: Buffer): ProxyHeader {
  const versionCommand = buf[12] as number
  if (versionCommand >> 4 !== 2) return invalid('v2 version')
  const command = versionCommand & 0x0f // 0 LOCAL, 1 PROXY
  if (command > 1) return invalid('v2 command')
  const length = V2_FIXED + buf.readUInt16BE(14)
  if (buf.length < length) return INCOMPLETE
  // LOCAL: the balancer's own connection (a health check); the socket's address is the truth.
  if (command === 0) return { kind: 'header', length }
  const family = (buf[13] as number) >> 4 // 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX
  const transport = (buf[13] as number) & 0x0f // 1 STREAM
  if (family === 0 || family === 3) return { kind: 'header', length }
  if (family > 3) return invalid('v2 address family')
  if (transport !== 1) return invalid('v2 transport is not a stream')
  // Source address, destination address, source port, destination port; TLVs after them are skipped.
  const bytes = family === 1 ? 4 : 16
  if (length < V2_FIXED + 2 * bytes + 4) return invalid('v2 addresses longer than the header')
  const address = ipaddr.fromByteArray([...buf.subarray(V2_FIXED, V2_FIXED + bytes)])
  return {
    kind: 'header',
    length,
    source: { address: canonical(address), port: buf.readUInt16BE(V2_FIXED + 2 * bytes) },
  }
}

/** Addresses as Node.js writes `socket.remoteAddress`, so one client is one key for the per-IP limits. */
function canonical(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return `::ffff:${(address as ipaddr.IPv6).toIPv4Address().toString()}`
  }
  return address.toString()
}

/**
 * Reads the PROXY header off a new connection, then calls `onHeader` with the socket paused and the
 * client's bytes that came with the header put back in front of its stream. Without a valid header
 * within `timeoutMs` the socket is destroyed unanswered: the gateway cannot tell whom it would answer.
 * The deadline runs from accept and is not restarted by bytes (a socket idle timeout would be: a header
 * dribbled a byte every few seconds kept a connection open indefinitely).
 */
export function readProxyHeader(
  socket: Socket,
  timeoutMs: number,
  onHeader: (source: ProxySource | undefined) => void,
  onInvalid: (reason: string) => void,
): void {
  let held: Buffer = Buffer.alloc(0)
  const stop = (): void => {
    socket.off('data', onData)
    socket.off('error', onError)
    socket.off('close', stop)
    clearTimeout(deadline)
  }
  const onError = (): void => {
    stop()
    socket.destroy()
  }
  const onData = (chunk: Buffer): void => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk])
    const header = parseProxyHeader(held)
    if (header.kind === 'incomplete') return
    stop()
    if (header.kind === 'invalid') {
      onInvalid(header.reason)
      socket.destroy()
      return
    }
    socket.pause()
    if (held.length > header.length) socket.unshift(held.subarray(header.length))
    onHeader(header.source)
  }
  const deadline = setTimeout(() => {
    stop()
    onInvalid('no PROXY header within connectTimeout')
    socket.destroy()
  }, timeoutMs)
  socket.on('data', onData)
  socket.on('error', onError)
  socket.on('close', stop)
}
