// What the gateway knows of its brokers: `upstream.protocol: 3.1.1` refuses MQTT 5 clients cleanly
// (0x84) for the tenants on that broker only, and readiness is an MQTT login with the upstream
// credentials, so a broker that refuses every login is reported not ready.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfigText } from '../src/config/load.js'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { adminYaml, startTestService } from './helpers/service.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { connectPacket, rawConnect } from './helpers/raw.js'
import type { IConnackPacket } from 'mqtt-packet'

const cleanup: Array<() => Promise<void>> = []
after(async () => {
  for (const c of cleanup.reverse()) await c()
})

test('upstream.protocol 3.1.1: MQTT 5 clients of its tenants get CONNACK 0x84, 3.1.1 clients are carried; other tenants keep MQTT 5', async () => {
  const modern = await startMosquitto()
  const old = await startMosquitto()
  cleanup.push(
    () => modern.stop(),
    () => old.stop(),
  )
  const svc = await startTestService(
    adminYaml(
      modern.url,
      `
upstreams:
  old: { url: ${old.url}, protocol: 3.1.1 }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { upstream: old, users: { alice: { password: "plain:g" } } }
`,
    ),
  )
  cleanup.push(() => svc.close())
  // The same client ID in both tenants: acme's MQTT 5 session is untouched by globex's refusal.
  const acme = await connectClient(svc.mqttPort, {
    protocolVersion: 5,
    clientId: 'dev-1',
    username: 'alice@acme',
    password: 'a',
  })
  assert.equal(
    await connectRefusal(svc.mqttPort, {
      protocolVersion: 5,
      clientId: 'dev-1',
      username: 'alice@globex',
      password: 'g',
    }),
    0x84,
  )
  const globex = await connectClient(svc.mqttPort, {
    protocolVersion: 4,
    clientId: 'dev-1',
    username: 'alice@globex',
    password: 'g',
  })
  assert.ok(acme.client.connected && globex.client.connected)
  // The refusal says why, so the device maker knows to fall back to 3.1.1.
  const raw = await rawConnect(svc.mqttPort, 5)
  try {
    raw.send(
      connectPacket({ protocolVersion: 5, clientId: 'dev-2', username: 'alice@globex', password: Buffer.from('g') }),
    )
    const connack = (await raw.next()) as IConnackPacket
    assert.equal(connack.reasonCode, 0x84)
    assert.match(connack.properties?.reasonString ?? '', /MQTT 3\.1\.1/)
  } finally {
    raw.end()
  }
  await Promise.all([acme.end(), globex.end()])
})

test('the schema: protocol takes 3.1.1 or 5; the embedded broker cannot be 5', () => {
  const base = (upstream: string) => `listeners: [{ name: m, type: tcp, bind: "127.0.0.1:0" }]\nupstream: ${upstream}\n`
  assert.equal(
    parseConfigText(base('{ url: "mqtt://b:1883", protocol: 3.1.1 }'), { baseDir: '.' }).config.upstream.protocol,
    '3.1.1',
  )
  assert.equal(
    parseConfigText(base('{ url: "mqtt://b:1883", protocol: 5 }'), { baseDir: '.' }).config.upstream.protocol,
    '5',
  )
  assert.throws(
    () => parseConfigText(base('{ url: "mqtt://b:1883", protocol: 4 }'), { baseDir: '.' }),
    /upstream\.protocol \(line 2\): expected 3\.1\.1 or 5/,
  )
  assert.throws(
    () => parseConfigText(base('{ url: embedded, protocol: 5 }'), { baseDir: '.' }),
    /upstream\.protocol \(line 2\): the embedded broker \(aedes\) speaks MQTT 3\.1\.1 only/,
  )
})

/** A mosquitto that lets in only the users of a password file: `acme` and `globex` with password `right`. */
async function lockedMosquitto(): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-locked-'))
  const passwd = join(dir, 'passwd')
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', passwd, 'acme', 'right'])
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', passwd, 'globex', 'right'])
  const broker = await startMosquitto(`allow_anonymous false\npassword_file ${passwd}`)
  cleanup.push(() => broker.stop())
  return broker
}

test('readiness logs in with the upstream credentials: a broker refusing them is not ready, and the log says why', async () => {
  const broker = await lockedMosquitto()
  const yaml = (password: string): string =>
    adminYaml(
      broker.url,
      `
upstreams:
  second: { url: ${broker.url}, username: "{tenant}", password: ${password} }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { upstream: second, users: { alice: { password: "plain:g" } } }
`,
    ).replace(`url: ${broker.url}\nadmin`, `url: ${broker.url}\n  username: "{tenant}"\n  password: ${password}\nadmin`)
  const svc = await startTestService(yaml('right'))
  cleanup.push(() => svc.close())
  assert.deepEqual((await svc.api('/api/v1/ready', { token: null })).body, {
    ready: true,
    upstream: 'reachable',
    upstreams: { second: 'reachable' },
  })
  // Both tenants log in as themselves: the same client ID, each through its own broker user.
  const a = await connectClient(svc.mqttPort, { clientId: 'dev-1', username: 'alice@acme', password: 'a' })
  const g = await connectClient(svc.mqttPort, { clientId: 'dev-1', username: 'alice@globex', password: 'g' })
  await Promise.all([a.end(), g.end()])

  // The port still accepts TCP connections; only the logins fail.
  await svc.reload(parseConfigText(yaml('wrong'), { baseDir: svc.dir }).config)
  const ready = await svc.api('/api/v1/ready', { token: null })
  assert.equal(ready.status, 503)
  assert.deepEqual(ready.body, { ready: false, upstream: 'unreachable', upstreams: { second: 'unreachable' } })
  const line = svc.logs.find((l) => l.msg === 'upstream broker not ready' && l.upstream === 'default')
  assert.match(String(line?.reason), /refused the login of tenant acme \(CONNACK return code 5\)/)

  await svc.reload(parseConfigText(yaml('right'), { baseDir: svc.dir }).config)
  assert.equal((await svc.api('/api/v1/ready', { token: null })).status, 200)
  assert.ok(svc.logs.some((l) => l.msg === 'upstream broker ready again'))
})
