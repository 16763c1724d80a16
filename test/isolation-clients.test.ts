// The isolation matrix's core with other real clients: mosquitto_pub/mosquitto_sub and paho-mqtt.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'

const run = promisify(execFile)
let broker: Mosquitto
let gw: TestGateway

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(
    yamlConfig(
      broker.url,
      `
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`,
    ),
  )
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

const CREDS = { acme: ['-u', 'alice@acme', '-P', 'a'], globex: ['-u', 'alice@globex', '-P', 'g'] }

/** mosquitto_sub for at most `seconds`, collecting `topic payload` lines. */
function sub(
  tenant: keyof typeof CREDS,
  version: string,
  seconds: number,
): { lines: Promise<string[]>; ready: Promise<void> } {
  const child = spawn('mosquitto_sub', [
    '-p',
    String(gw.port()),
    '-V',
    version,
    '-i',
    'same-id',
    ...CREDS[tenant],
    '-t',
    '#',
    '-v',
    '-W',
    String(seconds),
    '-q',
    '1',
  ])
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const lines = new Promise<string[]>((resolve) => child.on('exit', () => resolve(out.split('\n').filter(Boolean))))
  // mosquitto_sub prints nothing when subscribed; wait until the gateway counts its connection.
  const ready = (async () => {
    const deadline = Date.now() + 5000
    while (gw.connections(tenant) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 200))
  })()
  return { lines, ready }
}

for (const version of ['mqttv311', 'mqttv5']) {
  test(`mosquitto_pub/sub (${version}): same client ID and topic in two tenants, nothing crosses`, async () => {
    const a = sub('acme', version, 2)
    await a.ready
    const g = sub('globex', version, 2)
    await g.ready
    await run('mosquitto_pub', [
      '-p',
      String(gw.port()),
      '-V',
      version,
      ...CREDS.acme,
      '-t',
      'sensors/t1',
      '-m',
      'from-acme',
      '-q',
      '1',
    ])
    await run('mosquitto_pub', [
      '-p',
      String(gw.port()),
      '-V',
      version,
      ...CREDS.globex,
      '-t',
      'sensors/t1',
      '-m',
      'from-globex',
      '-q',
      '1',
    ])
    assert.deepEqual(await a.lines, ['sensors/t1 from-acme'])
    assert.deepEqual(await g.lines, ['sensors/t1 from-globex'])
  })

  test(`mosquitto_pub (${version}) with a wrong password exits with the broker-style refusal`, async () => {
    await assert.rejects(
      run('mosquitto_pub', [
        '-p',
        String(gw.port()),
        '-V',
        version,
        '-u',
        'alice@acme',
        '-P',
        'nope',
        '-t',
        't',
        '-m',
        'x',
      ]),
      (err: { stderr?: string }) => /not authori[sz]ed|bad user name or password/i.test(err.stderr ?? ''),
    )
  })
}

for (const protocol of ['4', '5']) {
  test(`paho-mqtt (MQTT ${protocol === '5' ? '5' : '3.1.1'}): two tenants with the same client ID and topics stay apart`, async () => {
    const { stdout } = await run('/usr/bin/python3', ['test/paho/isolation.py', String(gw.port()), protocol], {
      timeout: 30_000,
    })
    const received = JSON.parse(stdout) as Record<string, string[][]>
    assert.deepEqual(received.acme, [['sensors/t1', 'from-acme']])
    assert.deepEqual(received.globex, [['sensors/t1', 'from-globex']])
  })
}
