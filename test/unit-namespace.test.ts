// mount/unmount (SPEC §5) as pure functions: the table, and properties over random tenants and topics.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  namespaceFor,
  namespacePatternError,
  mountTopic,
  unmountTopic,
  mountFilter,
  unmountFilter,
  mountClientId,
  unmountClientId,
  tryMountTopic,
  tryMountClientId,
  tryMountFilter,
  fitsMqttString,
  isValidTopicName,
  isValidTopicFilter,
  topicMatches,
  levelsMatch,
  parseShared,
  type NamespacePatterns,
} from '../src/tenancy/namespace.js'

const DEFAULT: NamespacePatterns = { topic: '{tenant}/', clientId: '{tenant}/' }
const PATTERNS: NamespacePatterns[] = [
  DEFAULT,
  { topic: 'tenants/{tenant}/', clientId: '{tenant}:' },
  { topic: '{tenant}/mqtt/', clientId: 't-{tenant}/' },
  { topic: 'x/{tenant}/{tenant}/', clientId: '{tenant}@gw#' },
]
const ns = (tenant: string, patterns: NamespacePatterns = DEFAULT) => namespaceFor(tenant, patterns)
const acme = ns('acme')

test('namespaceFor substitutes {tenant} in both patterns', () => {
  assert.deepEqual(
    { ...acme, topicPrefixBytes: [...acme.topicPrefixBytes] },
    {
      tenant: 'acme',
      topicPrefix: 'acme/',
      clientIdPrefix: 'acme/',
      topicPrefixBytes: [...Buffer.from('acme/')],
    },
  )
  const other = ns('acme', { topic: 'x/{tenant}/{tenant}/', clientId: 'c:{tenant}:' })
  assert.equal(other.topicPrefix, 'x/acme/acme/')
  assert.equal(other.clientIdPrefix, 'c:acme:')
})

// SPEC §5, with namespace.topic "{tenant}/" and tenant acme.
const table: Array<[string, () => unknown, unknown]> = [
  ['client ID dev-1 → acme/dev-1', () => mountClientId(acme, 'dev-1'), 'acme/dev-1'],
  ['PUBLISH sensors/t1 → acme/sensors/t1', () => mountTopic(acme, 'sensors/t1'), 'acme/sensors/t1'],
  ['SUBSCRIBE # → acme/#', () => mountFilter(acme, '#'), 'acme/#'],
  ['SUBSCRIBE +/t1 → acme/+/t1', () => mountFilter(acme, '+/t1'), 'acme/+/t1'],
  ['SUBSCRIBE sensors/# → acme/sensors/#', () => mountFilter(acme, 'sensors/#'), 'acme/sensors/#'],
  [
    'SUBSCRIBE $share/g/sensors/# → $share/g/acme/sensors/#',
    () => mountFilter(acme, '$share/g/sensors/#'),
    '$share/g/acme/sensors/#',
  ],
  ['SUBSCRIBE $share/g/# → $share/g/acme/#', () => mountFilter(acme, '$share/g/#'), '$share/g/acme/#'],
  ['SUBSCRIBE $SYS/# refused', () => mountFilter(acme, '$SYS/#'), undefined],
  ['SUBSCRIBE $anything refused', () => mountFilter(acme, '$anything'), undefined],
  ['SUBSCRIBE $share (no slash) refused', () => mountFilter(acme, '$share'), undefined],
  ['SUBSCRIBE $share/g/$SYS/# refused', () => mountFilter(acme, '$share/g/$SYS/#'), undefined],
  ['SUBSCRIBE $share//x (empty group) refused', () => mountFilter(acme, '$share//x'), undefined],
  ['SUBSCRIBE $share/g (no filter) refused', () => mountFilter(acme, '$share/g'), undefined],
  ['SUBSCRIBE $share/g/ (empty filter) refused', () => mountFilter(acme, '$share/g/'), undefined],
  ['SUBSCRIBE $share/g+/x (wildcard group) refused', () => mountFilter(acme, '$share/g+/x'), undefined],
  ['SUBSCRIBE $share/#/x (wildcard group) refused', () => mountFilter(acme, '$share/#/x'), undefined],
  ['SUBSCRIBE invalid a/#/b refused', () => mountFilter(acme, 'a/#/b'), undefined],
  ['SUBSCRIBE empty filter refused', () => mountFilter(acme, ''), undefined],
  ['a $ below the first level is an ordinary level', () => mountFilter(acme, 'a/$b'), 'acme/a/$b'],
  ['received acme/sensors/t1 → sensors/t1', () => unmountTopic(acme, 'acme/sensors/t1'), 'sensors/t1'],
  ['received globex/sensors/t1 → foreign', () => unmountTopic(acme, 'globex/sensors/t1'), undefined],
  ['received acmex/t → foreign (prefix without the separator)', () => unmountTopic(acme, 'acmex/t'), undefined],
  ['received acme/ → foreign (empty remainder)', () => unmountTopic(acme, 'acme/'), undefined],
  ['received acme → foreign (the bare tenant level)', () => unmountTopic(acme, 'acme'), undefined],
  ['received $SYS/x → foreign', () => unmountTopic(acme, '$SYS/x'), undefined],
  ['unmountFilter acme/# → #', () => unmountFilter(acme, 'acme/#'), '#'],
  ['unmountFilter $share/g/acme/x → $share/g/x', () => unmountFilter(acme, '$share/g/acme/x'), '$share/g/x'],
  ['unmountFilter $share/g/globex/x → foreign', () => unmountFilter(acme, '$share/g/globex/x'), undefined],
  [
    'unmountFilter acme/$SYS/# → undefined (mountFilter never gives it)',
    () => unmountFilter(acme, 'acme/$SYS/#'),
    undefined,
  ],
  ['unmountFilter $share/g/acme/$SYS → undefined', () => unmountFilter(acme, '$share/g/acme/$SYS'), undefined],
  ['unmountClientId acme/dev-1 → dev-1', () => unmountClientId(acme, 'acme/dev-1'), 'dev-1'],
  ['unmountClientId globex/dev-1 → foreign', () => unmountClientId(acme, 'globex/dev-1'), undefined],
  ['unmountClientId acme/ → undefined', () => unmountClientId(acme, 'acme/'), undefined],
]
for (const [name, run, expected] of table) test(`§5: ${name}`, () => assert.equal(run(), expected))

test('patterns that cannot keep tenants apart are refused', () => {
  for (const p of PATTERNS) assert.equal(namespacePatternError(p), undefined, JSON.stringify(p))
  const bad: Array<[NamespacePatterns, RegExp]> = [
    [{ topic: '{tenant}', clientId: '{tenant}/' }, /end with \//], // ab + "-c/x" = ab-c + "/x"
    [{ topic: 'tenants-{tenant}', clientId: '{tenant}/' }, /end with \//],
    [{ topic: '$share/{tenant}/', clientId: '{tenant}/' }, /must not start with \$/],
    [{ topic: '$SYS/{tenant}/', clientId: '{tenant}/' }, /must not start with \$/],
    [{ topic: '+/{tenant}/', clientId: '{tenant}/' }, /\+, #/],
    [{ topic: '{tenant}/#/', clientId: '{tenant}/' }, /\+, #/],
    [{ topic: 'fixed/', clientId: '{tenant}/' }, /contain \{tenant\}/],
    [{ topic: '{tenant}/', clientId: '{tenant}' }, /separator/], // ab + "-cdev" = ab-c + "dev"
    [{ topic: '{tenant}/', clientId: '{tenant}-' }, /separator/],
    [{ topic: '{tenant}/', clientId: 'c/{tenant}x' }, /separator/],
    [{ topic: '{tenant}/', clientId: 'fixed/' }, /contain \{tenant\}/],
  ]
  for (const [p, message] of bad) {
    assert.match(namespacePatternError(p) ?? '', message, JSON.stringify(p))
    assert.throws(() => namespaceFor('acme', p), RangeError)
  }
  for (const tenant of ['', '-a', 'a-', 'A', 'a/b', 'a+', '$a', 'x'.repeat(64)]) {
    assert.throws(() => namespaceFor(tenant, DEFAULT), RangeError, JSON.stringify(tenant))
  }
})

test('topic name and filter validity [MQTT-4.7]', () => {
  for (const t of ['a', 'a/b', '/', 'a//b', 'ünï/cödé', '$SYS/x', '🙂', 'x'.repeat(65535)])
    assert.ok(isValidTopicName(t), t.slice(0, 20))
  for (const t of ['', 'a/+', '#', 'a#', 'a+b', 'a\u0000b', 'x'.repeat(65536), 'é'.repeat(32768)]) {
    assert.ok(!isValidTopicName(t), JSON.stringify(t.slice(0, 20)))
  }
  for (const f of ['#', '+', 'a/+/b', 'a/#', '+/+', '/', '+/', '/#', '$SYS/#', '$share/g/a/#', '$share/g/#', 'ü/+']) {
    assert.ok(isValidTopicFilter(f), f)
  }
  for (const f of [
    '',
    'a#',
    'a/#/b',
    'a+',
    '+a/b',
    '#/a',
    '##',
    'a/b#',
    '$share/g',
    '$share/g/',
    '$share//a',
    '$share/g+/a',
    '$share/g/a#',
    'a\u0000',
  ]) {
    assert.ok(!isValidTopicFilter(f), f)
  }
})

test('parseShared', () => {
  assert.deepEqual(parseShared('$share/g/a/#'), { group: 'g', filter: 'a/#' })
  assert.equal(parseShared('a/b'), undefined)
  assert.equal(parseShared('$share/g'), undefined)
})

const matching: Array<[string, string, boolean]> = [
  ['a/#', 'a', true], // the parent level
  ['a/#', 'a/b/c', true],
  ['a/#', 'ab', false],
  ['#', 'a', true],
  ['#', '/', true],
  ['a/+/c', 'a/b/c', true],
  ['a/+/c', 'a//c', true],
  ['a/+', 'a/b/c', false],
  ['a/+', 'a', false],
  ['+', 'a', true],
  ['+', '/', false],
  ['+/+', '/', true],
  ['/+', '/a', true],
  ['a/b', 'a/b', true],
  ['a/b', 'a/b/', false],
  ['a/b/', 'a/b', false],
  ['a/+/#', 'a/b', true],
  ['a/+/#', 'a', false],
  ['+/#', 'a', true],
  ['#', '$SYS/x', false], // [MQTT-4.7.2-1]
  ['+/x', '$SYS/x', false],
  ['+', '$SYS', false],
  ['$SYS/#', '$SYS/x', true],
  ['$SYS/+', '$SYS/x', true],
  ['a/#', 'a/$x', true],
  ['a/+', 'a/$x', true],
]
test('topicMatches, including the $-topic rule [MQTT-4.7.2-1]', () => {
  for (const [f, t, expected] of matching) {
    assert.equal(topicMatches(f, t), expected, `${f} ~ ${t}`)
    assert.equal(levelsMatch(f.split('/'), t), expected, `${f} ~ ${t}`)
  }
})

// ---- properties ------------------------------------------------------------------------------------

/** Tenant IDs as the schema allows them: 1-63 of [a-z0-9-], not starting or ending with `-`. */
const tenantId = fc.oneof(
  fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/),
  fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,3}[a-z0-9])?$/), // short ones collide and nest more often
)
const patterns = fc.constantFrom(...PATTERNS)
const unicodeLevel = fc
  .oneof(
    fc.constantFrom('a', 'b', 'x', 'ü', '', '$x', 'acme', 'ab', 'ab-c', '🙂'),
    fc.string({ maxLength: 6, unit: 'grapheme' }),
    fc.string({ maxLength: 4, unit: 'binary' }),
  )
  .map((s) => s.replace(/[/+#]/g, '').replaceAll('\u0000', ''))
const topic = fc
  .array(unicodeLevel, { minLength: 1, maxLength: 5 })
  .map((l) => l.join('/'))
  .filter((t) => isValidTopicName(t) && !t.startsWith('$'))
const filter = fc
  .tuple(
    fc.array(fc.oneof(unicodeLevel, fc.constant('+')), { minLength: 1, maxLength: 4 }),
    fc.boolean(),
    fc.option(fc.constantFrom('g', 'workers', 'ü')),
  )
  .map(([levels, hash, share]) => {
    const f = [...levels, ...(hash ? ['#'] : [])].join('/')
    return share === null ? f : `$share/${share}/${f}`
  })
  .filter((f) => isValidTopicFilter(f) && !(f.startsWith('$') && (parseShared(f)?.filter ?? '$').startsWith('$')))
const clientId = fc.oneof(
  fc.string({ minLength: 1, unit: 'grapheme' }),
  fc.string({ minLength: 1, unit: 'binary' }),
  fc.string({ minLength: 1 }),
)

test('levelsMatch agrees with a reference matcher', () => {
  const reference = (f: string, t: string): boolean => {
    if (t.startsWith('$') && /^[+#]/.test(f)) return false
    const fl = f.split('/')
    const tl = t.split('/')
    if (fl.at(-1) === '#') {
      const head = fl.slice(0, -1)
      return tl.length >= head.length && head.every((l, i) => l === '+' || l === tl[i])
    }
    return fl.length === tl.length && fl.every((l, i) => l === '+' || l === tl[i])
  }
  const small = fc.constantFrom('a', 'b', '', '$s')
  const f = fc
    .tuple(fc.array(fc.oneof(small, fc.constant('+')), { minLength: 1, maxLength: 4 }), fc.boolean())
    .map(([l, h]) => [...l, ...(h ? ['#'] : [])].join('/'))
  const t = fc
    .array(small, { minLength: 1, maxLength: 5 })
    .map((l) => l.join('/'))
    .filter((s) => s !== '')
  fc.assert(
    fc.property(f, t, (ff, tt) => {
      assert.equal(levelsMatch(ff.split('/'), tt), reference(ff, tt))
      assert.equal(topicMatches(ff, tt), reference(ff, tt))
    }),
    { numRuns: 5000 },
  )
})

test('unmount(mount(x)) = x for topics, filters and client IDs (unicode, any tenant, any pattern)', () => {
  fc.assert(
    fc.property(tenantId, patterns, topic, filter, clientId, (t, p, tp, f, id) => {
      const n = ns(t, p)
      assert.equal(n.topicPrefixBytes.toString('utf8'), n.topicPrefix)
      assert.equal(unmountTopic(n, mountTopic(n, tp)), tp)
      const mf = mountFilter(n, f)
      assert.ok(mf !== undefined, f)
      assert.equal(unmountFilter(n, mf), f)
      assert.ok(isValidTopicFilter(mf), mf)
      assert.equal(unmountClientId(n, mountClientId(n, id)), id)
    }),
    { numRuns: 1000 },
  )
})

test('a mounted filter matches exactly the mounts of the topics it matched', () => {
  fc.assert(
    fc.property(tenantId, patterns, topic, filter, (t, p, tp, f) => {
      const n = ns(t, p)
      const local = parseShared(f)?.filter ?? f
      const mounted = mountFilter(n, f) as string
      assert.equal(topicMatches(parseShared(mounted)?.filter ?? mounted, mountTopic(n, tp)), topicMatches(local, tp))
    }),
    { numRuns: 1000 },
  )
})

/** Two different tenants, often with IDs that are prefixes of each other (ab / ab-c, ab / abc). */
const twoTenants = fc
  .oneof(
    fc.tuple(tenantId, tenantId),
    tenantId.map((t) => [t, `${t}-c`] as [string, string]),
    tenantId.map((t) => [`${t}-c`, t] as [string, string]),
    tenantId.map((t) => [t, `${t}c`] as [string, string]),
    tenantId.map((t) => [`${t}0`, t] as [string, string]),
  )
  .filter(([a, b]) => a !== b && a.length <= 63 && b.length <= 63)

test('nothing mounted for one tenant reaches another: filters, topics, shared subscriptions, client IDs', () => {
  fc.assert(
    fc.property(twoTenants, patterns, filter, topic, clientId, clientId, ([a, b], p, f, tp, idA, idB) => {
      const A = ns(a, p)
      const B = ns(b, p)
      const mf = mountFilter(A, f) as string
      const plain = parseShared(mf)?.filter ?? mf
      const theirs = mountTopic(B, tp)
      assert.ok(!topicMatches(plain, theirs), `${mf} matched ${theirs}`)
      assert.equal(unmountTopic(A, theirs), undefined)
      assert.equal(unmountFilter(A, mountFilter(B, f) as string), undefined)
      assert.notEqual(mountClientId(A, idA), mountClientId(B, idB))
      assert.equal(unmountClientId(A, mountClientId(B, idB)), undefined)
    }),
    { numRuns: 2000 },
  )
})

test('the widest filters of ab and ab-c stay apart (worked example)', () => {
  for (const p of PATTERNS) {
    const ab = ns('ab', p)
    const abc = ns('ab-c', p)
    for (const f of ['#', '+', '+/#', '$share/g/#']) {
      const mf = mountFilter(ab, f) as string
      const plain = parseShared(mf)?.filter ?? mf
      for (const t of ['x', 'x/y', '-c/x', '/x'])
        assert.ok(!topicMatches(plain, mountTopic(abc, t)), `${mf} ~ ${mountTopic(abc, t)}`)
    }
    assert.notEqual(mountClientId(ab, '-cdev'), mountClientId(abc, 'dev'))
    assert.notEqual(mountClientId(ab, '-c/dev'), mountClientId(abc, '/dev'))
  }
})

test("try-mounts refuse what would not fit an MQTT string, so the session can answer the field's code", () => {
  const edge = 'x'.repeat(65_535 - 'acme/'.length)
  assert.equal(tryMountTopic(acme, edge), `acme/${edge}`)
  assert.equal(tryMountTopic(acme, `${edge}y`), undefined)
  assert.equal(tryMountTopic(acme, '€'.repeat(21_845)), undefined) // 65,535 bytes before the prefix
  assert.equal(tryMountClientId(acme, edge), `acme/${edge}`)
  assert.equal(tryMountClientId(acme, `${edge}y`), undefined)
  assert.deepEqual(tryMountFilter(acme, `${edge}`), { filter: `acme/${edge}` })
  assert.deepEqual(tryMountFilter(acme, `${edge}/#`), { refused: 'tooLong' })
  assert.deepEqual(tryMountFilter(acme, `$share/g/${'x'.repeat(65_535 - 9)}`), { refused: 'tooLong' })
  assert.deepEqual(tryMountFilter(acme, '$SYS/#'), { refused: 'reserved' })
  assert.deepEqual(tryMountFilter(acme, '$share/g/$SYS/#'), { refused: 'reserved' })
  assert.deepEqual(tryMountFilter(acme, '$share/g'), { refused: 'invalid' })
  assert.deepEqual(tryMountFilter(acme, 'a/#/b'), { refused: 'invalid' })
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 30_000 }), (s) => {
      assert.equal(fitsMqttString(s), Buffer.byteLength(s) <= 65_535)
    }),
    { numRuns: 200 },
  )
})
