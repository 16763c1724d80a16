// The configuration schema: the single source of the config's shape, its defaults and its TypeScript
// type (SPEC §3). Every object is strict so a typo is an error, not a silently ignored key. Defaults are
// written once, on the keys: an absent section is `prefault({})`, parsed as empty so its keys fill in.
// Longer than ~300 lines because it is the whole config, one schema; split, the shape would be read in pieces.
import proxyaddr from '@fastify/proxy-addr'
import { z } from 'zod'
import { namespacePatternError } from '../tenancy/namespace.js'
import { TENANT_ID, TENANT_ID_RULE } from '../tenancy/tenant-id.js'

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kib: 1024,
  kb: 1000,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
}

/** `500ms`, `10s`, `5m`, `1h`, or a bare number of milliseconds → milliseconds. */
export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value)
    if (m) return Math.round(Number(m[1]) * (DURATION_UNITS[m[2] as string] as number))
  }
  ctx.addIssue({ code: 'custom', message: `expected a duration like 500ms, 10s or 5m, got ${JSON.stringify(value)}` })
  return z.NEVER
})

/** `256`, `64KiB`, `1MiB` → bytes. */
export const size = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value > 0) return value
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value)
    const unit = SIZE_UNITS[(m?.[2] ?? 'x').toLowerCase()]
    if (m && unit !== undefined && Number(m[1]) > 0) return Math.round(Number(m[1]) * unit)
  }
  ctx.addIssue({ code: 'custom', message: `expected a size like 256, 64KiB or 1MiB, got ${JSON.stringify(value)}` })
  return z.NEVER
})

/** The largest packet MQTT can carry: a Remaining Length of 268,435,455 plus its fixed header, rounded to 256 MiB. */
export const MAX_PACKET_SIZE = 256 * 1024 * 1024

const positive = z.number({ error: (i) => `expected a positive number, got ${JSON.stringify(i.input)}` }).positive()
const count = z
  .number({ error: (i) => `expected a whole number, got ${JSON.stringify(i.input)}` })
  .int()
  .positive()

export { TENANT_ID }
export const tenantId = z.string().regex(TENANT_ID, TENANT_ID_RULE)

export const limitsSchema = z.strictObject({
  maxConnections: count.optional(),
  connectRate: positive.optional(),
  maxSubscriptionsPerClient: count.optional(),
  maxSubscriptions: count.optional(),
  publishRate: positive.optional(),
  clientPublishRate: positive.optional(),
  rateAction: z.enum(['throttle', 'disconnect']).optional(),
  bandwidth: size.optional(),
  maxPacketSize: size.optional(),
  maxQos: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'expected 0, 1 or 2' }).optional(),
  retain: z.boolean().optional(),
  maxTopicLevels: count.optional(),
  maxTopicLength: count.optional(),
  maxSessionExpiry: z.number().int().nonnegative().optional(),
  maxInflight: count.optional(),
  /** users the tenant may have; checked when the admin API creates one (the YAML is the operator's own) */
  maxUsers: count.optional(),
})
export type Limits = z.infer<typeof limitsSchema>

const aclAction = z.enum(['publish', 'subscribe', 'all'])
/** `{ allow: publish, topic: "devices/%u/#" }` or `{ deny: all, topic: "#" }`, normalised to one shape. */
export const aclRuleSchema = z.union(
  [
    z
      .strictObject({ allow: aclAction, topic: z.string().min(1) })
      .transform((r) => ({ effect: 'allow' as const, action: r.allow, topic: r.topic })),
    z
      .strictObject({ deny: aclAction, topic: z.string().min(1) })
      .transform((r) => ({ effect: 'deny' as const, action: r.deny, topic: r.topic })),
  ],
  { error: 'expected { allow|deny: publish|subscribe|all, topic: FILTER }' },
)
export type AclRule = z.infer<typeof aclRuleSchema>

export const userSchema = z.strictObject({
  /** none: the user logs in only with a client certificate (a listener's tls.clientCa) */
  password: z.string().min(1).optional(),
  acl: z.array(aclRuleSchema).optional(),
})
export type UserConfig = z.infer<typeof userSchema>

export const tenantSchema = z.strictObject({
  plan: z.string().optional(),
  limits: limitsSchema.default({}),
  hosts: z.array(z.string().min(1)).default([]),
  anonymous: z.boolean().default(false),
  disabled: z.boolean().default(false),
  users: z.record(z.string().min(1), userSchema).default({}),
  passwordFile: z.string().optional(),
  acl: z.array(aclRuleSchema).optional(),
  /** the broker this tenant's clients are carried to: a name from `upstreams`; the default `upstream` without */
  upstream: z.string().min(1).optional(),
})
export type TenantConfig = z.infer<typeof tenantSchema>

/** `host:port`, `[v6]:port` or `:port`; the host defaults to all interfaces (IPv4 and IPv6). */
const bind = z.string().transform((value, ctx) => {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim())
  const port = Number(m?.[3])
  if (!m || port > 65535) {
    ctx.addIssue({
      code: 'custom',
      message: `expected host:port (e.g. 0.0.0.0:1883 or [::]:1883), got ${JSON.stringify(value)}`,
    })
    return z.NEVER
  }
  return { host: m[1] ?? (m[2] || '::'), port }
})

/** What every listener has, whatever its transport. */
const listenerBase = {
  name: z.string().min(1),
  bind,
  tenant: tenantId.optional(),
  connectTimeout: duration.default(10_000),
  /** new TCP connections per second from one source IP; more are closed at once, before TLS or CONNECT */
  ipConnectRate: count.optional(),
  /**
   * behind a load balancer: every connection starts with a PROXY protocol header (v1 or v2) naming the
   * client, and one without is closed; only the balancer may reach such a listener
   */
  proxyProtocol: z.boolean().default(false),
  /**
   * SO_REUSEPORT (Linux, Node ≥ 22.12): several gateway processes on one host bind this port and the
   * kernel spreads new connections over them; each process keeps its own limits and sessions
   */
  reusePort: z.boolean().default(false),
}

/** tls and wss: the listener's certificate, key and CAs (PEM files, relative to the config file). */
const listenerTls = z.strictObject(
  {
    cert: z.string().min(1),
    key: z.string().min(1),
    ca: z.string().optional(),
    /** mutual TLS: every client presents a certificate signed by this CA; its CN stands for username and password */
    clientCa: z.string().optional(),
  },
  { error: (issue) => (issue.input === undefined ? 'a tls or wss listener needs tls: { cert, key }' : undefined) },
)

/** ws and wss: MQTT over WebSocket [MQTT-6], for browsers and clients behind HTTP-only networks. */
const webSocket = {
  /** the HTTP path clients upgrade on */
  path: z.string().regex(/^\//, 'expected a path starting with /').default('/mqtt'),
  /** the largest WebSocket message taken (one usually carries one MQTT packet); a larger one closes with 1009 */
  maxMessageSize: size.default(1024 * 1024),
  /**
   * behind HTTP proxies (nginx, an ALB): addresses or CIDRs whose X-Forwarded-For is believed; the
   * client is the nearest address in it that is not one of them
   */
  trustedProxies: z
    .array(z.string().min(1))
    .min(1)
    .superRefine((list, ctx) => {
      try {
        proxyaddr.compile(list)
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) })
      }
    })
    .optional(),
}

/** Keys that belong to other listener types: where one turns up, say where it belongs rather than "unknown key". */
const OTHER_TYPES_KEYS: Record<string, string> = {
  tls: 'tls is for tls and wss listeners',
  path: 'path is for ws and wss listeners',
  maxMessageSize: 'maxMessageSize is for ws and wss listeners',
  trustedProxies:
    'trustedProxies is for ws and wss listeners (X-Forwarded-For is HTTP); ' +
    'behind a TCP load balancer use proxyProtocol',
}
const misplacedKey = {
  error: (issue: z.core.$ZodRawIssue) =>
    issue.code === 'unrecognized_keys' ? OTHER_TYPES_KEYS[issue.keys[0] ?? ''] : undefined,
}

/** A listener, its keys by type: TLS files only on tls and wss, WebSocket settings only on ws and wss. */
export const listenerSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('tcp'), ...listenerBase }, misplacedKey),
    z.strictObject({ type: z.literal('tls'), ...listenerBase, tls: listenerTls }, misplacedKey),
    z.strictObject({ type: z.literal('ws'), ...listenerBase, ...webSocket }, misplacedKey),
    z.strictObject({ type: z.literal('wss'), ...listenerBase, ...webSocket, tls: listenerTls }, misplacedKey),
  ],
  { error: 'expected a listener type: tcp, tls, ws or wss' },
)
export type ListenerConfig = z.infer<typeof listenerSchema>
export type ListenerType = ListenerConfig['type']
/** The config of a listener of this type. */
export type ListenerOf<T extends ListenerType> = Extract<ListenerConfig, { type: T }>

export const upstreamSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^(embedded|mqtts?:\/\/[^/\s]+\/?)$/, 'expected embedded, mqtt://host:port or mqtts://host:port'),
    username: z.string().optional(),
    password: z.string().optional(),
    connectTimeout: duration.default(5_000),
    /** for mqtts:// upstreams with a private CA */
    ca: z.string().optional(),
    rejectUnauthorized: z.boolean().default(true),
    /**
     * the newest MQTT the broker speaks: 3.1.1 (RabbitMQ before 3.13, older brokers) refuses MQTT 5 clients
     * with CONNACK 0x84 instead of carrying them to a broker that drops them; the embedded broker is 3.1.1
     */
    protocol: z
      .union([z.literal('3.1.1'), z.literal('5'), z.literal(5)], { error: 'expected 3.1.1 or 5' })
      .transform((p) => (p === '3.1.1' ? ('3.1.1' as const) : ('5' as const)))
      .optional(),
    /**
     * mosquitto dynamic security: the gateway keeps one broker client per tenant (the username template's
     * value, the upstream password) and a role allowing only the tenant's prefix, through $CONTROL
     */
    provision: z
      .strictObject({
        type: z.literal('mosquitto-dynsec'),
        /** a dynsec client allowed to use $CONTROL/dynamic-security (mosquitto_ctrl dynsec init makes one) */
        username: z.string().min(1),
        password: z.string().min(1),
      })
      .optional(),
  })
  .refine((u) => u.url !== 'embedded' || u.protocol !== '5', {
    message: 'the embedded broker (aedes) speaks MQTT 3.1.1 only',
    path: ['protocol'],
  })
  .refine((u) => u.provision === undefined || provisionableCredentials(u), {
    message:
      'provisioning keeps one broker client per tenant: it needs username and password, the username with {tenant}, and neither with {username} or {clientId}',
    path: ['provision'],
  })
  .refine((u) => u.provision === undefined || u.url !== 'embedded', {
    message: 'the embedded broker needs no provisioning',
    path: ['provision'],
  })
export type UpstreamConfig = z.infer<typeof upstreamSchema>

function provisionableCredentials(u: { username?: string | undefined; password?: string | undefined }): boolean {
  const perClient = /\{(username|clientId)\}/
  return (
    u.username !== undefined &&
    u.password !== undefined &&
    u.password !== '' &&
    u.username.includes('{tenant}') &&
    !perClient.test(u.username) &&
    !perClient.test(u.password)
  )
}

/** The admin HTTP API, web UI and /metrics (issue #7), with the store that keeps the API's changes and usage. */
export const adminSchema = z.strictObject({
  bind,
  /** HTTPS with this certificate and key (PEM files, relative to the config file); plain HTTP without */
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /** full access to every tenant; tenants get their own API keys from the operator */
  operatorToken: z.string().min(16, 'the operator token must be at least 16 characters (e.g. `openssl rand -hex 32`)'),
  /**
   * SQLite file for the API's changes, API keys and usage (relative to the config file), or :memory:; with
   * `cluster:` it is the cluster's Redis (absent) or a redis:// URL, never a file
   */
  store: z.string().min(1).default('mqtt-tenant-gateway.db'),
  /** how often usage is written to the store: at most this much is lost if the process is killed */
  usageFlushInterval: duration
    .refine((ms) => ms >= 100 && ms <= 60_000, 'expected between 100ms and 60s')
    .default(60_000),
  /** hourly usage rows older than this are deleted (at start and every hour); kept forever when unset */
  usageRetention: duration.refine((ms) => ms >= 3_600_000, 'expected at least 1h, e.g. 400d').optional(),
})
export type AdminConfig = z.infer<typeof adminSchema>

/**
 * Several gateways sharing one set of tenants through Redis (SPEC §11): connection counts, rates, the
 * login throttle, the admin store, client lists and kicks. Without it each gateway counts alone.
 */
export const clusterSchema = z.strictObject({
  /** ioredis URL (rediss:// for TLS); every gateway of the cluster names the same */
  redis: z.string().regex(/^rediss?:\/\/\S*$/, 'expected redis://host:port/db or rediss://host:port/db'),
  /** this gateway's name in the cluster, unique; empty or absent: host:pid (filled in by the loader) */
  name: z
    .string()
    .regex(/^[^\s]*$/, 'expected a name without spaces')
    .default(''),
  /**
   * how long a gateway that stops beating (SIGKILL, power) holds its connection and subscription slots;
   * its heartbeat runs every third of it. Every gateway of the cluster should name the same.
   */
  leaseTtl: duration
    .default(15_000)
    .refine((ms) => ms >= 1000, 'expected at least 1s: the heartbeat runs every third of it'),
})
export type ClusterConfig = z.infer<typeof clusterSchema>

const resolveSource = z.enum(['listener', 'sni', 'username'])
export const tenancySchema = z
  .strictObject({
    resolve: z.array(resolveSource).min(1).default(['listener', 'sni', 'username']),
    sni: z.string().includes('{tenant}', { message: 'the sni pattern must contain {tenant}' }).optional(),
    username: z.string().default('{username}@{tenant}'),
    namespace: z
      .strictObject({
        topic: z
          .string()
          .includes('{tenant}', { message: 'the topic namespace must contain {tenant}' })
          .default('{tenant}/'),
        clientId: z
          .string()
          .includes('{tenant}', { message: 'the client ID namespace must contain {tenant}' })
          .default('{tenant}/'),
      })
      .superRefine((ns, ctx) => {
        // Patterns that cannot keep tenants apart are refused here, where the operator is told the path.
        const problem = namespacePatternError(ns)
        if (problem !== undefined)
          ctx.addIssue({
            code: 'custom',
            message: problem,
            path: [problem.includes('client ID') ? 'clientId' : 'topic'],
          })
      })
      .prefault({}),
  })
  .refine((t) => /^(\{username\}.+\{tenant\}|\{tenant\}.+\{username\})$/.test(t.username), {
    message: 'the username pattern must be {username}SEP{tenant} or {tenant}SEP{username}',
    path: ['username'],
  })
export type TenancyConfig = z.infer<typeof tenancySchema>

export const authSchema = z
  .strictObject({
    /** failed authentications per source IP per minute before the cooldown */
    maxFailuresPerMinute: count.default(10),
    cooldown: duration.default(60_000),
    /** verified credentials kept in memory, so a reconnect storm is not bound by scrypt cost */
    cacheSize: z.number().int().nonnegative().default(10_000),
    cacheTtl: duration.default(300_000),
  })
  .prefault({})

export const gatewaySchema = z
  .strictObject({
    listeners: z.array(listenerSchema).min(1, 'expected at least one listener'),
    upstream: upstreamSchema,
    /** more brokers, by name, for tenants placed on them with `tenants.X.upstream` */
    upstreams: z
      .record(
        z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected an upstream name of letters, digits, _ and -'),
        upstreamSchema.refine((u) => u.url !== 'embedded', {
          message: 'the embedded broker can only be the default upstream',
          path: ['url'],
        }),
      )
      .default({}),
    tenancy: tenancySchema.prefault({}),
    auth: authSchema,
    /**
     * how long a throttled client's packets, received before it left, are still forwarded at its rate;
     * what is left after that is dropped and counted (SPEC §8)
     */
    throttleLinger: duration.default(30_000),
    /** gateway-wide connection cap (all tenants); reached → CONNACK 0x89 Server busy / v3 0x03 */
    maxConnections: count.optional(),
    /**
     * gateway-wide default packet size bound (SPEC §7) for tenants whose plan and limits set no
     * maxPacketSize, so no connection buffers more of a partial packet than this
     */
    maxPacketSize: size
      .refine((n) => n <= MAX_PACKET_SIZE, `expected at most 256MiB (${MAX_PACKET_SIZE} bytes)`)
      .default(1024 * 1024),
    plans: z.record(z.string().min(1), limitsSchema).default({}),
    admin: adminSchema.optional(),
    cluster: clusterSchema.optional(),
    tenants: z.record(tenantId, tenantSchema).default({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** auto: human-readable on a terminal, JSON lines otherwise (files, pipes, journald) */
        format: z.enum(['auto', 'pretty', 'json']).default('auto'),
        /** the older switch: true is format pretty, false format json */
        pretty: z.boolean().optional(),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const names = new Set<string>()
    cfg.listeners.forEach((l, i) => {
      if (names.has(l.name))
        ctx.addIssue({
          code: 'custom',
          message: `duplicate listener name ${JSON.stringify(l.name)}`,
          path: ['listeners', i, 'name'],
        })
      names.add(l.name)
      if (l.tenant !== undefined && !(l.tenant in cfg.tenants)) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown tenant ${JSON.stringify(l.tenant)}`,
          path: ['listeners', i, 'tenant'],
        })
      }
    })
    for (const [id, tenant] of Object.entries(cfg.tenants)) {
      if (tenant.plan !== undefined && !(tenant.plan in cfg.plans)) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown plan ${JSON.stringify(tenant.plan)} (plans: ${Object.keys(cfg.plans).join(', ') || 'none'})`,
          path: ['tenants', id, 'plan'],
        })
      }
      if (tenant.upstream !== undefined && !(tenant.upstream in cfg.upstreams)) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown upstream ${JSON.stringify(tenant.upstream)} (upstreams: ${Object.keys(cfg.upstreams).join(', ') || 'none'})`,
          path: ['tenants', id, 'upstream'],
        })
      }
    }
  })

/** The validated configuration as the schema produces it (before password files are read). */
export type GatewayConfig = z.infer<typeof gatewaySchema>
