// The cluster's Redis connection (issue #18): Redis stopped and started again is one log line each
// way, however many reconnect attempts fail between, and one outage on the counter.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { createLogger } from '../src/log.js'
import { connectRedis, redactRedisUrl, type RedisState } from '../src/cluster/redis.js'
import { startRedis } from './helpers/redis.js'

test('Redis away and back: one line per change of state, the outage counted, the password never logged', async () => {
  const lines: Array<{ msg: string }> = []
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as { msg: string })
      done()
    },
  })
  const log = createLogger({ level: 'info', destination })
  const redis = await startRedis()
  const conn = connectRedis(redis.url, { log })
  try {
    assert.ok(await conn.ready(5000))
    const states: RedisState[] = []
    const next = (want: RedisState): Promise<void> =>
      new Promise((resolve) => {
        const off = conn.onState((s) => {
          states.push(s)
          if (s === want) {
            off()
            resolve()
          }
        })
      })
    const gone = next('unreachable')
    await redis.stop()
    await gone
    // Several reconnect attempts fail while it is away: still one line.
    // (events.once would reject on the 'error' each failed attempt emits.)
    await new Promise<void>((resolve) => {
      let attempts = 0
      const count = (): void => {
        if (++attempts === 3) {
          conn.commands.off('reconnecting', count)
          resolve()
        }
      }
      conn.commands.on('reconnecting', count)
    })
    const back = next('reachable')
    await redis.start()
    await back
    assert.deepEqual(states, ['unreachable', 'reachable'])
    assert.equal(conn.outages, 1)
    const cluster = lines.filter((l) => l.msg.startsWith('cluster:'))
    assert.deepEqual(
      cluster.map((l) => l.msg),
      [
        "cluster: Redis unreachable; admitting against this gateway's last known share",
        'cluster: Redis reachable again',
      ],
    )
  } finally {
    await conn.close()
    await redis.stop()
  }
  assert.equal(redactRedisUrl('redis://user:s3cret@10.0.0.5:6379/0'), 'redis://user:***@10.0.0.5:6379/0')
})
