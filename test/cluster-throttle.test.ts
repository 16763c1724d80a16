// The login throttle and ipConnectRate counted once per address across gateways (issue #18 item 4),
// against a real redis-server: failures through two gateways add up to one cooldown, seen by both.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../src/log.js'
import { connectRedis, type ClusterRedis } from '../src/cluster/redis.js'
import { redisAddressRate, redisThrottle } from '../src/cluster/throttle.js'
import { parseConfigText } from '../src/config/load.js'
import { Authenticator } from '../src/tenancy/auth.js'
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
  const got = [
    await onA('198.51.100.1'),
    await onB('198.51.100.1'),
    await onA('198.51.100.1'),
    await onB('198.51.100.1'),
  ]
  assert.deepEqual(got, [true, true, true, false])
  assert.equal(await onB('198.51.100.2'), true)
  assert.equal(await redisAddressRate(b, 3, 'mqtts')('198.51.100.1'), true, 'another listener counts apart')
})

test('Authenticator with the shared throttle: wrong passwords through two gateways lock the address out of both, a reload keeps it shared', async () => {
  const yaml = (max: number): string => `listeners: [{ name: m, type: tcp, bind: 127.0.0.1:1883 }]
upstream: { url: embedded }
auth: { maxFailuresPerMinute: ${max}, cooldown: 1m }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:a" } } }
`
  const config = parseConfigText(yaml(4), { baseDir: '/tmp', env: {} }).config
  const onA = new Authenticator(config, (perMinute, cooldownMs) =>
    redisThrottle(a, perMinute, cooldownMs, 'mtg:login-auth'),
  )
  const onB = new Authenticator(config, (perMinute, cooldownMs) =>
    redisThrottle(b, perMinute, cooldownMs, 'mtg:login-auth'),
  )
  const login = (auth: Authenticator, username: string, password: string, remoteAddress = '203.0.113.9') =>
    auth.authenticate({ remoteAddress, username, password: Buffer.from(password) })
  // A reload with new numbers makes a new throttle through the same factory: still the shared one.
  onB.update(parseConfigText(yaml(4), { baseDir: '/tmp', env: {} }).config)
  onA.update(parseConfigText(yaml(5), { baseDir: '/tmp', env: {} }).config)
  onA.update(config)
  for (const auth of [onA, onB, onA, onB]) assert.equal((await login(auth, 'alice@acme', 'wrong')).ok, false)
  assert.equal(
    (await login(onB, 'alice@globex', 'a')).ok,
    false,
    'the right password of another tenant, from that address: refused too',
  )
  assert.equal((await login(onA, 'alice@acme', 'a')).ok, false)
  assert.equal((await login(onA, 'alice@acme', 'a', '203.0.113.10')).ok, true, 'another address logs in')
})
