// Mount and unmount: the whole namespacing rule, pure and total (after EMQX's emqx_mountpoint).
// Going up, client IDs, topics and filters get the tenant's prefix; coming down, the prefix is checked
// and removed, and anything without it is foreign: `undefined`, never delivered (SPEC §5).

import { MAX_STRING_BYTES } from '../codec-limits.js'
import { TENANT_ID } from './tenant-id.js'

export interface Namespace {
  readonly tenant: string
  readonly topicPrefix: string
  readonly clientIdPrefix: string
  /** the topic prefix as UTF-8 bytes, for the PUBLISH byte-splicing fast path */
  readonly topicPrefixBytes: Buffer
}

export interface NamespacePatterns {
  readonly topic: string
  readonly clientId: string
}

/**
 * Why these patterns cannot keep tenants apart, or undefined when they can. Two different tenant IDs
 * must never give prefixes where one starts the other (`ab` / `ab-c`): that holds when a prefix ends
 * with a character no tenant ID contains, since both prefixes then hold that character equally often.
 * A topic prefix must end with `/` (a whole level, so `#` mounts to `acme/#`), must not start with `$`
 * (`$share/{tenant}/` would turn every topic into a shared subscription) and must not hold `+`, `#`.
 * The config schema should refuse such patterns with this message; namespaceFor throws on them.
 */
export function namespacePatternError(patterns: NamespacePatterns): string | undefined {
  const { topic, clientId } = patterns
  if (!topic.includes('{tenant}')) return 'the topic namespace must contain {tenant}'
  if (!topic.endsWith('/')) return 'the topic namespace must end with / (e.g. "{tenant}/")'
  if (topic.startsWith('$')) return 'the topic namespace must not start with $ (reserved for the broker)'
  if (/[+#]/.test(topic) || topic.includes('\u0000')) return 'the topic namespace must not contain +, # or U+0000'
  if (!clientId.includes('{tenant}')) return 'the client ID namespace must contain {tenant}'
  if (/[a-z0-9-]$/.test(clientId) || clientId.endsWith('{tenant}')) {
    return 'the client ID namespace must end with a separator such as / or : (else tenants ab and ab-c could share client IDs)'
  }
  if (clientId.includes('\u0000')) return 'the client ID namespace must not contain U+0000'
  return undefined
}

/**
 * The namespace of one tenant: `{tenant}` substituted in both patterns. Throws a RangeError (a
 * configuration error, never a runtime one) when the tenant ID or the patterns could break isolation.
 */
export function namespaceFor(tenant: string, patterns: NamespacePatterns): Namespace {
  if (!TENANT_ID.test(tenant)) throw new RangeError(`invalid tenant ID ${JSON.stringify(tenant)}`)
  const problem = namespacePatternError(patterns)
  if (problem !== undefined) throw new RangeError(problem)
  const topicPrefix = patterns.topic.replaceAll('{tenant}', tenant)
  return {
    tenant,
    topicPrefix,
    clientIdPrefix: patterns.clientId.replaceAll('{tenant}', tenant),
    topicPrefixBytes: Buffer.from(topicPrefix),
  }
}

/**
 * The topic as the broker sees it. The caller has checked it with isValidTopicName and refused `$…`.
 * The result may exceed 65,535 bytes (the prefix added to a topic at the limit): tryMountTopic refuses that.
 */
export function mountTopic(ns: Namespace, topic: string): string {
  return ns.topicPrefix + topic
}

/** Whether `value` fits an MQTT string once encoded: at most 65,535 UTF-8 bytes [MQTT-1.5.4]. */
export function fitsMqttString(value: string): boolean {
  // A JS string of n UTF-16 units encodes to at most 3n bytes: most strings need no count.
  return value.length * 3 <= MAX_STRING_BYTES || Buffer.byteLength(value) <= MAX_STRING_BYTES
}

/**
 * mountTopic for a topic name, will topic or Response Topic, or undefined when the mounted topic would
 * not fit an MQTT string; the caller answers topic name invalid (v5 0x90 in PUBACK/PUBREC/CONNACK, v3
 * close). The codec would refuse to encode it anyway; this is how the device hears why.
 */
export function tryMountTopic(ns: Namespace, topic: string): string | undefined {
  const mounted = ns.topicPrefix + topic
  return fitsMqttString(mounted) ? mounted : undefined
}

/** The tenant-local topic; undefined when `topic` is not under the prefix (foreign) or is the bare prefix. */
export function unmountTopic(ns: Namespace, topic: string): string | undefined {
  if (topic.length <= ns.topicPrefix.length || !topic.startsWith(ns.topicPrefix)) return undefined
  return topic.slice(ns.topicPrefix.length)
}

const SHARE = '$share/'

/** Splits `$share/group/filter`; undefined when it is not a well-formed shared subscription. */
export function parseShared(filter: string): { group: string; filter: string } | undefined {
  if (!filter.startsWith(SHARE)) return undefined
  const slash = filter.indexOf('/', SHARE.length)
  if (slash < 0) return undefined
  const group = filter.slice(SHARE.length, slash)
  const rest = filter.slice(slash + 1)
  if (group === '' || /[+#]/.test(group) || group.includes('\u0000') || rest === '') return undefined
  return { group, filter: rest }
}

/**
 * The filter as the broker sees it: `#` → `acme/#`, `$share/g/x` → `$share/g/acme/x`. Invalid filters,
 * other `$` filters (`$SYS/#`, `$share/g/$SYS/#`) and malformed shared subscriptions: undefined.
 * A mounted `acme/#` also matches the bare topic `acme` (MQTT's parent-level rule), which is no leak:
 * mountTopic always leaves a non-empty remainder, so no tenant's topic is ever `acme`, and a topic that
 * arrives as `acme` anyway is foreign to unmountTopic and dropped.
 */
export function mountFilter(ns: Namespace, filter: string): string | undefined {
  if (!isValidTopicFilter(filter)) return undefined
  if (filter.startsWith('$')) {
    const shared = parseShared(filter)
    if (shared === undefined || shared.filter.startsWith('$')) return undefined
    return `${SHARE}${shared.group}/${ns.topicPrefix}${shared.filter}`
  }
  return ns.topicPrefix + filter
}

/**
 * Why a filter cannot be mounted: `invalid` (not a topic filter, or a malformed `$share`), `reserved`
 * (`$SYS/#` and every other `$` filter but `$share`) or `tooLong` (the mounted filter would exceed
 * 65,535 bytes). SUBACK answers invalid and tooLong with 0x8F (v3 0x80), reserved with 0x87 (v3 0x80);
 * UNSUBACK (v5) answers invalid and tooLong with 0x8F; v3 has no UNSUBACK code, so the client is closed.
 */
export type FilterRefusal = 'invalid' | 'reserved' | 'tooLong'

/** mountFilter, saying why when it cannot: the mounted filter, or the refusal. */
export function tryMountFilter(
  ns: Namespace,
  filter: string,
): { readonly filter: string } | { readonly refused: FilterRefusal } {
  const mounted = mountFilter(ns, filter)
  // mountFilter refuses only invalid filters and `$` ones: a valid filter it refused is reserved.
  if (mounted === undefined) return { refused: isValidTopicFilter(filter) ? 'reserved' : 'invalid' }
  return fitsMqttString(mounted) ? { filter: mounted } : { refused: 'tooLong' }
}

/** The inverse of mountFilter: the tenant-local filter, or undefined when mountFilter cannot give `filter`. */
export function unmountFilter(ns: Namespace, filter: string): string | undefined {
  const shared = parseShared(filter)
  const local = shared === undefined ? unmountTopic(ns, filter) : unmountTopic(ns, shared.filter)
  if (local === undefined) return undefined
  const result = shared === undefined ? local : `${SHARE}${shared.group}/${local}`
  return mountFilter(ns, result) === filter ? result : undefined
}

/** The client ID as the broker sees it; may exceed 65,535 bytes, which tryMountClientId refuses. */
export function mountClientId(ns: Namespace, id: string): string {
  return ns.clientIdPrefix + id
}

/**
 * mountClientId, or undefined when the mounted ID would not fit an MQTT string; the caller answers
 * client identifier not valid (CONNACK v5 0x85 / v3 0x02).
 */
export function tryMountClientId(ns: Namespace, id: string): string | undefined {
  const mounted = ns.clientIdPrefix + id
  return fitsMqttString(mounted) ? mounted : undefined
}

/** The tenant-local client ID; undefined for another tenant's ID or the bare prefix. */
export function unmountClientId(ns: Namespace, id: string): string | undefined {
  if (id.length <= ns.clientIdPrefix.length || !id.startsWith(ns.clientIdPrefix)) return undefined
  return id.slice(ns.clientIdPrefix.length)
}

/** [MQTT-4.7.3-1..3]: non-empty, no wildcards, no U+0000, at most 65535 UTF-8 bytes. */
export function isValidTopicName(topic: string): boolean {
  return (
    topic.length > 0 &&
    !topic.includes('+') &&
    !topic.includes('#') &&
    !topic.includes('\u0000') &&
    Buffer.byteLength(topic) <= 65535
  )
}

/**
 * [MQTT-4.7.1-1, 4.7.1-2, 4.7.3-1]: `#` only last and alone in its level, `+` alone in its level; `$share/g/f` checked
 * as f.
 */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000') || Buffer.byteLength(filter) > 65535) return false
  const shared = parseShared(filter)
  if (filter.startsWith(SHARE) && shared === undefined) return false
  const levels = (shared?.filter ?? filter).split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return false
    if (level.includes('+') && level !== '+') return false
  }
  return true
}

/** MQTT topic matching; wildcards at the first level never match `$` topics [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split('/'), topic)
}

/**
 * topicMatches for a filter split once beforehand: walks the topic in place, allocating nothing, so a
 * compiled ACL can run it on every PUBLISH.
 */
export function levelsMatch(filter: readonly string[], topic: string): boolean {
  const first = filter[0]
  if (topic.charCodeAt(0) === 0x24 /* $ */ && (first === '+' || first === '#')) return false
  let start = 0
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i] as string
    if (level === '#') return true // also the parent level: `a/#` matches `a`
    if (start > topic.length) return false // the topic has fewer levels
    let end = topic.indexOf('/', start)
    if (end < 0) end = topic.length
    if (level !== '+' && (end - start !== level.length || !topic.startsWith(level, start))) return false
    start = end + 1
  }
  return start > topic.length // every topic level consumed
}
