// One root logger for the process; each connection logs through a ConnectionLog that adds its
// `listener`, `remote`, `tenant` and `clientId` fields.
import { pino, type Logger } from 'pino'

export type { Logger }

export interface LogOptions {
  level?: string
  /** human-readable output; only honoured on a TTY so files and pipes always get JSON lines */
  pretty?: boolean
  destination?: NodeJS.WritableStream
}

export function createLogger (opts: LogOptions = {}): Logger {
  const base = {
    level: opts.level ?? 'info',
    // Passwords never reach a log line, whatever object carries them.
    redact: { paths: ['password', '*.password', 'packet.password', 'upstream.password'], censor: '[redacted]' },
  }
  if (opts.pretty === true && process.stdout.isTTY) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } })
  }
  return opts.destination !== undefined ? pino(base, opts.destination as pino.DestinationStream) : pino(base)
}

type Level = 'debug' | 'info' | 'warn' | 'error'

/**
 * A connection's view of the root logger. Not a pino child: a child costs time and memory on every
 * connection, and most connections log a line or two, or none at the configured level. The fields
 * are read when a line is written, so a line after CONNECT carries the tenant and client ID.
 */
export class ConnectionLog {
  constructor (private readonly root: Logger, private readonly fields: () => Record<string, unknown>) {}

  debug (obj: object | string, msg?: string): void { this.write('debug', obj, msg) }
  info (obj: object | string, msg?: string): void { this.write('info', obj, msg) }
  warn (obj: object | string, msg?: string): void { this.write('warn', obj, msg) }
  error (obj: object | string, msg?: string): void { this.write('error', obj, msg) }

  private write (level: Level, obj: object | string, msg: string | undefined): void {
    if (!this.root.isLevelEnabled(level)) return
    if (typeof obj === 'string') this.root[level](this.fields(), obj)
    else this.root[level]({ ...this.fields(), ...obj }, msg)
  }
}
