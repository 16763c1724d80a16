// Rates: what the in-memory limiter tells a sender (go on, pace, or hold until the window reopens).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { memoryRateLimiter } from '../src/policy/rate.js'

test('memoryRateLimiter: a burst within the rate is paced over the window, then the rate is exceeded', async () => {
  const limiter = memoryRateLimiter(100)
  const first = await limiter.take('k', 10)
  assert.equal(first.exceeded, false)
  // 10 of 100 in a fresh 1 s window: spread evenly, that is ~100 ms before the next 10.
  assert.ok(first.ms > 50 && first.ms <= 100, `paced ${first.ms} ms`)
  assert.equal(first.busy, false, 'a burst into a quiet window is not the rate holding the sender back')
  const later = await limiter.take('k', 50)
  assert.equal(later.exceeded, false)
  assert.equal(later.busy, true, 'more than half the window used')
  const over = await limiter.take('k', 50)
  assert.equal(over.exceeded, true)
  assert.ok(over.ms > 0 && over.ms <= 1000)
  // The same limiter, another key: a fresh limiter here would pass whatever the keys did.
  assert.equal((await limiter.take('other', 1)).exceeded, false, 'another key has its own window')
})

test('memoryRateLimiter: keys are separate, and a fractional rate allows one per period', async () => {
  const limiter = memoryRateLimiter(0.5)
  assert.equal((await limiter.take('a', 1)).exceeded, false)
  assert.equal((await limiter.take('b', 1)).exceeded, false)
  const over = await limiter.take('a', 1)
  assert.equal(over.exceeded, true)
  assert.ok(over.ms > 1000 && over.ms <= 2000, `held ${over.ms} ms`)
})
