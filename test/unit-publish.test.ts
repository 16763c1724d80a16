// The byte-splicing PUBLISH rewrite must produce exactly what a full decode → re-encode would.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import { FrameReader, decodePacket, type Frame } from '../src/codec.js'
import { readPublish, mountPublish, unmountPublish, topicBytesProblem } from '../src/session/splice.js'

function frameOf(bytes: Buffer): Frame {
  const frames: Frame[] = []
  new FrameReader(1 << 28).push(bytes, (f) => frames.push(f))
  assert.equal(frames.length, 1)
  return frames[0] as Frame
}

const topicArb = fc
  .string({ minLength: 1, maxLength: 40, unit: 'grapheme' })
  .filter((t) => !/[+#]/.test(t) && !t.includes('\u0000'))
const publishArb = fc.record({
  topic: topicArb,
  payload: fc.uint8Array({ maxLength: 300 }),
  qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
  retain: fc.boolean(),
  dup: fc.boolean(),
  messageId: fc.integer({ min: 1, max: 65535 }),
  version: fc.constantFrom(4, 5),
  prefix: fc.constantFrom('acme/', 'a/', 'tenant-with-a-long-name-for-varint-growth/'.repeat(4)),
})

test('mountPublish equals re-encoding with the mounted topic', () => {
  fc.assert(
    fc.property(publishArb, (p) => {
      const packet = {
        cmd: 'publish' as const,
        topic: p.topic,
        payload: Buffer.from(p.payload),
        qos: p.qos,
        retain: p.retain,
        dup: p.qos > 0 && p.dup,
        messageId: p.qos > 0 ? p.messageId : undefined,
      }
      const wire = mqttPacket.generate(packet, { protocolVersion: p.version })
      const frame = frameOf(wire)
      const view = readPublish(frame, p.version === 5)
      assert.ok(view)
      assert.equal(topicBytesProblem(frame.bytes, view.topicOffset, view.topicLength), undefined)
      const mounted = mountPublish(frame, view, Buffer.from(p.prefix))
      const expected = mqttPacket.generate({ ...packet, topic: p.prefix + p.topic }, { protocolVersion: p.version })
      assert.deepEqual(mounted, expected)
    }),
    { numRuns: 300 },
  )
})

test('topicBytesProblem: ill-formed UTF-8 and U+0000 are malformed, wildcards and empty are invalid names', () => {
  const cases: Array<[number[], string | undefined]> = [
    [[0x61, 0x2f, 0x62], undefined],
    [[0xc3, 0xa9], undefined], // é
    [[0xc3, 0x28], 'malformedPacket'], // a lead byte without its continuation
    [[0xed, 0xa0, 0x80], 'malformedPacket'], // a UTF-16 surrogate encoded as UTF-8
    [[0x61, 0x00], 'malformedPacket'],
    [[0x61, 0x2f, 0x2b], 'topicNameInvalid'],
    [[0x23], 'topicNameInvalid'],
    [[], 'topicNameInvalid'],
  ]
  for (const [bytes, expected] of cases) {
    const buf = Buffer.from([0xff, ...bytes, 0xff]) // the topic sits inside a larger buffer, as in a frame
    assert.equal(topicBytesProblem(buf, 1, bytes.length), expected, Buffer.from(bytes).toString('hex'))
  }
})

test('unmountPublish equals re-encoding with the prefix removed, and refuses foreign topics', () => {
  fc.assert(
    fc.property(publishArb, topicArb, (p, other) => {
      const packet = {
        cmd: 'publish' as const,
        topic: p.prefix + p.topic,
        payload: Buffer.from(p.payload),
        qos: p.qos,
        retain: p.retain,
        dup: false,
        messageId: p.qos > 0 ? p.messageId : undefined,
      }
      const frame = frameOf(mqttPacket.generate(packet, { protocolVersion: p.version }))
      const view = readPublish(frame, p.version === 5)
      assert.ok(view)
      const out = unmountPublish(frame, view, Buffer.from(p.prefix))
      assert.deepEqual(out, mqttPacket.generate({ ...packet, topic: p.topic }, { protocolVersion: p.version }))
      if (!other.startsWith(p.prefix)) {
        const foreign = frameOf(mqttPacket.generate({ ...packet, topic: other }, { protocolVersion: p.version }))
        const fv = readPublish(foreign, p.version === 5)
        assert.ok(fv)
        assert.equal(unmountPublish(foreign, fv, Buffer.from(p.prefix)), null)
      }
    }),
    { numRuns: 300 },
  )
})

test('a topic equal to the bare prefix is not delivered (nothing left to unmount)', () => {
  const frame = frameOf(
    mqttPacket.generate(
      { cmd: 'publish', topic: 'acme/', payload: Buffer.from('x'), qos: 0, retain: false, dup: false },
      { protocolVersion: 4 },
    ),
  )
  const view = readPublish(frame, false)
  assert.ok(view)
  assert.equal(unmountPublish(frame, view, Buffer.from('acme/')), null)
})

test('readPublish rejects QoS 3, packet id 0 and truncated topics', () => {
  assert.equal(readPublish(frameOf(Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])), false), null)
  assert.equal(readPublish(frameOf(Buffer.from([0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00])), false), null)
  assert.equal(readPublish(frameOf(Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61])), false), null)
})

test('FrameReader reassembles split frames and refuses oversize before buffering the body', () => {
  const wire = mqttPacket.generate(
    { cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(500), qos: 0, retain: false, dup: false },
    { protocolVersion: 4 },
  )
  const reader = new FrameReader(1000)
  const got: Buffer[] = []
  for (let i = 0; i < wire.length; i += 7) reader.push(wire.subarray(i, i + 7), (f) => got.push(Buffer.from(f.bytes)))
  assert.deepEqual(got, [wire])
  assert.throws(() => new FrameReader(100).push(wire.subarray(0, 4), () => {}), /exceeds/)
  assert.throws(
    () => new FrameReader(100).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), () => {}),
    /remaining length/,
  )
})

test('FrameReader: any split of a stream of frames gives the same frames, and buffered counts what is held', () => {
  const frame = fc
    .tuple(fc.integer({ min: 1, max: 14 }), fc.uint8Array({ maxLength: 300 }))
    .map(([type, body]) => Buffer.concat([Buffer.from([type << 4]), encodeLength(body.length), Buffer.from(body)]))
  fc.assert(
    fc.property(
      fc.array(frame, { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }),
      (frames, cuts) => {
        const wire = Buffer.concat(frames)
        const reader = new FrameReader(1 << 20)
        const got: Buffer[] = []
        let at = 0
        for (let i = 0; at < wire.length; i++) {
          const size = cuts[i % cuts.length] as number
          reader.push(wire.subarray(at, at + size), (f) => got.push(Buffer.from(f.bytes)))
          at += size
        }
        assert.deepEqual(got, frames)
        assert.equal(reader.buffered, 0)
      },
    ),
  )
})

test('FrameReader: a reader that stops after some frames gets the rest, in order, once it reads on; held chunks are not read', () => {
  const frame = fc
    .tuple(fc.integer({ min: 1, max: 14 }), fc.uint8Array({ maxLength: 100 }))
    .map(([type, body]) => Buffer.concat([Buffer.from([type << 4]), encodeLength(body.length), Buffer.from(body)]))
  fc.assert(
    fc.property(
      fc.array(frame, { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 1, max: 80 }),
      fc.integer({ min: 1, max: 4 }),
      (frames, cut, every) => {
        const wire = Buffer.concat(frames)
        const reader = new FrameReader(1 << 20)
        const got: Buffer[] = []
        // The session's pattern: a chunk is pushed only while reading; while stopped it is held.
        let stopped = false
        const onFrame = (f: Frame): boolean => {
          got.push(Buffer.from(f.bytes))
          stopped = got.length % every === 0
          return !stopped
        }
        for (let at = 0; at < wire.length; at += cut) {
          const chunk = wire.subarray(at, at + cut)
          if (stopped) {
            const before = got.length
            reader.hold(chunk)
            assert.equal(got.length, before, 'a held chunk is not read')
          } else {
            reader.push(chunk, onFrame)
          }
          if (stopped && at % 2 === 0) {
            stopped = false
            reader.push(undefined, onFrame)
          } // reads on, sometimes
        }
        for (let guard = 0; reader.buffered > 0 && guard < 100; guard++) {
          stopped = false
          reader.push(undefined, onFrame)
        }
        assert.deepEqual(got, frames)
        assert.equal(reader.buffered, 0)
      },
    ),
  )
})

test('FrameReader: a large frame dribbled one byte at a time is joined once, not once per byte', () => {
  const wire = mqttPacket.generate(
    { cmd: 'publish', topic: 't', payload: Buffer.alloc(200_000), qos: 0, retain: false, dup: false },
    { protocolVersion: 4 },
  )
  const reader = new FrameReader(1 << 20)
  const concat = Buffer.concat
  let joinedBytes = 0
  Buffer.concat = (list: readonly Uint8Array[], total?: number) => {
    const b = concat(list, total)
    joinedBytes += b.length
    return b
  }
  try {
    let frames = 0
    for (let i = 0; i < wire.length; i++) reader.push(wire.subarray(i, i + 1), () => frames++)
    assert.equal(frames, 1)
    // Quadratic joining would copy ~20 GB here; a few joins of the header and one of the frame is linear.
    assert.ok(joinedBytes < 3 * wire.length, `joined ${joinedBytes} bytes for a ${wire.length}-byte frame`)
  } finally {
    Buffer.concat = concat
  }
})

function encodeLength(n: number): Buffer {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return Buffer.from(out)
}

test('decodePacket: a 3.1.1 CONNACK read by hand says what mqtt-packet says, and bad flags are refused alike', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), (flags, code) => {
      const bytes = Buffer.from([0x20, 0x02, flags, code])
      const parser = mqttPacket.parser({ protocolVersion: 4 })
      let reference: mqttPacket.Packet | Error | undefined
      parser.on('packet', (p: mqttPacket.Packet) => {
        reference = p
      })
      parser.on('error', (e: Error) => {
        reference = e
      })
      parser.parse(bytes)
      let ours: mqttPacket.Packet | Error
      try {
        ours = decodePacket(frameOf(bytes), 4)
      } catch (err) {
        ours = err as Error
      }
      if (reference instanceof Error) return assert.ok(ours instanceof Error, `flags ${flags} refused`)
      assert.ok(!(ours instanceof Error) && reference?.cmd === 'connack' && ours.cmd === 'connack')
      assert.equal(ours.sessionPresent, reference.sessionPresent)
      assert.equal(ours.returnCode, reference.returnCode)
    }),
  )
})
