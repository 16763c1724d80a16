// Token buckets and the verdicts the limits return (SPEC §7): pure arithmetic, on a clock the test sets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TokenBucket } from '../src/policy/rate.js'
import { TenantLimits } from '../src/policy/limits.js'
import { DISCONNECT, GO, type SessionPolicy } from '../src/policy/session-policy.js'
import type { Limits } from '../src/config/schema.js'
import type { TenantRuntime } from '../src/tenancy/tenants.js'

test("TokenBucket: a burst of one second's worth passes, then the debt holds for exactly excess / rate", () => {
  const b = new TokenBucket(10, 10, 0)
  for (let i = 0; i < 10; i++) assert.equal(b.take(1, 0), 0)
  assert.equal(b.take(1, 0), 100, 'one token of debt at 10/s: 100 ms')
  assert.equal(b.take(4, 0), 500)
  assert.equal(b.fits(1, 0), false)
  assert.equal(b.take(0, 500), 0, 'paid back after 500 ms')
  assert.equal(b.fits(1, 600), true)
  assert.equal(b.take(0, 60_000), 0)
  assert.equal(b.fits(11, 60_000), false, 'never more than the burst saved')
})

function policy(limits: Limits): SessionPolicy {
  const tenant = { id: 't', limits } as unknown as TenantRuntime
  return new TenantLimits(undefined).admit(tenant) as unknown as SessionPolicy
}

test('limits: publishRate forwards the burst, then a PUBLISH holds the client for its debt; other packets pass', async () => {
  const p = await policy({ publishRate: 100 })
  assert.equal(p.paced, true)
  const now = Date.now()
  let verdicts = 0
  for (let i = 0; i < 100; i++) verdicts += p.charge(true, 10, now)
  assert.equal(verdicts, GO, "the first second's worth goes at once")
  assert.equal(p.charge(false, 10, now), GO, 'a PUBACK is not a message')
  assert.equal(p.charge(true, 10, now), 10, 'one message of debt at 100/s: 10 ms')
})

test('limits: debt under 5 ms is carried to the next hold rather than costing a timer per packet', async () => {
  const p = await policy({ clientPublishRate: 1000 })
  const now = Date.now()
  for (let i = 0; i < 1000; i++) p.charge(true, 10, now)
  for (let i = 0; i < 4; i++) assert.equal(p.charge(true, 10, now), GO)
  assert.equal(p.charge(true, 10, now), 5)
})

test('limits: rateAction disconnect refuses the first PUBLISH beyond the burst, however fast they come', async () => {
  const p = await policy({ publishRate: 5, rateAction: 'disconnect' })
  const now = Date.now()
  for (let i = 0; i < 5; i++) assert.equal(p.charge(true, 10, now), GO)
  assert.equal(p.charge(true, 10, now), DISCONNECT)
})

test('limits: bandwidth paces by bytes, every packet counted', async () => {
  const p = await policy({ bandwidth: 1000 })
  const now = Date.now()
  assert.equal(p.charge(false, 1000, now), GO)
  assert.equal(p.charge(true, 500, now), 500)
})

test('limits: no rate, nothing paced', async () => {
  assert.equal((await policy({ maxConnections: 5 })).paced, false)
})
