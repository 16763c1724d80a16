// The command line as an operator meets it (SPEC §2): help, check, passwd, start + SIGHUP + SIGTERM,
// and exit codes. Runs the TypeScript entry so no build is needed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { freePort } from './helpers/net.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { verifyPassword } from '../src/tenancy/passwords.js'
import { openSqliteStore } from '../src/store/sqlite.js'

const CLI = ['--import', 'tsx', 'src/cli.ts']
const cli = (args: string[], input?: string) =>
  spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', input, timeout: 30_000 })

test('--help explains the three commands; an unknown command exits 1', () => {
  const help = cli(['--help'])
  assert.equal(help.status, 0)
  for (const c of ['start', 'check', 'passwd']) assert.match(help.stdout, new RegExp(`\\b${c}\\b`))
  assert.match(cli(['start', '--help']).stdout, /--config/)
  assert.equal(cli(['frobnicate']).status, 1)
})

test('check: the example passes with effective limits; a bad file exits 1 with path and line, no stack', () => {
  const ok = cli(['check', '-c', 'gateway.example.yaml'])
  assert.equal(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, /acme: plan pro/)
  assert.match(ok.stdout, /limits: maxConnections=20000/)
  const bad = cli(['check', '-c', 'test/fixtures/bad-configs/bad-rate.yaml'])
  assert.equal(bad.status, 1)
  assert.match(bad.stderr, /tenants\.acme\.limits\.publishRate \(line 8\): expected a positive number, got "fast"/)
  assert.doesNotMatch(bad.stderr, /\n\s+at /)
  assert.equal(cli(['check', '-c', 'does-not-exist.yaml']).status, 1)
})

test('passwd reads stdin and prints a hash the gateway verifies', async () => {
  const r = cli(['passwd'], 'correct horse\n')
  assert.equal(r.status, 0, r.stderr)
  const hash = r.stdout.trim()
  assert.ok(await verifyPassword(hash, 'correct horse'))
  assert.match(cli(['passwd', 'alice'], 'x\n').stdout, /^alice: \{ password: "scrypt\$/)
})

test('start: port in use exits 2 naming the port', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-cli-'))
  const port = await freePort()
  const hold = createServer()
  await new Promise<void>((resolve) => hold.listen(port, '127.0.0.1', resolve))
  writeFileSync(
    join(dir, 'g.yaml'),
    `listeners: [{ name: m, type: tcp, bind: "127.0.0.1:${port}" }]\nupstream: { url: embedded }\n`,
  )
  const r = cli(['start', '-c', join(dir, 'g.yaml')])
  hold.close()
  assert.equal(r.status, 2)
  assert.match(r.stderr, new RegExp(`port ${port}`))
})

test('start: SIGHUP reloads (a bad file is refused, the old config stays); SIGTERM exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-cli-'))
  const port = await freePort()
  const file = join(dir, 'g.yaml')
  const conf = (tenants: string) =>
    `listeners: [{ name: m, type: tcp, bind: "127.0.0.1:${port}" }]\nupstream: { url: embedded }\ntenants:\n${tenants}`
  writeFileSync(file, conf('  acme: { users: { alice: { password: "plain:a" } } }\n'))
  const child = spawn(process.execPath, [...CLI, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const waitLog = async (re: RegExp) => {
    const deadline = Date.now() + 10_000
    while (!re.test(out)) {
      if (Date.now() > deadline) throw new Error(`no log ${re} in:\n${out}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  try {
    await waitLog(/"msg":"listening"/)
    const kept = await connectClient(port, { username: 'alice@acme', password: 'a', clientId: 'kept' })
    writeFileSync(file, 'listeners: [oops\n')
    child.kill('SIGHUP')
    await waitLog(/reload rejected/)
    const still = await connectClient(port, { username: 'alice@acme', password: 'a' })
    await still.end()
    writeFileSync(
      file,
      conf(
        '  acme: { users: { alice: { password: "plain:new" } } }\n  globex: { users: { bob: { password: "plain:b" } } }\n',
      ),
    )
    child.kill('SIGHUP')
    await waitLog(/configuration reloaded/)
    const bob = await connectClient(port, { username: 'bob@globex', password: 'b' })
    await bob.end()
    assert.equal(await connectRefusal(port, { username: 'alice@acme', password: 'a' }), 0x04)
    assert.equal(kept.client.connected, true) // nobody was dropped
    await kept.end()
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
  } finally {
    child.kill('SIGKILL')
  }
})

test("check: with an admin store, the API's changes are merged over the YAML and listed as such", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-cli-'))
  writeFileSync(
    join(dir, 'g.yaml'),
    [
      'listeners: [{ name: m, type: tcp, bind: "127.0.0.1:1883" }]',
      'upstream: { url: embedded }',
      'admin: { bind: "127.0.0.1:8080", operatorToken: "0123456789abcdef0", store: state.db }',
      'plans: { free: { maxConnections: 5 }, pro: { maxConnections: 100 } }',
      'tenants:',
      '  acme: { plan: free }',
      '  globex: {}',
    ].join('\n'),
  )
  const store = openSqliteStore(join(dir, 'state.db'))
  await store.setTenantChanges('acme', { plan: 'pro' })
  await store.setTenantChanges('globex', { deleted: true })
  await store.setTenantChanges('initech', { created: true })
  await store.close()
  const r = cli(['check', '-c', join(dir, 'g.yaml')])
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /acme: plan pro/)
  assert.match(r.stdout, /limits: maxConnections=100/)
  assert.doesNotMatch(r.stdout, /globex: plan/)
  assert.match(
    r.stdout,
    /changes made through the admin API \(.*state\.db; they win over the YAML\):\n {2}acme: plan\n {2}globex: deleted\n {2}initech: created through the API/,
  )
})

test('--version prints the package version', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }
  for (const flag of ['--version', '-V']) {
    const r = cli([flag])
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout.trim(), pkg.version)
  }
})

/**
 * `start` against a port already held logs the embedded broker's line, then exits 2 by itself; under
 * script(1) its stdout is a terminal. Returns what it printed.
 */
async function startOnHeldPort(args: string[], tty: boolean): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-cli-'))
  const port = await freePort()
  const hold = createServer()
  await new Promise<void>((resolve) => hold.listen(port, '127.0.0.1', resolve))
  writeFileSync(
    join(dir, 'g.yaml'),
    `listeners: [{ name: m, type: tcp, bind: "127.0.0.1:${port}" }]\nupstream: { url: embedded }\n`,
  )
  try {
    const argv = [process.execPath, ...CLI, 'start', '-c', join(dir, 'g.yaml'), ...args]
    const r = tty
      ? spawnSync('script', ['-qec', argv.map((a) => `'${a}'`).join(' '), '/dev/null'], {
          encoding: 'utf8',
          timeout: 30_000,
        })
      : spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 30_000 })
    return r.stdout
  } finally {
    hold.close()
  }
}

test('logs: human-readable on a terminal, JSON lines on a pipe; --log-format overrides both', async () => {
  const onTty = await startOnHeldPort([], true)
  assert.match(onTty, /INFO.*embedded broker/)
  assert.doesNotMatch(onTty, /"level":30/)
  const onPipe = await startOnHeldPort([], false)
  assert.match(onPipe, /^\{"level":30,.*"msg":"embedded broker/m)
  assert.match(await startOnHeldPort(['--log-format', 'json'], true), /"level":30,.*"msg":"embedded broker/)
  const forced = await startOnHeldPort(['--log-format', 'pretty'], false)
  assert.match(forced, /INFO: embedded broker/)
  assert.ok(!forced.includes('\u001b['), 'no colours into a file')
})
