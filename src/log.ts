// One root logger for the process; sessions take `log.child({ tenant, clientId, remote, listener })`.
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
