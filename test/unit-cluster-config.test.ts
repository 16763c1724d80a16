// cluster: in the configuration (issue #18): the gateway's name defaults to host:pid, the admin store to
// the cluster's Redis, and a SQLite store beside a cluster is an error with its path and line.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfigFile, parseConfigText } from '../src/config/load.js'
import { ConfigError } from '../src/errors.js'

const BASE = `listeners: [{ name: mqtt, type: tcp, bind: 127.0.0.1:1883 }]
upstream: { url: embedded }
`
const ADMIN = `admin:
  bind: 127.0.0.1:8080
  operatorToken: 0123456789abcdef0123
`

test("cluster: name from ${HOSTNAME:-}, else host:pid; admin.store defaults to the cluster's Redis", () => {
  const yaml = `${BASE}cluster: { redis: "redis://10.0.0.5:6379/2", name: "\${HOSTNAME:-}" }\n${ADMIN}`
  const named = parseConfigText(yaml, { baseDir: '/tmp', env: { HOSTNAME: 'gw-7' } }).config
  assert.equal(named.cluster?.name, 'gw-7')
  assert.equal(named.admin?.store, 'redis://10.0.0.5:6379/2')
  const unnamed = parseConfigText(yaml, { baseDir: '/tmp', env: {} }).config
  assert.match(unnamed.cluster?.name ?? '', new RegExp(`^.+:${process.pid}$`))
})

test('cluster: a redis:// admin.store is kept; without cluster: the SQLite default stays', () => {
  const own = parseConfigText(`${BASE}cluster: { redis: "redis://a:6379/0" }\n${ADMIN}  store: "rediss://b:6380/1"\n`, {
    baseDir: '/tmp',
    env: {},
  }).config
  assert.equal(own.admin?.store, 'rediss://b:6380/1')
  const single = parseConfigText(`${BASE}${ADMIN}`, { baseDir: '/tmp', env: {} }).config
  assert.equal(single.cluster, undefined)
  assert.equal(single.admin?.store, '/tmp/mqtt-tenant-gateway.db')
})

const refused = (run: () => unknown, expected: string): void => {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err))
    assert.ok(err.message.includes(expected), `got: ${err.message}`)
    return true
  })
}

test('cluster: a SQLite admin.store is refused with its path and line; so is a Redis store without a cluster and a bad URL', () => {
  refused(
    () => loadConfigFile('test/fixtures/bad-configs/cluster-sqlite-store.yaml', {}),
    'admin.store (line 7): with cluster:, the admin store is shared in Redis',
  )
  refused(
    () => parseConfigText(`${BASE}${ADMIN}  store: "redis://a:6379/0"\n`, { baseDir: '/tmp', env: {} }),
    'admin.store (line 6): a Redis store is for a cluster',
  )
  refused(
    () => parseConfigText(`${BASE}cluster: { redis: "http://a:6379" }\n`, { baseDir: '/tmp', env: {} }),
    'cluster.redis (line 3): expected redis://',
  )
  refused(
    () => parseConfigText(`${BASE}cluster: { redis: "redis://a", nmae: x }\n`, { baseDir: '/tmp', env: {} }),
    'cluster.nmae (line 3): unknown key',
  )
})

test('cluster.leaseTtl: 15 s by default, a duration, at least 1 s, refused with its path', () => {
  const ttl = (extra: string): number | undefined =>
    parseConfigText(`${BASE}cluster: { redis: "redis://a:6379/0"${extra} }\n`, { baseDir: '/tmp', env: {} }).config
      .cluster?.leaseTtl
  assert.equal(ttl(''), 15_000)
  assert.equal(ttl(', leaseTtl: 5s'), 5000)
  refused(() => ttl(', leaseTtl: 500ms'), 'cluster.leaseTtl')
  refused(() => ttl(', leaseTtl: soon'), 'cluster.leaseTtl')
})
