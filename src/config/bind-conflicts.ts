// Listeners that cannot all bind: `start` would fail on its own second listener with "port in use", so
// `check` and reload say which two collide. Pure, so the rules are readable and unit-tested.
import net from 'node:net'

export interface BoundSocket {
  /** how the operator names it, e.g. `listeners[1] "mqtts"` or `admin` */
  readonly label: string
  /** the YAML path of its bind, for the line number */
  readonly path: ReadonlyArray<string | number>
  readonly host: string
  readonly port: number
}

export interface BindConflict {
  readonly first: BoundSocket
  readonly second: BoundSocket
}

/**
 * Whether binding both on one host fails (Linux, SO_REUSEADDR as Node sets it): the same address, or a
 * wildcard and an address it covers. `::` is dual-stack in Node, so it covers every IPv4 and IPv6
 * address; `0.0.0.0` covers IPv4 only. Host names (`localhost`) are compared by name and count as
 * either family against a wildcard. Port 0 asks the kernel for a free port and never collides.
 */
export function bindsCollide(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  if (a.port !== b.port || a.port === 0) return false
  const ha = normalize(a.host)
  const hb = normalize(b.host)
  if (ha === hb) return true
  if (ha === '::' || hb === '::') return true
  if (ha === '0.0.0.0') return family(hb) !== 6
  if (hb === '0.0.0.0') return family(ha) !== 6
  return false
}

/** Every colliding pair, in the order of the config (each pair once). */
export function bindConflicts(sockets: readonly BoundSocket[]): BindConflict[] {
  const out: BindConflict[] = []
  sockets.forEach((first, i) => {
    for (const second of sockets.slice(i + 1)) {
      if (bindsCollide(first, second)) out.push({ first, second })
    }
  })
  return out
}

function normalize(host: string): string {
  const h = host.toLowerCase()
  if (h === '' || h === '[::]' || h === '::0' || h === '0:0:0:0:0:0:0:0') return '::'
  if (h.startsWith('::ffff:') && net.isIPv4(h.slice(7))) return h.slice(7)
  if (net.isIPv6(h)) return compressV6(h)
  return h
}

function family(host: string): 4 | 6 | 0 {
  return net.isIPv4(host) ? 4 : net.isIPv6(host) ? 6 : 0
}

/** One spelling per IPv6 address, so `::1` and `0:0::1` are the same bind. */
function compressV6(h: string): string {
  const sockaddr = new net.SocketAddress({ address: h, family: 'ipv6' })
  return sockaddr.address
}
