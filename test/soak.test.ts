// The soak scenarios of `npm run soak` (bench/soak.ts), at a twentieth of their size: connect/drop
// cycles with abrupt closes, a stalled subscriber over TCP and one over WebSocket under a flood (RSS sampled), SIGHUP
// during a flood,
// the broker restarted mid-traffic, the broker stalled (SIGSTOP) under a flood, SIGTERM with clients
// connected — against the real gateway process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { runSoak } from '../bench/soak.js'

test('soak, short: every scenario within its bound', async () => {
  const results = await runSoak(0.05)
  assert.equal(results.length, 7)
  for (const r of results) assert.ok(r.ok, `${r.name}: ${r.detail}`)
})
