// The login throttle and ipConnectRate counted once per address across gateways (issue #18 item 4),
// against a real redis-server: failures through two gateways add up to one cooldown, seen by both.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../src/log.js'
import { connectRedis, type ClusterRedis } from '../src/cluster/redis.js'
import { redisAddressRate, redisThrottle } from '../src/cluster/throttle.js'
import { startRedis, type RedisServer } from './helpers/redis.js'

const log = createLogger({ level: 'silent' })
let redis: RedisServer
let a: ClusterRedis
let b: ClusterRedis

before(async () => {
  redis = await startRedis()
  a = connectRedis(redis.url, { log })
  b = connectRedis(redis.url, { log })
  assert.ok(await a.ready(5000))
  assert.ok(await b.ready(5000))
})
after(async () => {
  await a.close()
  await b.close()
  await redis.stop()
})

test('login throttle: failures through two gateways add up to one cooldown for that address only', async () => {
  const onA = redisThrottle(a, 4, 60_000)
  const onB = redisThrottle(b, 4, 60_000)
  await onA.fail('192.0.2.7')
  await onB.fail('192.0.2.7')
  await onA.fail('192.0.2.7')
  assert.equal(await onB.blocked('192.0.2.7'), false, 'three of four')
  await onB.fail('192.0.2.7')
  assert.equal(await onA.blocked('192.0.2.7'), true, 'blocked on the gateway that saw half the failures')
  assert.equal(await onB.blocked('192.0.2.7'), true)
  assert.equal(await onA.blocked('192.0.2.8'), false, 'another address is not')
})

test('ipConnectRate: one count per address across gateways and per listener', async () => {
  const onA = redisAddressRate(a, 3, 'mqtt')
  const onB = redisAddressRate(b, 3, 'mqtt')
  const got = [await onA('198.51.100.1'), await onB('198.51.100.1'), await onA('198.51.100.1'), await onB('198.51.100.1')]
  assert.deepEqual(got, [true, true, true, false])
  assert.equal(await onB('198.51.100.2'), true)
  assert.equal(await redisAddressRate(b, 3, 'mqtts')('198.51.100.1'), true, 'another listener counts apart')
})
