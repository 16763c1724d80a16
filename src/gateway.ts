// Wires listeners → sessions → upstream; the library API used by the CLI and the tests alike.
// (Contract stub: implementation lands with the session pipe.)
import type { GatewayConfig } from './config/schema.js'
import type { Logger } from './log.js'

export interface ListeningAddress {
  listener: string
  address: string
  port: number
}

export interface Gateway {
  /** where each listener is bound (ports resolved when the config asked for port 0) */
  readonly addresses: readonly ListeningAddress[]
  /** apply a new validated config: new users/ACLs/limits at once, removed/disabled tenants disconnected */
  reload (config: GatewayConfig): Promise<void>
  /** stop accepting, DISCONNECT v5 clients with 0x8B, close the rest, stop the embedded broker */
  close (): Promise<void>
}

export interface StartOptions {
  logger: Logger
}

export async function startGateway (_config: GatewayConfig, _opts: StartOptions): Promise<Gateway> {
  throw new Error('not implemented yet')
}
