// What the route plugins are given: the gateway and the admin services around it.
import type { Gateway } from '../../gateway.js'
import type { Logger } from '../../log.js'
import type { UsageMeter } from '../../metering/meter.js'
import type { StoreChange } from '../../store/redis.js'
import type { Store } from '../../store/store.js'
import type { TenantControl } from '../control.js'
import type { GatewayMetrics } from '../metrics.js'

/** The admin's view of this gateway's cluster membership (SPEC §11), when it has one. */
export interface AdminCluster {
  readonly name: string
  /** for /api/v1/ready: reported, never a reason for 503 (a balancer would pull every gateway at once) */
  readiness(): 'reachable' | 'unreachable'
  /** times Redis became unreachable since the start */
  outages(): number
  /** the shared store's change feed: changes made through any gateway, this one's included */
  onStoreChange(listener: (change: StoreChange & { gateway: string }) => void): () => void
}

export interface RouteDeps {
  control: TenantControl
  gateway: Gateway
  store: Store
  meter: UsageMeter
  metrics: GatewayMetrics
  log: Logger
  cluster?: AdminCluster | undefined
}
