// Reading the configuration: YAML with positions, ${ENV} substitution, schema validation, files read
// relative to the config. The only module that touches the config's files and the environment.
// Longer than ~300 lines: every cross-key check that needs YAML line numbers lives here, beside the loader.
import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, isAbsolute, resolve } from 'node:path'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml'
import type { z } from 'zod'
import { ConfigError, type ConfigIssue } from '../errors.js'
import { gatewaySchema, type GatewayConfig } from './schema.js'
import { parsePasswordFile } from '../tenancy/passwords.js'
import { passwordFormatProblem } from '../tenancy/password-format.js'
import { bindConflicts, type BoundSocket } from './bind-conflicts.js'

export interface LoadedConfig {
  config: GatewayConfig
  warnings: string[]
  file?: string
}

export interface ParseOptions {
  file?: string
  baseDir: string
  env?: NodeJS.ProcessEnv
}

type Path = ReadonlyArray<string | number>

export function pathString(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('')
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(
      [{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }],
      file,
    )
  }
  return parseConfigText(text, { file, baseDir: dirname(resolve(file)), env })
}

export function parseConfigText(text: string, opts: ParseOptions): LoadedConfig {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false })
  const lineOf = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lines.linePos(offset).line
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ path: '', line: lineOf(e.pos[0]), message: e.message.split('\n')[0] ?? e.message })),
      opts.file,
    )
  }
  const issues: ConfigIssue[] = []
  let js: unknown
  try {
    js = doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    // e.g. an alias without its anchor, or an alias bomb: YAML that parses but has no value.
    throw new ConfigError([{ path: '', message: err instanceof Error ? err.message : String(err) }], opts.file)
  }
  const raw = substituteEnv(js, opts.env ?? process.env, [], issues, (p) => lineOf(nodeAt(doc, p)?.range?.[0]))
  if (issues.length > 0) throw new ConfigError(issues, opts.file)
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(
      [{ path: '', line: 1, message: 'expected a mapping with listeners, upstream and tenants' }],
      opts.file,
    )
  }
  const parsed = gatewaySchema.safeParse(raw)
  if (!parsed.success)
    throw new ConfigError(
      parsed.error.issues.map((i) => toIssue(i, doc, lineOf)),
      opts.file,
    )
  const config = parsed.data
  const warnings: string[] = []
  const lineAt = (p: Path): number | undefined => lineOf(nodeAt(doc, p)?.range?.[0])
  readFiles(config, opts.baseDir, issues, warnings, lineAt)
  applyCluster(config, raw as { admin?: { store?: unknown } }, opts.env ?? process.env, issues, lineAt)
  checkBinds(config, issues, lineAt)
  if (issues.length > 0) throw new ConfigError(issues, opts.file)
  return { config: deepFreeze(config), warnings, ...(opts.file !== undefined ? { file: opts.file } : {}) }
}

function nodeAt(doc: Document, path: Path): Node | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true)
    if (node !== undefined && node !== null && typeof node === 'object' && 'range' in node) return node as Node
  }
  return undefined
}

/** The line of the key itself for unknown keys, else the value's line. */
function toIssue(
  issue: z.core.$ZodIssue,
  doc: Document,
  lineOf: (o: number | undefined) => number | undefined,
): ConfigIssue {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol')
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] as string
    const parent = doc.getIn(path, true)
    let line: number | undefined
    if (isMap(parent)) {
      const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === key)
      line = lineOf((pair?.key as Node | undefined)?.range?.[0])
    }
    const names = issue.keys.map((k) => JSON.stringify(k)).join(', ')
    // The schema names where a key belongs when it belongs to another listener type; zod's own text is generic.
    const message = issue.message.startsWith('Unrecognized key')
      ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${names}`
      : issue.message
    return { path: pathString([...path, key]), line: line ?? lineOf(nodeAt(doc, path)?.range?.[0]), message }
  }
  const node = nodeAt(doc, path)
  const present = doc.getIn(path, true) !== undefined
  let message = issue.message
  if (issue.code === 'invalid_key') {
    // A record key (a tenant ID) that fails its own rule: say the rule, not "invalid key".
    message = `${issue.issues[0]?.message ?? 'invalid key'}, got ${JSON.stringify(path[path.length - 1])}`
  } else if (issue.code === 'invalid_type') {
    const value = present ? (doc.getIn(path) as unknown) : undefined
    // A sentence of the schema's own for a missing key (a tls listener's files) says more than "missing required key".
    const ownSentence = !issue.message.startsWith('Invalid input') && !issue.message.startsWith('expected ')
    if (!present) message = ownSentence ? issue.message : `missing required key (expected ${issue.expected})`
    else if (!issue.message.startsWith('expected '))
      message = `expected ${issue.expected}, got ${JSON.stringify(value)}`
  } else if (issue.code === 'too_small' && issue.origin === 'number') {
    message = `expected a number ${issue.inclusive === false ? '>' : '≥'} ${String(issue.minimum)}, got ${JSON.stringify(doc.getIn(path))}`
  } else if (issue.code === 'invalid_value' || issue.code === 'invalid_union') {
    message = `${issue.message}, got ${JSON.stringify(doc.getIn(path))}`
  }
  if (isSeq(node) || isMap(node) || present || node !== undefined)
    return { path: pathString(path), line: lineOf(node?.range?.[0]), message }
  return { path: pathString(path), message }
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

function substituteEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: Array<string | number>,
  issues: ConfigIssue[],
  lineAt: (p: Path) => number | undefined,
): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name]
      if (v !== undefined && v !== '') return v
      if (fallback !== undefined) return fallback
      if (v === '') return ''
      issues.push({
        path: pathString(path),
        line: lineAt(path),
        message: `environment variable ${name} is not set (use \${${name}:-default} for a default)`,
      })
      return ''
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, i], issues, lineAt))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, [...path, k], issues, lineAt)
    return out
  }
  return value
}

/** Resolves file paths against the config's folder; merges password files; warns of plaintext. */
function readFiles(
  config: GatewayConfig,
  baseDir: string,
  issues: ConfigIssue[],
  warnings: string[],
  lineAt: (p: Path) => number | undefined,
): void {
  const file = (p: string, path: Path): string => {
    const abs = isAbsolute(p) ? p : resolve(baseDir, p)
    if (!existsSync(abs)) issues.push({ path: pathString(path), line: lineAt(path), message: `file not found: ${abs}` })
    return abs
  }
  config.listeners.forEach((l, i) => {
    if ('tls' in l) {
      l.tls.cert = file(l.tls.cert, ['listeners', i, 'tls', 'cert'])
      l.tls.key = file(l.tls.key, ['listeners', i, 'tls', 'key'])
      if (l.tls.ca !== undefined) l.tls.ca = file(l.tls.ca, ['listeners', i, 'tls', 'ca'])
      if (l.tls.clientCa !== undefined) l.tls.clientCa = file(l.tls.clientCa, ['listeners', i, 'tls', 'clientCa'])
    }
  })
  if (config.upstream.ca !== undefined) config.upstream.ca = file(config.upstream.ca, ['upstream', 'ca'])
  for (const [name, u] of Object.entries(config.upstreams)) {
    if (u.ca !== undefined) u.ca = file(u.ca, ['upstreams', name, 'ca'])
  }
  if (config.admin?.tls !== undefined) {
    config.admin.tls.cert = file(config.admin.tls.cert, ['admin', 'tls', 'cert'])
    config.admin.tls.key = file(config.admin.tls.key, ['admin', 'tls', 'key'])
  }
  if (config.admin?.operatorToken.includes('change-me') === true)
    warnings.push("admin.operatorToken: still the example's token; set MTG_OPERATOR_TOKEN or write your own")
  // The store is created when missing, so only its folder has to exist.
  if (
    config.admin !== undefined &&
    config.admin.store !== ':memory:' &&
    !REDIS_URL.test(config.admin.store) &&
    !isAbsolute(config.admin.store)
  )
    config.admin.store = resolve(baseDir, config.admin.store)
  for (const [id, tenant] of Object.entries(config.tenants)) {
    const fromFile = new Set<string>()
    if (tenant.passwordFile !== undefined) {
      const abs = file(tenant.passwordFile, ['tenants', id, 'passwordFile'])
      tenant.passwordFile = abs
      if (existsSync(abs)) {
        for (const [user, hash] of Object.entries(parsePasswordFile(readFileSync(abs, 'utf8')))) {
          // Users written in the YAML win over the file's.
          if (user in tenant.users) continue
          const problem = passwordFormatProblem(hash)
          if (problem !== undefined)
            issues.push({
              path: pathString(['tenants', id, 'passwordFile']),
              line: lineAt(['tenants', id, 'passwordFile']),
              message: `user ${JSON.stringify(user)} in ${abs}: ${problem}`,
            })
          tenant.users[user] = { password: hash }
          fromFile.add(user)
        }
      }
    }
    for (const [user, u] of Object.entries(tenant.users)) {
      // A password-file user was reported above, with the file's name.
      const problem = u.password === undefined || fromFile.has(user) ? undefined : passwordFormatProblem(u.password)
      const path = ['tenants', id, 'users', user, 'password']
      if (problem !== undefined)
        issues.push({
          path: pathString(path),
          line: lineAt(path),
          message: `user ${JSON.stringify(user)} of tenant ${JSON.stringify(id)}: ${problem}`,
        })
      if (u.password?.startsWith('plain:') === true)
        warnings.push(
          `tenants.${id}.users.${user}: plaintext password; use \`mqtt-tenant-gateway passwd\` to make a hash`,
        )
    }
  }
}

const REDIS_URL = /^rediss?:\/\//

/**
 * With `cluster:`, the gateway's name defaults to host:pid, and the admin store is the cluster's Redis: a
 * SQLite file there would give each gateway its own API changes, keys and usage.
 */
function applyCluster(
  config: GatewayConfig,
  raw: { admin?: { store?: unknown } },
  env: NodeJS.ProcessEnv,
  issues: ConfigIssue[],
  lineAt: (p: Path) => number | undefined,
): void {
  const cluster = config.cluster
  if (cluster === undefined) {
    if (config.admin !== undefined && REDIS_URL.test(config.admin.store)) {
      issues.push({
        path: 'admin.store',
        line: lineAt(['admin', 'store']),
        message: 'a Redis store is for a cluster: add cluster: { redis: URL }, or give a SQLite file',
      })
    }
    return
  }
  if (cluster.name === '')
    cluster.name = `${env.HOSTNAME !== undefined && env.HOSTNAME !== '' ? env.HOSTNAME : hostname()}:${process.pid}`
  if (config.admin === undefined) return
  const store = raw.admin?.store
  if (store === undefined) config.admin.store = cluster.redis
  else if (typeof store !== 'string' || !REDIS_URL.test(store)) {
    issues.push({
      path: 'admin.store',
      line: lineAt(['admin', 'store']),
      message: `with cluster:, the admin store is shared in Redis (each gateway would have its own SQLite file); remove admin.store or give a redis:// URL, got ${JSON.stringify(store)}`,
    })
  }
}

/** Listeners (and the admin listener) that `start` could not bind side by side. */
function checkBinds(config: GatewayConfig, issues: ConfigIssue[], lineAt: (p: Path) => number | undefined): void {
  const sockets: BoundSocket[] = config.listeners.map((l, i) => ({
    label: `listener ${JSON.stringify(l.name)}`,
    path: ['listeners', i, 'bind'],
    ...l.bind,
  }))
  if (config.admin !== undefined)
    sockets.push({ label: 'the admin listener', path: ['admin', 'bind'], ...config.admin.bind })
  config.listeners.forEach((l, i) => {
    if (l.reusePort && !nodeAtLeast(22, 12))
      issues.push({
        path: pathString(['listeners', i, 'reusePort']),
        line: lineAt(['listeners', i, 'reusePort']),
        message: `reusePort needs Node.js 22.12 or later (this is ${process.version})`,
      })
  })
  for (const { first, second } of bindConflicts(sockets)) {
    const where = (s: BoundSocket): string =>
      `${s.label} (${pathString(s.path)}, line ${lineAt(s.path) ?? '?'}) binds ${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`
    issues.push({
      path: pathString(second.path),
      line: lineAt(second.path),
      message: `${where(second)}, which collides with ${where(first)}: one of them needs another port or address`,
    })
  }
}

function nodeAtLeast(major: number, minor: number): boolean {
  const [ma = 0, mi = 0] = process.versions.node.split('.').map(Number)
  return ma > major || (ma === major && mi >= minor)
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
