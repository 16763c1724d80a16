// One test of a vendored Eclipse Paho interoperability suite, run in its own python3 process
// (test/interop/run_suite.py) against one broker address, and the result it wrote.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PYTHON = process.env.PYTHON ?? '/usr/bin/python3'
const RUNNER = fileURLToPath(new URL('run_suite.py', import.meta.url))

export const SUITES = { v3: 'client_test.py', v5: 'client_test5.py' } as const
export type Suite = keyof typeof SUITES

export type Status = 'pass' | 'fail' | 'error' | 'timeout' | 'skip' | 'no result'
export interface SuiteResult {
  readonly name: string
  readonly status: Status
  readonly seconds: number
  /** the assertion and what the test printed (the suites print their own tracebacks) */
  readonly detail: string
}

export interface Target {
  readonly port: number
  readonly username?: string
  readonly password?: string
}

/** Seconds one test may run before the runner ends it as `timeout` (some wait forever on mosquitto). */
export const TEST_TIMEOUT_S = 25

const results = mkdtempSync(join(tmpdir(), 'mtg-interop-'))
let runs = 0

async function runner(
  suite: Suite,
  target: Target,
  env: Record<string, string>,
): Promise<{ file: string; stderr: string }> {
  const file = join(results, `${runs++}.jsonl`)
  const child = spawn(PYTHON, [RUNNER, file, SUITES[suite], '--hostname', '127.0.0.1', '-p', String(target.port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      PYTHONDONTWRITEBYTECODE: '1', // keep the vendored tree clean
      INTEROP_TEST_TIMEOUT: String(TEST_TIMEOUT_S),
      ...(target.username !== undefined
        ? { INTEROP_USERNAME: target.username, INTEROP_PASSWORD: target.password ?? '' }
        : {}),
      ...env,
    },
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  // The runner's own alarm ends a stuck test; this is the backstop for a stuck setUpClass.
  const kill = setTimeout(() => child.kill('SIGKILL'), (TEST_TIMEOUT_S + 30) * 1000)
  await new Promise((resolve) => child.once('exit', resolve))
  clearTimeout(kill)
  return { file, stderr }
}

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

/** The suite's test names, as unittest finds them. */
export async function listTests(suite: Suite): Promise<string[]> {
  const { file, stderr } = await runner(suite, { port: 1 }, { INTEROP_LIST: '1' })
  const names = read(file)
    .split('\n')
    .filter((n) => n !== '')
  if (names.length === 0) throw new Error(`no tests listed for ${SUITES[suite]}: ${stderr}`)
  return names
}

/** Runs test `name` of `suite` alone (its setUpClass cleans the broker state the suite uses first). */
export async function runTest(suite: Suite, name: string, target: Target): Promise<SuiteResult> {
  const { file, stderr } = await runner(suite, target, { INTEROP_ONLY: name })
  for (const line of read(file).split('\n')) {
    if (line === '') continue
    const r = JSON.parse(line) as SuiteResult
    if (r.name === name) return r
    // an error in setUpClass is reported under the class, not the test
    return { ...r, name, status: 'error' }
  }
  return { name, status: 'no result', seconds: 0, detail: stderr }
}
