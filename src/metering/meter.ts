// Usage metering as a serverless MQTT service bills it: per tenant and per hour, session time (to the
// millisecond, reported in seconds and minutes), messages and bytes in and out, peak connections and
// limit hits. The meter samples the tenants' counters (it adds nothing to the packet path) and writes
// the differences to the store on a timer, at every hour boundary and on shutdown, so a crash loses at
// most one flush interval.
import { connectedMsAt, totalLimitHits, type TenantCounters } from '../policy/counters.js'
import type { Store, UsageRecord } from '../store/store.js'

export const HOUR_MS = 3_600_000

export const hourStart = (ms: number): number => ms - (ms % HOUR_MS)

interface Snapshot {
  connectedMs: number
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  limitHits: number
}

function snapshot(c: TenantCounters, now: number): Snapshot {
  return {
    connectedMs: connectedMsAt(c, now),
    messagesIn: c.messagesIn,
    messagesOut: c.messagesOut,
    bytesIn: c.bytesIn,
    bytesOut: c.bytesOut,
    limitHits: totalLimitHits(c),
  }
}

/** The usage between two samples of one tenant's counters, attributed to the hour the interval began in. */
export function usageBetween(
  tenant: string,
  before: Snapshot | undefined,
  after: Snapshot,
  hour: number,
  peakConnections: number,
): UsageRecord {
  const b = before ?? { connectedMs: 0, messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, limitHits: 0 }
  return {
    tenant,
    hour,
    sessionMs: Math.round(after.connectedMs - b.connectedMs),
    messagesIn: after.messagesIn - b.messagesIn,
    messagesOut: after.messagesOut - b.messagesOut,
    bytesIn: after.bytesIn - b.bytesIn,
    bytesOut: after.bytesOut - b.bytesOut,
    peakConnections,
    limitHits: after.limitHits - b.limitHits,
  }
}

const isEmpty = (r: UsageRecord): boolean =>
  r.sessionMs === 0 &&
  r.messagesIn === 0 &&
  r.messagesOut === 0 &&
  r.bytesIn === 0 &&
  r.bytesOut === 0 &&
  r.peakConnections === 0 &&
  r.limitHits === 0

export class UsageMeter {
  private readonly last = new Map<string, Snapshot>()
  private lastSample = Date.now()
  private interval: NodeJS.Timeout | undefined
  private hourTimer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()
  private retention: () => number | undefined = () => undefined

  constructor(
    private readonly counters: () => Iterable<[string, TenantCounters]>,
    private readonly store: Store,
    private readonly onError: (err: unknown) => void,
    /** called right after each sample: the tenants whose counters are gone for good (deleted tenants) */
    private readonly prune: () => Iterable<string> = () => [],
  ) {}

  /** `retention()`: how long hourly rows are kept (ms), read at each pruning so a reload applies it. */
  start(flushIntervalMs: number, retention: () => number | undefined = () => undefined): void {
    this.retention = retention
    this.interval = setInterval(() => {
      void this.flush()
    }, flushIntervalMs)
    this.interval.unref()
    this.armHourBoundary()
    void this.pruneOld()
  }

  /** Deletes the rows older than the retention, after the writes queued before it. */
  private pruneOld(): Promise<void> {
    const keep = this.retention()
    if (keep === undefined) return this.writing
    const before = hourStart(Date.now()) - keep
    this.writing = this.writing
      .then(async () => {
        await this.store.pruneUsage(before)
      })
      .catch(this.onError)
    return this.writing
  }

  /** Samples now so no interval straddles two hours. */
  private armHourBoundary(): void {
    const now = Date.now()
    const atNextHour = hourStart(now) + HOUR_MS - now + 5
    this.hourTimer = setTimeout(() => {
      void this.flush()
      void this.pruneOld()
      this.armHourBoundary()
    }, atNextHour)
    this.hourTimer.unref()
  }

  /** Everything counted since the last flush, written to the store. Flushes run one after another. */
  flush(): Promise<void> {
    const now = Date.now()
    const hour = hourStart(this.lastSample)
    const records: UsageRecord[] = []
    for (const [tenant, c] of this.counters()) {
      const after = snapshot(c, now)
      const record = usageBetween(tenant, this.last.get(tenant), after, hour, c.peakConnections)
      this.last.set(tenant, after)
      // The next interval's peak starts from the connections open now.
      c.peakConnections = c.connections
      if (!isEmpty(record)) records.push(record)
    }
    for (const tenant of this.prune()) this.last.delete(tenant)
    this.lastSample = now
    this.writing = this.writing.then(() => this.store.addUsage(records)).catch(this.onError)
    return this.writing
  }

  async stop(): Promise<void> {
    clearInterval(this.interval)
    clearTimeout(this.hourTimer)
    await this.flush()
  }
}
