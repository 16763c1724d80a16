// SPEC §4 from the outside: every refusal path and its code, identical answers for enumeration,
// the per-IP throttle, mosquitto password files, and the upstream username template.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { rawConnect, connectPacket } from './helpers/raw.js'

let broker: Mosquitto
let gw: TestGateway
const dir = mkdtempSync(join(tmpdir(), 'mtg-auth-'))

before(async () => {
  broker = await startMosquitto()
  const passwd = join(dir, 'globex.passwd')
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', passwd, 'carol', 'carol-pw'])
  gw = await startTestGateway(`
listeners:
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
  - { name: acme-port, type: tcp, bind: "127.0.0.1:0", tenant: acme }
upstream: { url: ${broker.url} }
auth: { maxFailuresPerMinute: 1000 }   # these tests fail on purpose, many times, from one IP
tenants:
  acme:
    anonymous: true
    users: { alice: { password: "plain:a" }, "bob@example.com": { password: "plain:b" } }
  globex:
    passwordFile: ${passwd}
    users: { alice: { password: "plain:g" } }
  sleepy:
    disabled: true
    users: { alice: { password: "plain:s" } }
`)
})
after(async () => { await gw?.close(); await broker?.stop() })

const main = () => gw.port('mqtt')
const acmePort = () => gw.port('acme-port')

for (const v of [4, 5] as const) {
  const bad = v === 5 ? 0x86 : 0x04
  const denied = v === 5 ? 0x87 : 0x05
  test(`v${v}: unknown tenant, unknown user, wrong password, no tenant, no username → ${bad.toString(16)}`, async () => {
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@nope', password: 'a' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'mallory@acme', password: 'a' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@acme', password: 'wrong' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice', password: 'a' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v }), bad)
  })

  test(`v${v}: a listener bound to a tenant: plain user, user@same-tenant, conflicts refused, anonymous when allowed`, async () => {
    for (const username of ['alice', 'alice@acme']) {
      const c = await connectClient(acmePort(), { protocolVersion: v, username, password: 'a' })
      await c.end()
    }
    const e = await connectClient(acmePort(), { protocolVersion: v, username: 'bob@example.com', password: 'b' })
    await e.end()
    assert.equal(await connectRefusal(acmePort(), { protocolVersion: v, username: 'alice@globex', password: 'g' }), bad)
    const anon = await connectClient(acmePort(), { protocolVersion: v })
    await anon.end()
  })

  test(`v${v}: a disabled tenant answers ${denied.toString(16)} to correct credentials only`, async () => {
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@sleepy', password: 's' }), denied)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@sleepy', password: 'x' }), bad)
  })
}

test('a mosquitto_passwd ($7$) file authenticates its users', async () => {
  const c = await connectClient(main(), { username: 'carol@globex', password: 'carol-pw' })
  await c.end()
  assert.equal(await connectRefusal(main(), { username: 'carol@globex', password: 'nope' }), 0x04)
})

test('v5: an Authentication Method (enhanced auth) is refused with 0x8C', async () => {
  const raw = await rawConnect(main(), 5)
  raw.send(connectPacket({ protocolVersion: 5, username: 'alice@acme', password: Buffer.from('a'), properties: { authenticationMethod: 'SCRAM-SHA-1' } }))
  const p = await raw.next()
  assert.ok(p.cmd === 'connack' && p.reasonCode === 0x8c)
  raw.end()
})

test('enumeration: unknown tenant, unknown user and wrong password get byte-identical answers', async () => {
  const answers: string[] = []
  for (const [username, password] of [['alice@nope', 'a'], ['mallory@acme', 'a'], ['alice@acme', 'wrong']] as const) {
    for (const v of [4, 5] as const) {
      const raw = await rawConnect(main(), v)
      const bytes: Buffer[] = []
      raw.socket.on('data', (d: Buffer) => bytes.push(d))
      raw.send(connectPacket({ protocolVersion: v, username, password: Buffer.from(password) }))
      await raw.closed()
      answers.push(`${v}:${Buffer.concat(bytes).toString('hex')}`)
    }
  }
  assert.deepEqual(new Set(answers.filter((a) => a.startsWith('4:'))).size, 1)
  assert.deepEqual(new Set(answers.filter((a) => a.startsWith('5:'))).size, 1)
})

test('passwords never reach the logs', () => {
  const text = JSON.stringify(gw.logs)
  for (const secret of ['wrong', 'carol-pw', '"a"']) assert.ok(!text.includes(secret), `log contains ${secret}`)
})

test('per-IP throttle: after the failures, even the right password is refused until the cooldown ends', async () => {
  const t = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url} }
auth: { maxFailuresPerMinute: 3, cooldown: 1s }
tenants: { acme: { users: { alice: { password: "plain:a" } } } }
`)
  try {
    for (let i = 0; i < 3; i++) assert.equal(await connectRefusal(t.port(), { username: 'alice@acme', password: 'x' }), 0x04)
    assert.equal(await connectRefusal(t.port(), { username: 'alice@acme', password: 'a' }), 0x04)
    const deadline = Date.now() + 5000
    for (;;) {
      try {
        const c = await connectClient(t.port(), { username: 'alice@acme', password: 'a' })
        await c.end()
        break
      } catch (err) {
        if (Date.now() > deadline) throw err
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  } finally { await t.close() }
})

test('upstream username template: the broker authenticates "{tenant}.{username}" and its refusal is relayed', async () => {
  const pw = join(dir, 'broker.passwd')
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', pw, 'acme.alice', 'up-secret'])
  const strict = await startMosquitto(`password_file ${pw}\nallow_anonymous false`)
  writeFileSync(join(dir, 'noop'), '')
  const t = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${strict.url}, username: "{tenant}.{username}", password: up-secret }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`)
  try {
    const ok = await connectClient(t.port(), { username: 'alice@acme', password: 'a' })
    await ok.end()
    // globex.alice is not in the broker's password file: the broker's own refusal reaches the device.
    const code = await connectRefusal(t.port(), { username: 'alice@globex', password: 'g' })
    assert.ok(code === 0x04 || code === 0x05, `code ${code}`)
  } finally { await t.close(); await strict.stop() }
})
