// perTurn (src/cluster/per-turn.ts): what is asked in one turn of the event loop goes in one flush, in
// order, each caller getting its own answer; a later turn gets its own flush; a failed flush fails its batch.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { perTurn } from '../src/cluster/per-turn.js'

test('perTurn: one flush per turn, answers in order; a failed flush rejects only its own batch', async () => {
  const flushes: string[][] = []
  const upper = perTurn<string, string>(async (items) => {
    flushes.push(items)
    if (items.includes('boom')) throw new Error('flush failed')
    return items.map((i) => i.toUpperCase())
  })
  assert.deepEqual(await Promise.all([upper('a'), upper('b'), upper('c')]), ['A', 'B', 'C'])
  assert.deepEqual(await upper('d'), 'D')
  const failed = [upper('e'), upper('boom')].map((p) =>
    p.then(
      () => 'ok',
      (err: Error) => err.message,
    ),
  )
  assert.deepEqual(await Promise.all(failed), ['flush failed', 'flush failed'])
  assert.equal(await upper('f'), 'F', 'the next turn flushes afresh')
  assert.deepEqual(flushes, [['a', 'b', 'c'], ['d'], ['e', 'boom'], ['f']])
})
