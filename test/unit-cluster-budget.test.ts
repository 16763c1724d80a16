// The arithmetic of a cluster-wide budget taken in batches (src/cluster/batch.ts): batch sizes within
// their bounds, the overshoot bound about half a burst, and the bucket with debt the Lua script mirrors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { batchSize, chargeBucket, lowWater, maxBatch, overshootBound } from '../src/cluster/batch.js'

test('a batch covers 100 ms of the recent rate, at least 1, at most half the burst shared by the gateways', () => {
  assert.equal(batchSize({ rate: 1000, burst: 1000, gateways: 2, recentRate: 500 }), 50)
  assert.equal(batchSize({ rate: 1000, burst: 1000, gateways: 2, recentRate: 0 }), 1)
  assert.equal(batchSize({ rate: 1000, burst: 1000, gateways: 2, recentRate: 1e6 }), 250)
  assert.equal(
    batchSize({ rate: 1, burst: 1, gateways: 3, recentRate: 50 }),
    1,
    'a tiny budget goes one token at a time',
  )
  assert.equal(lowWater(50), 25)
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e6 }),
      fc.integer({ min: 1, max: 64 }),
      fc.double({ min: 0, max: 1e7, noNaN: true }),
      (burst, gateways, recentRate) => {
        const b = batchSize({ rate: burst, burst, gateways, recentRate })
        return b >= 1 && b <= maxBatch(burst, gateways) && Number.isInteger(b)
      },
    ),
  )
})

test('overshoot: at most one batch per gateway, so about half a burst (one token per gateway for tiny bursts)', () => {
  assert.equal(overshootBound(1000, 2), 500)
  assert.equal(overshootBound(1000, 3), 498)
  assert.equal(overshootBound(10, 40), 40)
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e6 }),
      fc.integer({ min: 1, max: 64 }),
      (burst, gateways) => overshootBound(burst, gateways) <= Math.max(burst / 2, gateways),
    ),
  )
})

test('bucket with debt: refilled up to the burst, charged below zero, the wait pays the debt back', () => {
  assert.deepEqual(chargeBucket(10, 0, 10, 10, 4), { tokens: 6, waitMs: 0 })
  assert.deepEqual(chargeBucket(0, 60_000, 10, 10, 4), { tokens: 6, waitMs: 0 }, 'never above the burst')
  assert.deepEqual(chargeBucket(2, 0, 10, 10, 7), { tokens: -5, waitMs: 500 })
  assert.deepEqual(chargeBucket(-5, 500, 10, 10, 1), { tokens: -1, waitMs: 100 })
})
