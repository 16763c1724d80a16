// The PROXY header parser: headers built by an independent implementation (proxy-protocol-js) read back
// to their source, headers cut at every byte are "incomplete" (never invalid, never a source), the
// bytes after a header are left to MQTT, and no input makes it throw (fast-check).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  UnixAddress,
  UnixProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js'
import { parseProxyHeader } from '../src/listeners/proxy-protocol.js'

const CONNECT = Buffer.from('101000044d5154540402003c000474657374', 'hex') // CONNECT, client ID "test"

const v1 = (family: INETProtocol, src: string, dst: string, sport: number, dport: number): Buffer =>
  Buffer.from(new V1ProxyProtocol(family, new Peer(src, sport), new Peer(dst, dport)).build(), 'latin1')
const v2 = (
  command: Command,
  transport: TransportProtocol,
  address: IPv4ProxyAddress | IPv6ProxyAddress | UnixProxyAddress,
): Buffer => Buffer.from(new V2ProxyProtocol(command, transport, address).build())
const ipv4 = (src: number[], sport: number): IPv4ProxyAddress =>
  new IPv4ProxyAddress(IPv4Address.createFrom(src), sport, IPv4Address.createFrom([198, 51, 100, 1]), 1883)
const ipv6 = (src: number[], sport: number): IPv6ProxyAddress =>
  new IPv6ProxyAddress(
    IPv6Address.createFrom(src),
    sport,
    IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
    1883,
  )

/** Every strict prefix is incomplete; the whole header, with MQTT bytes after it, is read to `source`. */
function assertReads(header: Buffer, source: { address: string; port: number } | undefined): void {
  for (let n = 0; n < header.length; n++)
    assert.deepEqual(parseProxyHeader(header.subarray(0, n)), { kind: 'incomplete' }, `prefix of ${n} bytes`)
  const expected =
    source === undefined ? { kind: 'header', length: header.length } : { kind: 'header', length: header.length, source }
  assert.deepEqual(parseProxyHeader(header), expected)
  assert.deepEqual(parseProxyHeader(Buffer.concat([header, CONNECT])), expected)
}

test('v1: TCP4 and TCP6 give the source address and port, IPv6 written as Node.js writes it', () => {
  assertReads(v1(INETProtocol.TCP4, '192.0.2.10', '198.51.100.1', 56324, 1883), { address: '192.0.2.10', port: 56324 })
  assertReads(v1(INETProtocol.TCP6, '2001:0DB8:0:0:0:0:0:0001', '2001:db8::2', 40000, 1883), {
    address: '2001:db8::1',
    port: 40000,
  })
  assertReads(v1(INETProtocol.TCP6, '::ffff:192.0.2.10', '::1', 1, 1883), { address: '::ffff:192.0.2.10', port: 1 })
})

test("v1: UNKNOWN means the balancer's own connection (no source)", () => {
  assertReads(v1(INETProtocol.UNKNOWN, '', '', 0, 0), undefined)
  assertReads(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), undefined)
})

test('v2: PROXY over IPv4 and IPv6 gives the source; TLVs after the addresses are skipped', () => {
  assertReads(v2(Command.PROXY, TransportProtocol.STREAM, ipv4([192, 0, 2, 10], 56324)), {
    address: '192.0.2.10',
    port: 56324,
  })
  assertReads(
    v2(
      Command.PROXY,
      TransportProtocol.STREAM,
      ipv6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 65535),
    ),
    { address: '2001:db8::1', port: 65535 },
  )
  assertReads(
    v2(Command.PROXY, TransportProtocol.STREAM, ipv6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10], 5)),
    { address: '::ffff:192.0.2.10', port: 5 },
  )
  // A PP2_TYPE_AUTHORITY TLV ("mqtt.acme.test") counted in the header's length.
  const plain = v2(Command.PROXY, TransportProtocol.STREAM, ipv4([192, 0, 2, 10], 1000))
  const tlv = Buffer.concat([Buffer.from([0x02, 0x00, 14]), Buffer.from('mqtt.acme.test')])
  const withTlv = Buffer.concat([plain, tlv])
  withTlv.writeUInt16BE(plain.readUInt16BE(14) + tlv.length, 14)
  assertReads(withTlv, { address: '192.0.2.10', port: 1000 })
})

test("v2: LOCAL (a health check), UNSPEC and UNIX keep the socket's own address", () => {
  assertReads(v2(Command.LOCAL, TransportProtocol.UNSPEC, ipv4([0, 0, 0, 0], 0)), undefined)
  assertReads(
    v2(
      Command.PROXY,
      TransportProtocol.STREAM,
      new UnixProxyAddress(UnixAddress.createFrom([47, 116, 109, 112]), UnixAddress.createFrom([47])),
    ),
    undefined,
  )
  const unspec = Buffer.from(v2(Command.PROXY, TransportProtocol.STREAM, ipv4([192, 0, 2, 10], 1)))
  unspec[13] = 0x00 // AF_UNSPEC, UNSPEC: the addresses are to be ignored
  assertReads(unspec, undefined)
})

test('not a PROXY header, or a broken one: invalid, with the reason', () => {
  const reason = (b: Buffer): string => {
    const r = parseProxyHeader(b)
    return r.kind === 'invalid' ? r.reason : r.kind
  }
  assert.equal(reason(CONNECT), 'no PROXY protocol header')
  assert.equal(reason(Buffer.from('GET / HTTP/1.1\r\n')), 'no PROXY protocol header')
  assert.equal(reason(Buffer.from('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n')), 'v1 protocol "TCP5"')
  assert.equal(reason(Buffer.from('PROXY TCP4 1.2.3.4 ::1 1 2\r\n')), 'v1 addresses')
  assert.equal(reason(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n')), 'v1 ports')
  assert.equal(reason(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n')), 'v1 ports')
  assert.equal(reason(Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)), 'v1 header without CRLF within 107 bytes')
  const good = v2(Command.PROXY, TransportProtocol.STREAM, ipv4([192, 0, 2, 10], 1))
  const broken = (at: number, value: number): Buffer => {
    const b = Buffer.from(good)
    b[at] = value
    return b
  }
  assert.equal(reason(broken(12, 0x11)), 'v2 version')
  assert.equal(reason(broken(12, 0x22)), 'v2 command')
  assert.equal(reason(broken(13, 0x41)), 'v2 address family')
  assert.equal(reason(broken(13, 0x12)), 'v2 transport is not a stream')
  const short = Buffer.from(good)
  short.writeUInt16BE(4, 14)
  assert.equal(reason(short), 'v2 addresses longer than the header')
})

test('fuzz: any bytes give a verdict without throwing; a header never claims more bytes than it was given', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.concat([Buffer.from('PROXY '), b])),
        fc
          .uint8Array({ maxLength: 120 })
          .map((b) => Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), b])),
      ),
      (bytes) => {
        const r = parseProxyHeader(Buffer.from(bytes))
        if (r.kind === 'header') assert.ok(r.length <= bytes.length)
      },
    ),
    { numRuns: 3000 },
  )
})

test('fuzz: every IPv4/IPv6 source and port survives a v1 and a v2 round trip', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 65535 }), (address, port) => {
      const isV4 = !address.includes(':')
      const text = v1(isV4 ? INETProtocol.TCP4 : INETProtocol.TCP6, address, isV4 ? '198.51.100.1' : '::1', port, 1883)
      const fromV1 = parseProxyHeader(text)
      assert.equal(fromV1.kind, 'header')
      if (fromV1.kind !== 'header' || fromV1.source === undefined) return
      assert.equal(fromV1.source.port, port)
      // The same address, written once by v1's parser, reads the same from v2's bytes.
      const bytes = isV4 ? fromV1.source.address.split('.').map(Number) : ipv6Bytes(fromV1.source.address)
      const fromV2 = parseProxyHeader(
        v2(Command.PROXY, TransportProtocol.STREAM, isV4 ? ipv4(bytes, port) : ipv6(bytes, port)),
      )
      assert.deepEqual(fromV2, {
        kind: 'header',
        length: fromV2.kind === 'header' ? fromV2.length : -1,
        source: fromV1.source,
      })
    }),
    { numRuns: 500 },
  )
})

/** 16 bytes of an IPv6 address (as Node.js's URL parser reads it, independently of ipaddr.js). */
function ipv6Bytes(address: string): number[] {
  const host = new URL(`http://[${address}]/`).hostname.slice(1, -1)
  const [head = '', tail = ''] = host.split('::')
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)))
  const h = groups(head)
  const t = host.includes('::') ? groups(tail) : []
  const all = [...h, ...(Array(8 - h.length - t.length).fill(0) as number[]), ...t]
  return all.flatMap((g) => [g >> 8, g & 0xff])
}
