// The command line (SPEC §2): a thin shell over the library. Exit codes: 0 ok, 1 bad config or usage,
// 2 runtime failure. Expected errors print one line; no stack traces for operators.
import { readFileSync, watch } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Command, CommanderError, Option } from 'commander'
import { loadConfigFile, type LoadedConfig } from './config/load.js'
import { summarizeWithStore } from './config/summary.js'
import { ConfigError } from './errors.js'
import { startService, type Service } from './service.js'
import { ListenFailure } from './listeners/listen.js'
import { createLogger, type LogFormat, type Logger } from './log.js'
import { hashPassword } from './tenancy/passwords.js'
import { readPassword } from './password-prompt.js'

export const EXIT = { ok: 0, config: 1, runtime: 2 } as const

class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message)
  }
}

/** How long SIGTERM waits for the drain before exiting anyway. */
const SHUTDOWN_BOUND_MS = 10_000

function load(file: string): LoadedConfig {
  try {
    return loadConfigFile(file)
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(EXIT.config, err.format())
    throw err
  }
}

interface StartOptions {
  config: string
  logLevel?: string
  logFormat?: LogFormat
  pretty?: boolean
  watch?: boolean
}

/** The command line wins over the config; the config's older `pretty` switch over its `format`. */
function logFormat(opts: StartOptions, config: LoadedConfig['config']): LogFormat {
  if (opts.logFormat !== undefined) return opts.logFormat
  if (opts.pretty === true) return 'pretty'
  if (config.log.pretty !== undefined) return config.log.pretty ? 'pretty' : 'json'
  return config.log.format
}

async function start(opts: StartOptions): Promise<void> {
  const file = resolve(opts.config)
  const loaded = load(file)
  const log = createLogger({ level: opts.logLevel ?? loaded.config.log.level, format: logFormat(opts, loaded.config) })
  for (const w of loaded.warnings) log.warn(w)
  let service: Service
  try {
    service = await startService(loaded.config, { logger: log })
  } catch (err) {
    if (err instanceof ListenFailure) throw new ExitError(EXIT.runtime, err.message)
    throw err
  }
  log.info({ config: file }, 'mqtt-tenant-gateway started')

  const reload = (why: string): void => {
    let next: LoadedConfig
    try {
      next = loadConfigFile(file)
    } catch (err) {
      // An invalid new config is refused; the running one stays.
      log.error(
        { reason: why, errors: err instanceof ConfigError ? err.issues : String(err) },
        'reload rejected: configuration invalid, keeping the current one',
      )
      return
    }
    for (const w of next.warnings) log.warn(w)
    service.reload(next.config).catch((err: unknown) => log.error({ err }, 'reload failed'))
  }
  process.on('SIGHUP', () => reload('SIGHUP'))
  if (opts.watch === true) watchFile(file, log, () => reload('file changed'))

  await new Promise<void>((done) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) return
      stopping = true
      log.info({ signal }, 'shutting down')
      const timer = setTimeout(() => {
        log.warn('shutdown bound reached, exiting')
        done()
      }, SHUTDOWN_BOUND_MS)
      timer.unref()
      service.close().then(
        () => {
          clearTimeout(timer)
          done()
        },
        () => done(),
      )
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}

/** Editors replace files rather than writing them: re-arm on rename, debounce bursts. */
function watchFile(file: string, log: Logger, onChange: () => void): void {
  let timer: NodeJS.Timeout | undefined
  const arm = (): void => {
    try {
      const watcher = watch(file, (event) => {
        clearTimeout(timer)
        timer = setTimeout(onChange, 200)
        if (event === 'rename') {
          watcher.close()
          setTimeout(arm, 100)
        }
      })
      watcher.unref()
    } catch (err) {
      log.warn({ err: String(err) }, 'cannot watch the config file; SIGHUP still reloads')
    }
  }
  arm()
}

async function check(opts: { config: string }): Promise<void> {
  const loaded = load(resolve(opts.config))
  const { text, warnings } = await summarizeWithStore(loaded)
  process.stdout.write(text + '\n')
  for (const w of warnings) process.stdout.write(`warning: ${w}\n`)
  for (const w of loaded.warnings) process.stdout.write(`warning: ${w}\n`)
  process.stdout.write('configuration OK\n')
}

async function passwd(user: string | undefined): Promise<void> {
  const password = await readPassword()
  if (password === '') throw new ExitError(EXIT.config, 'empty password')
  const hash = await hashPassword(password)
  process.stdout.write(user !== undefined ? `${user}: { password: "${hash}" }\n` : `${hash}\n`)
}

/** From package.json, one folder up from src/ and from dist/ alike. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown }
  return typeof pkg.version === 'string' ? pkg.version : 'unknown'
}

export function program(): Command {
  const cmd = new Command('mqtt-tenant-gateway')
    .description('Multi-tenant MQTT gateway: many isolated tenants on one shared broker.')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
  cmd
    .command('start')
    .description('run the gateway; SIGHUP reloads the configuration, SIGTERM drains and exits')
    .option('-c, --config <file>', 'configuration file', 'gateway.yaml')
    .addOption(
      new Option('--log-level <level>', 'overrides log.level of the config').choices([
        'fatal',
        'error',
        'warn',
        'info',
        'debug',
        'trace',
        'silent',
      ]),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'auto: human-readable on a terminal, JSON lines otherwise; overrides log.format',
      ).choices(['auto', 'pretty', 'json']),
    )
    .option('--pretty', 'the same as --log-format pretty')
    .option('--watch', 'reload when the configuration file changes')
    .addHelpText(
      'after',
      '\nExample:\n  mqtt-tenant-gateway start -c /etc/mqtt-tenant-gateway/gateway.yaml --log-level debug',
    )
    .action(start)
  cmd
    .command('check')
    .description('validate a configuration and print its listeners, upstream, tenants and effective limits')
    .option('-c, --config <file>', 'configuration file', 'gateway.yaml')
    .addHelpText(
      'after',
      '\nExits 0 when the configuration is valid, 1 with one line per error (YAML path and line) otherwise.',
    )
    .action(check)
  cmd
    .command('passwd')
    .description('read a password (prompt without echo, or the first line of stdin) and print a hash for the config')
    .argument('[user]', 'user name, to print a ready-to-paste YAML line')
    .addHelpText('after', '\nExample:\n  echo "s3cret" | mqtt-tenant-gateway passwd alice')
    .action(passwd)
  return cmd
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv)
    return EXIT.ok
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.config
    if (err instanceof ExitError) {
      process.stderr.write(err.message + '\n')
      return err.exitCode
    }
    process.stderr.write(`mqtt-tenant-gateway: ${err instanceof Error ? err.message : String(err)}\n`)
    return EXIT.runtime
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv).then(
    (code) => process.exit(code),
    () => process.exit(EXIT.runtime),
  )
}
