// What the route plugins are given: the gateway and the admin services around it.
import type { Gateway } from '../../gateway.js'
import type { Logger } from '../../log.js'
import type { UsageMeter } from '../../metering/meter.js'
import type { Store } from '../../store/store.js'
import type { TenantControl } from '../control.js'
import type { GatewayMetrics } from '../metrics.js'

export interface RouteDeps {
  control: TenantControl
  gateway: Gateway
  store: Store
  meter: UsageMeter
  metrics: GatewayMetrics
  log: Logger
}
