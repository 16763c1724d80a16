// Reading a password for `passwd`: a prompt without echo on a terminal (asked twice), else the first
// line of standard input, so `echo secret | mqtt-tenant-gateway passwd` works in scripts.
import { createInterface } from 'node:readline'

async function firstLine(): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false })
  for await (const line of rl) {
    rl.close()
    return line
  }
  return ''
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const stdin = process.stdin
    process.stderr.write(question)
    stdin.setRawMode(true)
    stdin.resume()
    let value = ''
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          stdin.setRawMode(false)
          stdin.pause()
          stdin.off('data', onData)
          process.stderr.write('\n')
          resolve(value)
          return
        }
        if (ch === '\u0003') process.exit(130) // Ctrl-C
        if (ch === '\u007f') value = value.slice(0, -1)
        else value += ch
      }
    }
    stdin.on('data', onData)
  })
}

export async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) return firstLine()
  const first = await promptHidden('Password: ')
  const again = await promptHidden('Again: ')
  if (first !== again) throw new Error('passwords do not match')
  return first
}
