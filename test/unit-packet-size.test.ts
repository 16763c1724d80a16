// The gateway-wide packet size bound (SPEC §7, issue #17 item 4): every tenant's effective limits carry
// maxPacketSize, from its plan or limits when they set one, else the gateway's default (1 MiB).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseConfigText } from '../src/config/load.js'
import { ConfigError } from '../src/errors.js'
import { buildTenants } from '../src/tenancy/tenants.js'
import { FrameReader, FrameError } from '../src/codec.js'

const yaml = (extra: string): string => `
listeners: [{ name: m, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: embedded }
${extra}
plans: { big: { maxPacketSize: 16MiB } }
tenants:
  plain: {}
  onplan: { plan: big }
  own: { limits: { maxPacketSize: 2KiB } }
`
const sizes = (extra: string): Record<string, number | undefined> =>
  Object.fromEntries(
    [...buildTenants(parseConfigText(yaml(extra), { baseDir: '.' }).config)].map(([id, t]) => [
      id,
      t.limits.maxPacketSize,
    ]),
  )

test('tenants without a maxPacketSize get the gateway default, 1 MiB unless configured', () => {
  assert.deepEqual(sizes(''), { plain: 1024 * 1024, onplan: 16 * 1024 * 1024, own: 2048 })
  assert.deepEqual(sizes('maxPacketSize: 256KiB'), { plain: 256 * 1024, onplan: 16 * 1024 * 1024, own: 2048 })
  assert.equal(sizes('maxPacketSize: 256MiB').plain, 256 * 1024 * 1024)
  assert.throws(
    () => sizes('maxPacketSize: 257MiB'),
    (err: unknown) => err instanceof ConfigError && /maxPacketSize.*at most 256MiB/.test(err.message),
  )
})

test('after a framing error the reader holds nothing more: a cut client that keeps sending costs no memory', () => {
  const reader = new FrameReader(1024)
  assert.throws(() => reader.push(Buffer.from([0x30, 0xff, 0xff, 0x7f]), () => true), FrameError)
  let frames = 0
  for (let i = 0; i < 100; i++)
    reader.push(Buffer.alloc(64 * 1024, 0x7a), () => {
      frames++
      return false
    })
  assert.equal(reader.buffered, 0)
  assert.equal(frames, 0)
})
