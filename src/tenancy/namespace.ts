// Mount and unmount: the whole namespacing rule, pure and total (after EMQX's emqx_mountpoint).
// Going up, client IDs, topics and filters get the tenant's prefix; coming down, the prefix is checked
// and removed, and anything without it is foreign: `undefined`, never delivered.

export interface Namespace {
  readonly tenant: string
  readonly topicPrefix: string
  readonly clientIdPrefix: string
  /** the topic prefix as UTF-8 bytes, for the PUBLISH byte-splicing fast path */
  readonly topicPrefixBytes: Buffer
}

export function namespaceFor (tenant: string, patterns: { topic: string; clientId: string }): Namespace {
  const topicPrefix = patterns.topic.replaceAll('{tenant}', tenant)
  return { tenant, topicPrefix, clientIdPrefix: patterns.clientId.replaceAll('{tenant}', tenant), topicPrefixBytes: Buffer.from(topicPrefix) }
}

export function mountTopic (ns: Namespace, topic: string): string {
  return ns.topicPrefix + topic
}

/** The tenant-local topic, or undefined when `topic` is not the tenant's. */
export function unmountTopic (ns: Namespace, topic: string): string | undefined {
  if (topic.length <= ns.topicPrefix.length || !topic.startsWith(ns.topicPrefix)) return undefined
  return topic.slice(ns.topicPrefix.length)
}

const SHARE = '$share/'

/** Splits `$share/group/filter`; undefined when it is not a well-formed shared subscription. */
export function parseShared (filter: string): { group: string; filter: string } | undefined {
  if (!filter.startsWith(SHARE)) return undefined
  const slash = filter.indexOf('/', SHARE.length)
  if (slash < 0) return undefined
  const group = filter.slice(SHARE.length, slash)
  const rest = filter.slice(slash + 1)
  if (group === '' || /[+#]/.test(group) || rest === '') return undefined
  return { group, filter: rest }
}

/**
 * The filter as the broker sees it: `#` → `acme/#`, `$share/g/x` → `$share/g/acme/x`. Other `$` filters
 * (`$SYS/#`) and malformed shared subscriptions are refused: undefined. A mounted `acme/#` also matches
 * the bare topic `acme`, but no tenant can publish that: mounted topics always have a non-empty remainder.
 */
export function mountFilter (ns: Namespace, filter: string): string | undefined {
  if (filter.startsWith('$')) {
    const shared = parseShared(filter)
    if (shared === undefined || shared.filter.startsWith('$')) return undefined
    return `${SHARE}${shared.group}/${ns.topicPrefix}${shared.filter}`
  }
  return ns.topicPrefix + filter
}

export function unmountFilter (ns: Namespace, filter: string): string | undefined {
  const shared = parseShared(filter)
  if (shared !== undefined) {
    const local = unmountTopic(ns, shared.filter)
    return local === undefined ? undefined : `${SHARE}${shared.group}/${local}`
  }
  return unmountTopic(ns, filter)
}

export function mountClientId (ns: Namespace, id: string): string {
  return ns.clientIdPrefix + id
}

export function unmountClientId (ns: Namespace, id: string): string | undefined {
  if (id.length <= ns.clientIdPrefix.length || !id.startsWith(ns.clientIdPrefix)) return undefined
  return id.slice(ns.clientIdPrefix.length)
}

/** [MQTT-4.7.3]: non-empty, no wildcards, no U+0000, at most 65535 UTF-8 bytes. */
export function isValidTopicName (topic: string): boolean {
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#') && !topic.includes('\u0000') && Buffer.byteLength(topic) <= 65535
}

/** [MQTT-4.7.1]: `#` only last and alone in its level, `+` alone in its level. */
export function isValidTopicFilter (filter: string): boolean {
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

export function isSystemTopic (topic: string): boolean {
  return topic.startsWith('$')
}

/** MQTT topic matching; wildcards at the first level never match `$` topics [MQTT-4.7.2-1]. */
export function topicMatches (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}
