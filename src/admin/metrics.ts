// Prometheus metrics (prom-client), read from the tenants' counters at scrape time: nothing is added to
// the packet path. One series set per tenant (label `tenant`), plus `reason` / `limit` labels drawn from
// the fixed reason-code and limit tables, so cardinality is tenants × a small constant.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Gateway } from '../gateway.js'
import type { TenantCounters } from '../policy/counters.js'

export interface GatewayMetrics {
  readonly registry: Registry
  /** the upstream connect latency histogram's observer, given to the gateway */
  upstreamConnected(seconds: number, ok: boolean): void
  /** the gateway whose counters are read at scrape time (set once it has started) */
  attach(gateway: Gateway): void
}

type CounterKey = 'connects' | 'messagesIn' | 'messagesOut' | 'bytesIn' | 'bytesOut' | 'aclDenials' | 'isolationFaults'

/**
 * `clusterOutages`: a cluster member's count of times its Redis became unreachable; `gateway`: its name in
 * the cluster, a label on every series, so one Prometheus query sums the gateways' series into cluster totals
 */
export function createMetrics(opts: { clusterOutages?: () => number; gateway?: string } = {}): GatewayMetrics {
  const registry = new Registry()
  if (opts.gateway !== undefined) registry.setDefaultLabels({ gateway: opts.gateway })
  // Node's standard process metrics, event-loop lag (nodejs_eventloop_lag_*) among them.
  collectDefaultMetrics({ register: registry })
  let gateway: Gateway | undefined
  const tenants = (): Iterable<[string, TenantCounters]> => gateway?.allCounters() ?? []

  // Counters mirror totals kept elsewhere: each scrape sets them to the current total.
  const mirror = (name: string, help: string, key: CounterKey): void => {
    new Counter({
      name,
      help,
      labelNames: ['tenant'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [tenant, c] of tenants()) this.inc({ tenant }, c[key])
      },
    })
  }
  new Gauge({
    name: 'mqtt_gateway_connections',
    help: 'Connected clients of the tenant',
    labelNames: ['tenant'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [tenant, c] of tenants()) this.set({ tenant }, c.connections)
    },
  })
  new Gauge({
    name: 'mqtt_gateway_subscriptions',
    help: "Subscriptions held by the tenant's clients",
    labelNames: ['tenant'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [tenant] of tenants()) this.set({ tenant }, gateway?.subscriptions(tenant) ?? 0)
    },
  })
  mirror('mqtt_gateway_connects_total', 'Connections admitted for the tenant', 'connects')
  mirror('mqtt_gateway_messages_in_total', "PUBLISH packets received from the tenant's clients", 'messagesIn')
  mirror('mqtt_gateway_messages_out_total', "PUBLISH packets delivered to the tenant's clients", 'messagesOut')
  mirror('mqtt_gateway_bytes_in_total', "Bytes received from the tenant's clients", 'bytesIn')
  mirror('mqtt_gateway_bytes_out_total', "Bytes of PUBLISH delivered to the tenant's clients", 'bytesOut')
  mirror('mqtt_gateway_acl_denials_total', "PUBLISH and SUBSCRIBE refused by the tenant's ACL", 'aclDenials')
  mirror(
    'mqtt_gateway_isolation_faults_total',
    "Messages from outside the tenant's namespace dropped before delivery",
    'isolationFaults',
  )
  new Counter({
    name: 'mqtt_gateway_refusals_total',
    help: 'Connections and packets refused, by MQTT reason',
    labelNames: ['tenant', 'reason'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [tenant, c] of tenants()) {
        for (const [reason, n] of Object.entries(c.refusals)) this.inc({ tenant, reason }, n)
      }
    },
  })
  new Counter({
    name: 'mqtt_gateway_limit_hits_total',
    help: 'Limits reached, by limit (config key)',
    labelNames: ['tenant', 'limit'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [tenant, c] of tenants()) {
        for (const [limit, n] of Object.entries(c.limitHits)) this.inc({ tenant, limit }, n)
      }
    },
  })
  new Counter({
    name: 'mqtt_gateway_dropped_total',
    help: "PUBLISH received from the tenant's clients and never forwarded, by why (lingerExpired, sessionEnded)",
    labelNames: ['tenant', 'reason'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [tenant, c] of tenants())
        for (const [reason, n] of Object.entries(c.dropped)) this.inc({ tenant, reason }, n)
    },
  })
  const outages = opts.clusterOutages
  if (outages !== undefined) {
    new Counter({
      name: 'mqtt_gateway_cluster_redis_outages_total',
      help: "Times the cluster's Redis became unreachable since this gateway started",
      registers: [registry],
      collect() {
        this.reset()
        this.inc(outages())
      },
    })
  }
  const upstreamConnect = new Histogram({
    name: 'mqtt_gateway_upstream_connect_seconds',
    help: 'From dialling the broker to its CONNACK, per client connection',
    labelNames: ['outcome'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  })
  return {
    registry,
    upstreamConnected(seconds, ok) {
      upstreamConnect.observe({ outcome: ok ? 'ok' : 'failed' }, seconds)
    },
    attach(g) {
      gateway = g
    },
  }
}
