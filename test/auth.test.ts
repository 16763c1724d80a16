// SPEC §4 from the outside: every refusal path and its code, identical answers for enumeration,
// the per-IP throttle, mosquitto password files, and the upstream username template.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { rawConnect, connectPacket } from './helpers/raw.js'
import { hashPassword } from '../src/tenancy/passwords.js'
import { Authenticator } from '../src/tenancy/auth.js'
import { parseConfigText } from '../src/config/load.js'

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
  - { name: globex-port, type: tcp, bind: "127.0.0.1:0", tenant: globex }
upstream: { url: ${broker.url} }
auth: { maxFailuresPerMinute: 100000 }   # these tests fail on purpose, many times, from one IP
tenants:
  acme:
    anonymous: true
    users: { alice: { password: "plain:a" }, "bob@example.com": { password: "plain:b" } }
  globex:
    passwordFile: ${passwd}
    users: { alice: { password: "plain:g" }, dave: { password: "${await hashPassword('dave-pw')}" } }
  sleepy:
    disabled: true
    anonymous: true
    users: { alice: { password: "plain:s" } }
`)
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

const main = (): number => gw.port('mqtt')
const acmePort = (): number => gw.port('acme-port')
const globexPort = (): number => gw.port('globex-port')

/**
 * Everything the gateway writes back to a CONNECT, up to its close: the exact bytes on the wire. An
 * accepted connection is not closed by the gateway: its CONNACK (code 0) is returned and the socket ended.
 */
async function answerBytes(
  port: number,
  v: 4 | 5,
  username?: string,
  password?: string,
  localAddress = '127.0.0.1',
): Promise<Buffer> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress })
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.write(
    mqttPacket.generate(
      connectPacket({
        protocolVersion: v,
        clientId: 'probe',
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password: Buffer.from(password) } : {}),
      }),
      { protocolVersion: v },
    ),
  )
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      socket.destroy()
      reject(new Error('the gateway did not close the connection'))
    }, 3000)
    socket.once('close', () => {
      clearTimeout(t)
      resolve()
    })
    socket.on('data', () => {
      const got = Buffer.concat(chunks)
      if (got.length >= 4 && got[0] === 0x20 && got[3] === 0) socket.destroy()
    })
  })
  return Buffer.concat(chunks)
}

for (const v of [4, 5] as const) {
  const bad = v === 5 ? 0x86 : 0x04
  const denied = v === 5 ? 0x87 : 0x05
  const hex = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`

  test(`v${v}: unknown tenant, unknown user, wrong password, no tenant, no username → ${hex(bad)}`, async () => {
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@nope', password: 'a' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'mallory@acme', password: 'a' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@acme', password: 'wrong' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@acme' }), bad) // no password
    // no tenant
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice', password: 'a' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v }), bad) // no username, no tenant
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@globex', password: 'a' }), bad) // acme's password, globex's user
  })

  test(`v${v}: no username on a listener bound to a tenant without anonymous → ${hex(bad)}`, async () => {
    assert.equal(await connectRefusal(globexPort(), { protocolVersion: v }), bad)
    const c = await connectClient(globexPort(), { protocolVersion: v, username: 'alice', password: 'g' })
    await c.end()
  })

  test(`v${v}: a listener bound to acme: plain user, alice@acme, anonymous accepted; alice@globex is a conflict`, async () => {
    for (const username of ['alice', 'alice@acme']) {
      const c = await connectClient(acmePort(), { protocolVersion: v, username, password: 'a' })
      await c.end()
    }
    // names no tenant
    const e = await connectClient(acmePort(), { protocolVersion: v, username: 'bob@example.com', password: 'b' })
    await e.end()
    const anon = await connectClient(acmePort(), { protocolVersion: v })
    await anon.end()
    // Refused whichever tenant's password comes with it: two sources naming two tenants, never guessed.
    assert.equal(await connectRefusal(acmePort(), { protocolVersion: v, username: 'alice@globex', password: 'g' }), bad)
    assert.equal(await connectRefusal(acmePort(), { protocolVersion: v, username: 'alice@globex', password: 'a' }), bad)
    assert.equal(await connectRefusal(acmePort(), { protocolVersion: v, username: 'mallory', password: 'a' }), bad)
    assert.equal(await connectRefusal(acmePort(), { protocolVersion: v, username: 'alice', password: 'wrong' }), bad)
  })

  test(`v${v}: a disabled tenant answers ${hex(denied)} to correct credentials only`, async () => {
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@sleepy', password: 's' }), denied)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'alice@sleepy', password: 'x' }), bad)
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'mallory@sleepy', password: 's' }), bad)
  })

  test(`v${v}: a mosquitto_passwd ($7$) file authenticates its users, next to the config's users`, async () => {
    const c = await connectClient(main(), { protocolVersion: v, username: 'carol@globex', password: 'carol-pw' })
    await c.end()
    const g = await connectClient(main(), { protocolVersion: v, username: 'alice@globex', password: 'g' })
    await g.end()
    assert.equal(await connectRefusal(main(), { protocolVersion: v, username: 'carol@globex', password: 'nope' }), bad)
    assert.equal(
      await connectRefusal(main(), { protocolVersion: v, username: 'carol@acme', password: 'carol-pw' }),
      bad,
    )
  })
}

test('v5: an Authentication Method (enhanced auth) is refused with 0x8C, whatever the credentials', async () => {
  for (const password of ['a', 'wrong']) {
    const raw = await rawConnect(main(), 5)
    raw.send(
      connectPacket({
        protocolVersion: 5,
        username: 'alice@acme',
        password: Buffer.from(password),
        properties: { authenticationMethod: 'SCRAM-SHA-1' },
      }),
    )
    const p = await raw.next()
    assert.ok(p.cmd === 'connack' && p.reasonCode === 0x8c, JSON.stringify(p))
    await raw.closed()
  }
})

test('enumeration: every bad-credentials answer is byte-identical on the wire, per protocol version', async () => {
  const cases: Array<[number, string | undefined, string | undefined]> = [
    [main(), 'alice@nope', 'a'], // unknown tenant
    [main(), 'mallory@acme', 'a'], // unknown user
    [main(), 'alice@acme', 'wrong'], // wrong password
    [main(), 'carol@globex', 'wrong'], // wrong password, $7$ file
    [main(), 'dave@globex', 'wrong'], // wrong password, scrypt
    [main(), 'alice', 'a'], // no tenant
    [main(), undefined, undefined], // no username
    [globexPort(), undefined, undefined], // anonymous not allowed
    [acmePort(), 'alice@globex', 'a'], // conflicting sources
  ]
  for (const v of [4, 5] as const) {
    const answers = new Set<string>()
    for (const [port, username, password] of cases)
      answers.add((await answerBytes(port, v, username, password)).toString('hex'))
    assert.equal(answers.size, 1, `v${v}: ${[...answers].join(' | ')}`)
    // …and that one answer is a CONNACK with bad username or password, then the close.
    const only = Buffer.from([...answers][0] as string, 'hex')
    assert.equal(only[0], 0x20)
    assert.equal(only[3], v === 5 ? 0x86 : 0x04)
  }
})

/** Median time of `n` refused connects (ms). */
async function medianRefusal(username: string, password: string, n = 7): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await answerBytes(main(), 4, username, password)
    times.push(performance.now() - t0)
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)] as number
}

test('enumeration by timing: a known scrypt user with a wrong password costs about what an unknown user costs', async () => {
  await medianRefusal('nobody@acme', 'x', 1) // warm-up: the dummy hash is made on first use
  const unknown = await medianRefusal('nobody@globex', 'wrong')
  const known = await medianRefusal('dave@globex', 'wrong')
  assert.ok(
    known / unknown > 0.33 && known / unknown < 3,
    `unknown user ${unknown.toFixed(1)} ms, known user ${known.toFixed(1)} ms`,
  )
})

test('enumeration by timing: a user from a mosquitto $7$ file with a wrong password costs about what an unknown user costs', async () => {
  // $7$ is one PBKDF2 of 101 rounds: the gateway pads it with the scrypt dummy
  await medianRefusal('nobody@acme', 'x', 1)
  const unknown = await medianRefusal('nobody@globex', 'wrong')
  const known = await medianRefusal('carol@globex', 'wrong')
  assert.ok(
    known / unknown > 0.33 && known / unknown < 3,
    `unknown user ${unknown.toFixed(1)} ms, known $7$ user ${known.toFixed(1)} ms`,
  )
})

test("enumeration by TLS SNI timing: a known tenant's host name without a username is refused in the time an unknown one is", async () => {
  // The Authenticator the TLS listener calls, with the SNI host the handshake gave: 200 tries, a known
  // and an unknown tenant at once in each pair, so both meet the same load. Each costs a scrypt hash, so
  // MTG_TIMING_PAIRS (default 100) can shorten it while developing.
  const { config } = parseConfigText(
    `
listeners: [{ name: m, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: embedded }
tenancy: { sni: "{tenant}.mqtt.example.com" }
auth: { maxFailuresPerMinute: 100000 }
tenants: { acme: { users: { alice: { password: "plain:a" } } } }
`,
    { baseDir: dir },
  )
  const auth = new Authenticator(config)
  const timed = async (sniHost: string): Promise<number> => {
    const t0 = performance.now()
    const result = await auth.authenticate({ remoteAddress: '10.9.9.9', sniHost })
    assert.equal(result.ok, false)
    return performance.now() - t0
  }
  await timed('nope.mqtt.example.com') // warm-up: the dummy hash is made on first use
  const known: number[] = []
  const unknown: number[] = []
  const pairs = Number(process.env.MTG_TIMING_PAIRS ?? 100)
  for (let i = 0; i < pairs; i++) {
    const [k, u] = await Promise.all([timed('acme.mqtt.example.com'), timed(`t${i}.mqtt.example.com`)])
    known.push(k)
    unknown.push(u)
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1] as number
  const [k, u] = [median(known), median(unknown)]
  console.log(`# median refusal: known tenant ${k.toFixed(1)} ms, unknown tenant ${u.toFixed(1)} ms`)
  // a few ms, or a tenth on a machine so loaded that one hash takes hundreds
  assert.ok(Math.abs(k - u) < Math.max(5, u / 10), `known tenant ${k.toFixed(1)} ms, unknown tenant ${u.toFixed(1)} ms`)
})

test('passwords never reach the logs', () => {
  const text = JSON.stringify(gw.logs)
  for (const secret of ['wrong', 'carol-pw', 'dave-pw', '"a"', '"g"'])
    assert.ok(!text.includes(secret), `log contains ${secret}`)
})

test('per-IP throttle: after the failures even the right password gets the same refusal, until the cooldown ends', async () => {
  const t = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url} }
auth: { maxFailuresPerMinute: 3, cooldown: 2s }
tenants: { acme: { users: { alice: { password: "plain:a" } } } }
`)
  try {
    const ok = await connectClient(t.port(), { username: 'alice@acme', password: 'a' })
    await ok.end()
    const normal4 = await answerBytes(t.port(), 4, 'alice@acme', 'x')
    const normal5 = await answerBytes(t.port(), 5, 'alice@acme', 'x')
    await answerBytes(t.port(), 4, 'mallory@acme', 'x') // the third failure starts the cooldown
    const blockedAt = Date.now()
    // During the cooldown: the right password, in both versions, gets exactly the bad-credentials answer.
    const t0 = performance.now()
    assert.deepEqual(await answerBytes(t.port(), 4, 'alice@acme', 'a'), normal4)
    assert.ok(performance.now() - t0 < 500, 'a throttled refusal is quick')
    assert.deepEqual(await answerBytes(t.port(), 5, 'alice@acme', 'a'), normal5)
    // Another source address is not throttled (127.0.0.2 is loopback too on Linux).
    const other = await answerBytes(t.port(), 4, 'alice@acme', 'a', '127.0.0.2')
    assert.equal(other.subarray(0, 4).toString('hex'), '20020000')
    // Still refused half-way through the cooldown; accepted once it is over (bounded wait, no polling).
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, blockedAt + 1000 - Date.now())))
    assert.equal(await connectRefusal(t.port(), { username: 'alice@acme', password: 'a' }), 0x04)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, blockedAt + 2300 - Date.now())))
    const back = await connectClient(t.port(), { username: 'alice@acme', password: 'a', protocolVersion: 5 })
    await back.end()
  } finally {
    await t.close()
  }
})

test('upstream username template: the broker authenticates "{tenant}.{username}", its refusal is relayed', async () => {
  // The brief's "{tenant}:{username}" cannot work with mosquitto: its password file is `user:hash` and
  // mosquitto_passwd refuses ':' in user names. A '.' separator is what the README recommends.
  assert.throws(() =>
    execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', join(dir, 'colon.passwd'), 'acme:alice', 'x'], {
      stdio: 'pipe',
    }),
  )
  const pw = join(dir, 'broker.passwd')
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', pw, 'acme.alice', 'up-secret'])
  const strict = await startMosquitto(`password_file ${pw}\nallow_anonymous false`)
  const t = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${strict.url}, username: "{tenant}.{username}", password: up-secret }
tenants:
  acme: { users: { alice: { password: "plain:a" }, bob: { password: "plain:b" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`)
  try {
    for (const v of [4, 5] as const) {
      const ok = await connectClient(t.port(), { protocolVersion: v, username: 'alice@acme', password: 'a' })
      await ok.end()
      // What mosquitto itself answers to a user missing from its password file:
      const direct = await connectRefusal(strict.port, {
        protocolVersion: v,
        username: 'globex.alice',
        password: 'up-secret',
      })
      // globex.alice and acme.bob are not in the broker's file: the broker's own refusal reaches the device.
      assert.equal(
        await connectRefusal(t.port(), { protocolVersion: v, username: 'alice@globex', password: 'g' }),
        direct,
      )
      assert.equal(await connectRefusal(t.port(), { protocolVersion: v, username: 'bob@acme', password: 'b' }), direct)
    }
  } finally {
    await t.close()
    await strict.stop()
  }
})

test('upstream username "{tenant}" with a mosquitto ACL "pattern readwrite %u/#": the broker holds the second wall', async () => {
  const pw = join(dir, 'tenants.passwd')
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', pw, 'acme', 'up-secret'])
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', pw, 'globex', 'up-secret'])
  const acl = join(dir, 'acl')
  execFileSync('/bin/sh', ['-c', `printf 'pattern readwrite %%u/#\\n' > ${acl}`])
  const strict = await startMosquitto(`password_file ${pw}\nacl_file ${acl}\nallow_anonymous false`)
  const t = await startTestGateway(`
listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${strict.url}, username: "{tenant}", password: up-secret }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`)
  try {
    const a = await connectClient(t.port(), { protocolVersion: 5, username: 'alice@acme', password: 'a' })
    const g = await connectClient(t.port(), { protocolVersion: 5, username: 'alice@globex', password: 'g' })
    const granted = await a.client.subscribeAsync('#', { qos: 1 })
    assert.equal(granted[0]?.qos, 1) // acme/# is inside acme's wall
    await g.client.subscribeAsync('#', { qos: 1 })
    await a.client.publishAsync('sensors/t1', 'A', { qos: 1 })
    assert.equal((await a.next()).topic, 'sensors/t1')
    await g.client.publishAsync('sensors/t1', 'G', { qos: 1 })
    assert.equal((await g.next()).payload, 'G')
    assert.deepEqual(
      a.received.map((m) => m.payload),
      ['A'],
    )
    await Promise.all([a.end(), g.end()])
  } finally {
    await t.close()
    await strict.stop()
  }
})
