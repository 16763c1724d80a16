// The library entry for embedders (package.json `main`): start a gateway from a config, the way the CLI
// and the tests do — `loadConfigFile` or `parseConfigText`, then `startGateway(config, { logger })`.
export { startGateway, type Gateway, type StartOptions, type ListeningAddress, type ClientInfo } from './gateway.js'
export { loadConfigFile, parseConfigText, type LoadedConfig, type ParseOptions } from './config/load.js'
export { createLogger, type Logger, type LogOptions } from './log.js'
export type { GatewayConfig, Limits, TenantConfig, ListenerConfig, UpstreamConfig } from './config/schema.js'
