// The package as an operator installs it: `npm pack`, then `npm install -g` of the tarball into a
// temporary prefix, and the `mqtt-tenant-gateway` on that PATH answers --version, checks a config and
// serves a client. Bounded: dependencies come from npm's cache when it has them, and install scripts
// are skipped (better-sqlite3's native build is CI's `npm ci`'s job; this config has no admin store).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './helpers/net.js'
import { connectClient } from './helpers/clients.js'

test('npm pack + npm install -g gives a working mqtt-tenant-gateway on PATH', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-pack-'))
  try {
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    ) as Array<{ filename: string; files: Array<{ path: string }> }>
    const tarball = join(dir, packed[0]?.filename ?? '')
    const files = packed[0]?.files.map((f) => f.path) ?? []
    for (const f of ['bin/mqtt-tenant-gateway', 'dist/cli.js', 'ui/index.html', 'gateway.example.yaml'])
      assert.ok(files.includes(f), `${f} is packed`)
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'sources and tests stay out')

    const prefix = join(dir, 'prefix')
    execFileSync(
      'npm',
      ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball],
      { stdio: 'ignore', timeout: 240_000 },
    )
    const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` }
    const run = (args: string[]): string =>
      execFileSync('mqtt-tenant-gateway', args, { encoding: 'utf8', env, cwd: dir })
    const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version
    assert.equal(run(['--version']).trim(), version)

    const port = await freePort()
    writeFileSync(
      join(dir, 'g.yaml'),
      `listeners: [{ name: m, type: tcp, bind: "127.0.0.1:${port}" }]\nupstream: { url: embedded }\ntenants:\n  acme: { users: { alice: { password: "plain:a" } } }\n`,
    )
    assert.match(run(['check', '-c', 'g.yaml']), /configuration OK/)
    const child = spawn('mqtt-tenant-gateway', ['start', '-c', 'g.yaml'], {
      env,
      cwd: dir,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      await new Promise<void>((resolve, reject) => {
        let out = ''
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('"msg":"listening"')) resolve()
        })
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)))
      })
      const c = await connectClient(port, { username: 'alice@acme', password: 'a' })
      await c.end()
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      assert.equal(await exited, 0)
    } finally {
      child.kill('SIGKILL')
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
