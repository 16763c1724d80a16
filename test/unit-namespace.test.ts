// mount/unmount (SPEC §5) as pure functions: the table, and properties over random tenants and topics.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  namespaceFor, mountTopic, unmountTopic, mountFilter, unmountFilter, mountClientId, unmountClientId,
  isValidTopicName, isValidTopicFilter, topicMatches,
} from '../src/tenancy/namespace.js'

const ns = (tenant: string) => namespaceFor(tenant, { topic: '{tenant}/', clientId: '{tenant}/' })
const acme = ns('acme')

test('the SPEC §5 table', () => {
  assert.equal(mountClientId(acme, 'dev-1'), 'acme/dev-1')
  assert.equal(mountTopic(acme, 'sensors/t1'), 'acme/sensors/t1')
  assert.equal(mountFilter(acme, '#'), 'acme/#')
  assert.equal(mountFilter(acme, '+/t1'), 'acme/+/t1')
  assert.equal(mountFilter(acme, 'sensors/#'), 'acme/sensors/#')
  assert.equal(mountFilter(acme, '$share/g/sensors/#'), '$share/g/acme/sensors/#')
  assert.equal(mountFilter(acme, '$SYS/#'), undefined)
  assert.equal(mountFilter(acme, '$anything'), undefined)
  assert.equal(mountFilter(acme, '$share/g/$SYS/#'), undefined)
  assert.equal(mountFilter(acme, '$share//x'), undefined)
  assert.equal(mountFilter(acme, '$share/g'), undefined)
  assert.equal(unmountTopic(acme, 'acme/sensors/t1'), 'sensors/t1')
  assert.equal(unmountTopic(acme, 'globex/sensors/t1'), undefined)
  assert.equal(unmountTopic(acme, 'acme/'), undefined)
  assert.equal(unmountTopic(acme, 'acme'), undefined)
  assert.equal(unmountTopic(acme, 'acmex/t'), undefined)
  assert.equal(unmountFilter(acme, '$share/g/acme/x'), '$share/g/x')
  assert.equal(unmountClientId(acme, 'acme/dev-1'), 'dev-1')
  assert.equal(unmountClientId(acme, 'globex/dev-1'), undefined)
})

test('topic name and filter validity [MQTT-4.7]', () => {
  for (const t of ['a', 'a/b', '/', 'a//b', 'ünï/cödé']) assert.ok(isValidTopicName(t), t)
  for (const t of ['', 'a/+', '#', 'a\u0000b']) assert.ok(!isValidTopicName(t), JSON.stringify(t))
  for (const f of ['#', '+', 'a/+/b', 'a/#', '+/+', '$share/g/a/#']) assert.ok(isValidTopicFilter(f), f)
  for (const f of ['', 'a#', 'a/#/b', 'a+', '#/a', '$share/g', '$share/g+/a']) assert.ok(!isValidTopicFilter(f), f)
})

test('matching, including the $-topic rule [MQTT-4.7.2-1]', () => {
  assert.ok(topicMatches('a/#', 'a'))
  assert.ok(topicMatches('a/+/c', 'a/b/c'))
  assert.ok(!topicMatches('a/+', 'a/b/c'))
  assert.ok(!topicMatches('#', '$SYS/x'))
  assert.ok(!topicMatches('+/x', '$SYS/x'))
  assert.ok(topicMatches('$SYS/#', '$SYS/x'))
})

const tenantId = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/)
const level = fc.oneof(fc.constantFrom('a', 'b', 'x', 'ü', ''), fc.string({ maxLength: 6, unit: 'grapheme' }).map((s) => s.replace(/[/+#$]/g, '').replaceAll('\u0000', '')))
const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/')).filter((t) => isValidTopicName(t) && !t.startsWith('$'))
const filterLevel = fc.oneof(level, fc.constant('+'))
const filter = fc.tuple(fc.array(filterLevel, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.option(fc.constantFrom('g', 'workers')))
  .map(([levels, hash, share]) => {
    const f = [...levels, ...(hash ? ['#'] : [])].join('/')
    return share === null ? f : `$share/${share}/${f}`
  })
  .filter((f) => isValidTopicFilter(f) && !(f.startsWith('$') && !f.startsWith('$share/')))

test('unmount(mount(x)) = x for topics, filters and client IDs', () => {
  fc.assert(fc.property(tenantId, topic, filter, fc.string({ minLength: 1 }), (t, tp, f, id) => {
    const n = ns(t)
    assert.equal(unmountTopic(n, mountTopic(n, tp)), tp)
    const mf = mountFilter(n, f)
    assert.ok(mf !== undefined)
    assert.equal(unmountFilter(n, mf), f)
    assert.equal(unmountClientId(n, mountClientId(n, id)), id)
  }), { numRuns: 500 })
})

test('no filter mounted for one tenant matches a topic mounted for another', () => {
  const pair = fc.oneof(
    fc.tuple(tenantId, tenantId),
    tenantId.map((t) => [t, `${t}-c`] as [string, string]), // prefix-related IDs: ab / ab-c
    tenantId.map((t) => [`${t}-c`, t] as [string, string]),
  ).filter(([a, b]) => a !== b && b.length <= 63 && a.length <= 63)
  fc.assert(fc.property(pair, filter, topic, ([a, b], f, tp) => {
    const mf = mountFilter(ns(a), f) as string
    const plain = mf.startsWith('$share/') ? mf.split('/').slice(2).join('/') : mf
    assert.ok(!topicMatches(plain, mountTopic(ns(b), tp)), `${mf} matched ${mountTopic(ns(b), tp)}`)
    assert.equal(unmountTopic(ns(a), mountTopic(ns(b), tp)), undefined)
  }), { numRuns: 1000 })
})
