// One root logger for the process; each connection logs through a ConnectionLog that adds its
// `listener`, `remote`, `tenant` and `clientId` fields.
import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }

export type LogFormat = 'auto' | 'pretty' | 'json'

export interface LogOptions {
  level?: string
  /** auto (default): human-readable when stdout is a terminal, JSON lines otherwise */
  format?: LogFormat
  destination?: NodeJS.WritableStream
}

/** Whether lines come out human-readable: asked for, or auto on a terminal. */
export function prettyLogs(format: LogFormat, isTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY)
}

export function createLogger(opts: LogOptions = {}): Logger {
  const base = {
    level: opts.level ?? 'info',
    // Passwords never reach a log line, whatever object carries them.
    redact: { paths: ['password', '*.password', 'packet.password', 'upstream.password'], censor: '[redacted]' },
  }
  if (opts.destination === undefined && prettyLogs(opts.format ?? 'auto', process.stdout.isTTY)) {
    // In-process and synchronous rather than pino's worker transport: a person is reading, the
    // per-packet path never logs, and the last lines before process.exit are not lost.
    return pino(
      base,
      pretty({ colorize: process.stdout.isTTY, sync: true, translateTime: 'SYS:standard', ignore: 'pid,hostname' }),
    )
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
  constructor(
    private readonly root: Logger,
    private readonly fields: () => Record<string, unknown>,
  ) {}

  debug(obj: object | string, msg?: string): void {
    this.write('debug', obj, msg)
  }
  info(obj: object | string, msg?: string): void {
    this.write('info', obj, msg)
  }
  warn(obj: object | string, msg?: string): void {
    this.write('warn', obj, msg)
  }
  error(obj: object | string, msg?: string): void {
    this.write('error', obj, msg)
  }

  private write(level: Level, obj: object | string, msg: string | undefined): void {
    if (!this.root.isLevelEnabled(level)) return
    if (typeof obj === 'string') this.root[level](this.fields(), obj)
    else this.root[level]({ ...this.fields(), ...obj }, msg)
  }
}
