// A real mosquitto for the behaviour tests: own config, random port, killed after.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from './net.js'

export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto'

export interface Mosquitto {
  readonly port: number
  readonly url: string
  stop(): Promise<void>
  /** stop and start again on the same port (broker restart mid-session) */
  restart(): Promise<void>
  /** SIGSTOP: the broker still completes TCP handshakes (the kernel does) but reads and answers nothing */
  freeze(): void
  /** SIGCONT after freeze */
  thaw(): void
}

export async function startMosquitto(extraConf = ''): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-mosquitto-'))
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      // Started as root, mosquitto would switch to user `mosquitto`, who cannot read the temp files.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      extraConf,
    ].join('\n') + '\n',
  )
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const exited = new Promise<never>((_resolve, reject) =>
      child?.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${stderr}`))),
    )
    exited.catch(() => {}) // a later exit (stop, restart) is expected, not an error
    await Promise.race([waitForPort(port), exited])
  }
  const stop = async (): Promise<void> => {
    const c = child
    // already gone (a killed child keeps exitCode null)
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const gone = new Promise((resolve) => c.once('exit', resolve))
    c.kill('SIGKILL')
    await gone
  }
  await start()
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop,
    restart: async () => {
      await stop()
      await start()
    },
    freeze: () => {
      child?.kill('SIGSTOP')
    },
    thaw: () => {
      child?.kill('SIGCONT')
    },
  }
}
