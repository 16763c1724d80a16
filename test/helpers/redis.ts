// A real redis-server for the cluster tests: random port, nothing saved, killed after.
import { spawn, type ChildProcess } from 'node:child_process'
import { freePort, waitForPort } from './net.js'

export const REDIS_BIN = process.env.REDIS_BIN ?? '/usr/bin/redis-server'

export interface RedisServer {
  readonly port: number
  readonly url: string
  stop(): Promise<void>
  /** start again on the same port, empty (a restarted Redis without persistence has lost everything) */
  start(): Promise<void>
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn(REDIS_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const exited = new Promise<never>((_resolve, reject) =>
      child?.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${stderr}`))),
    )
    exited.catch(() => {})
    await Promise.race([waitForPort(port), exited])
  }
  const stop = async (): Promise<void> => {
    const c = child
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const gone = new Promise((resolve) => c.once('exit', resolve))
    c.kill('SIGKILL')
    await gone
  }
  await start()
  return { port, url: `redis://127.0.0.1:${port}/0`, stop, start }
}
