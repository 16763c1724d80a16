// MQTT over WebSocket [MQTT-6]: ws and wss listeners carry the same sessions as TCP — the isolation
// matrix over WebSocket with MQTT.js and paho-mqtt, a ws client and a TCP client of one tenant talking,
// the tenant from the SNI host over wss, and what a WebSocket client gets wrong answered plainly: no
// upgrade (426), another path (404), no "mqtt" subprotocol, a text frame, a message over maxMessageSize.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import type tls from 'node:tls'
import { promisify } from 'node:util'
import mqttPacket, { type Packet } from 'mqtt-packet'
import WebSocket from 'ws'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { startHaproxy, type Haproxy } from './helpers/haproxy.js'
import { connectClient, connectRefusal, quiet } from './helpers/clients.js'
import { connectPacket } from './helpers/raw.js'
import { SERVER_TLS_YAML, TEST_CA } from './helpers/tls-fixtures.js'

const run = promisify(execFile)

let broker: Mosquitto
let gw: TestGateway
let lb: Haproxy

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(`listeners:
  - { name: ws, type: ws, bind: "127.0.0.1:0" }
  - { name: mqtt, type: tcp, bind: "127.0.0.1:0" }
  - { name: wss, type: wss, bind: "127.0.0.1:0", path: /mqtt, tls: { ${SERVER_TLS_YAML} } }
  - { name: ws-small, type: ws, bind: "127.0.0.1:0", path: /small, maxMessageSize: 1KiB }
  - { name: ws-lb, type: ws, bind: "127.0.0.1:0", proxyProtocol: true }
  - { name: ws-fwd, type: ws, bind: "127.0.0.1:0", trustedProxies: ["127.0.0.1"] }
  - { name: wss-lb, type: wss, bind: "127.0.0.1:0", proxyProtocol: true, tls: { ${SERVER_TLS_YAML} } }
upstream: { url: ${broker.url} }
tenancy: { resolve: [sni, username], sni: "{tenant}.mqtt.test" }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`)
  lb = await startHaproxy([
    { name: 'ws', to: gw.port('ws-lb'), send: 'send-proxy-v2' },
    { name: 'wss', to: gw.port('wss-lb'), send: 'send-proxy' },
    { name: 'http', to: gw.port('ws-fwd'), forwardFor: true },
  ])
})
after(async () => {
  await lb?.stop()
  await gw?.close()
  await broker?.stop()
})

const wsUrl = (name = 'ws', path = '/mqtt'): string => `ws://127.0.0.1:${gw.port(name)}${path}`

for (const v of [4, 5] as const) {
  test(`v${v} over WebSocket (MQTT.js): two tenants with the same user, client ID and topics stay apart — wildcards, retained, wills`, async () => {
    const over = { protocol: 'ws', path: '/mqtt', protocolVersion: v } as const
    const a = await connectClient(gw.port('ws'), { ...over, clientId: 'dev-1', username: 'alice@acme', password: 'a' })
    const g = await connectClient(gw.port('ws'), {
      ...over,
      clientId: 'dev-1',
      username: 'alice@globex',
      password: 'g',
    })
    try {
      for (const c of [a, g]) await c.client.subscribeAsync(['#', 'sensors/+'], { qos: 1 })
      await a.client.publishAsync('sensors/t1', 'A', { qos: 1, retain: true })
      await g.client.publishAsync('sensors/t1', 'G', { qos: 1, retain: true })
      assert.equal((await a.next()).payload, 'A')
      assert.equal((await g.next()).payload, 'G')
      const doomed = await connectClient(gw.port('ws'), {
        ...over,
        clientId: `doomed-${v}`,
        username: 'alice@acme',
        password: 'a',
        will: { topic: 'status/doomed', payload: Buffer.from('gone'), qos: 1, retain: false },
      })
      doomed.client.stream.destroy()
      assert.equal((await a.next((m) => m.topic === 'status/doomed')).payload, 'gone')
      const lateG = await connectClient(gw.port('ws'), {
        ...over,
        clientId: `late-${v}`,
        username: 'alice@globex',
        password: 'g',
      })
      await lateG.client.subscribeAsync('sensors/#', { qos: 1 })
      assert.equal((await lateG.next()).payload, 'G')
      await quiet(g, 200)
      for (const m of a.received) assert.ok(['A', 'gone'].includes(m.payload), `acme got ${m.payload}`)
      for (const m of [...g.received, ...lateG.received]) assert.equal(m.payload, 'G')
      await lateG.end()
    } finally {
      // The retained messages go, so the other tests' "#" subscribers start clean.
      for (const c of [a, g]) await c.client.publishAsync('sensors/t1', '', { qos: 1, retain: true })
      await Promise.all([a.end(), g.end()])
    }
  })
}

test('a WebSocket client and a TCP client of one tenant talk; the other tenant, on TCP, hears nothing', async () => {
  const overWs = await connectClient(gw.port('ws'), {
    protocol: 'ws',
    path: '/mqtt',
    clientId: 'browser',
    username: 'alice@acme',
    password: 'a',
  })
  const overTcp = await connectClient(gw.port('mqtt'), { clientId: 'device', username: 'alice@acme', password: 'a' })
  const other = await connectClient(gw.port('mqtt'), { clientId: 'device', username: 'alice@globex', password: 'g' })
  await overWs.client.subscribeAsync('cmd/#', { qos: 1 })
  await other.client.subscribeAsync('#', { qos: 1 })
  await overTcp.client.subscribeAsync('telemetry', { qos: 1 })
  await overTcp.client.publishAsync('cmd/light', 'on', { qos: 1 })
  // larger than a TCP segment, one WebSocket message
  await overWs.client.publishAsync('telemetry', Buffer.alloc(100_000, 7), { qos: 1 })
  assert.deepEqual([(await overWs.next()).payload], ['on'])
  assert.equal((await overTcp.next()).packet.payload.length, 100_000)
  await quiet(other, 200)
  assert.equal(other.received.length, 0)
  await Promise.all([overWs.end(), overTcp.end(), other.end()])
})

for (const protocol of ['4', '5']) {
  test(`paho-mqtt over WebSocket (MQTT ${protocol === '5' ? '5' : '3.1.1'}): two tenants with the same client ID and topics stay apart`, async () => {
    const { stdout } = await run(
      '/usr/bin/python3',
      ['test/paho/isolation.py', String(gw.port('ws')), protocol, 'websockets'],
      { timeout: 30_000 },
    )
    const received = JSON.parse(stdout) as Record<string, string[][]>
    assert.deepEqual(received.acme, [['sensors/t1', 'from-acme']])
    assert.deepEqual(received.globex, [['sensors/t1', 'from-globex']])
  })
}

test('wss: the SNI host names the tenant; a wrong password is refused with 0x86', async () => {
  // MQTT.js hands wsOptions to the WebSocket (and on to TLS): the SNI host goes there.
  const over = (tenant: string): object => ({
    protocol: 'wss',
    path: '/mqtt',
    protocolVersion: 5,
    wsOptions: { ca: TEST_CA, servername: `${tenant}.mqtt.test` },
  })
  const a = await connectClient(gw.port('wss'), { ...over('acme'), clientId: 'same', username: 'alice', password: 'a' })
  const g = await connectClient(gw.port('wss'), {
    ...over('globex'),
    clientId: 'same',
    username: 'alice',
    password: 'g',
  })
  await g.client.subscribeAsync('#', { qos: 1 })
  await a.client.subscribeAsync('#', { qos: 1 })
  await a.client.publishAsync('x', 'from-acme', { qos: 1 })
  assert.equal((await a.next()).payload, 'from-acme')
  await quiet(g, 200)
  assert.equal(g.received.length, 0)
  assert.equal(gw.clients('acme').find((c) => c.clientId === 'same')?.listener, 'wss')
  assert.equal(await connectRefusal(gw.port('wss'), { ...over('acme'), username: 'alice', password: 'g' }), 0x86)
  await Promise.all([a.end(), g.end()])
})

/** Opens a raw WebSocket (ws) to the gateway; resolves once open, rejects with the handshake's error. */
function openWs(url: string, protocols: string[] = ['mqtt']): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode ?? 0}`)))
  })
}

/** The close code of `ws` once the gateway closes it; rejects if it is still open after `ms`. */
const closed = (ws: WebSocket, ms = 3000): Promise<number> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error('still open'))
    }, ms)
    ws.once('close', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })

test('the WebSocket handshake gone wrong: plain HTTP gets 426, another path 404, a client without the "mqtt" subprotocol is not taken', async () => {
  const res = await fetch(`http://127.0.0.1:${gw.port('ws')}/mqtt`)
  assert.deepEqual([res.status, res.headers.get('upgrade')], [426, 'websocket'])
  assert.equal((await fetch(`http://127.0.0.1:${gw.port('ws')}/`)).status, 404)
  await assert.rejects(openWs(wsUrl('ws', '/elsewhere')), /404/)
  await assert.rejects(openWs(wsUrl(), ['chat']), /no subprotocol/i)
  const ws = await openWs(wsUrl(), ['mqttv3.1', 'mqtt'])
  assert.equal(ws.protocol, 'mqtt')
  ws.close()
})

test('a text frame closes the connection before its bytes reach the broker [MQTT-6.0.0-1]; binary frames are served', async () => {
  // Without credentials every byte of this CONNECT is ASCII, so it is valid UTF-8 text too: served as
  // MQTT it would get a CONNACK (a refusal); as a text frame it gets no answer at all.
  const asText = mqttPacket.generate(connectPacket({ clientId: 'texter' })).toString('latin1')
  const texter = await openWs(wsUrl())
  let answers = 0
  texter.on('message', () => answers++)
  const gone = closed(texter)
  texter.send(asText)
  await gone
  assert.equal(answers, 0)

  const connect = mqttPacket.generate(
    connectPacket({ clientId: 'texter', username: 'alice@acme', password: Buffer.from('a') }),
  )

  const binary = await openWs(wsUrl())
  const parser = mqttPacket.parser()
  const connack = new Promise<Packet & { returnCode?: number }>((resolve) => parser.once('packet', resolve))
  binary.on('message', (d: Buffer) => parser.parse(d))
  // A CONNECT split over two WebSocket messages is one packet to the gateway.
  binary.send(connect.subarray(0, 5))
  binary.send(connect.subarray(5))
  assert.deepEqual([(await connack).cmd, (await connack).returnCode], ['connack', 0])
  binary.close()
})

test("a WebSocket message over the listener's maxMessageSize closes the connection with 1009", async () => {
  const ws = await openWs(wsUrl('ws-small', '/small'))
  const code = closed(ws)
  ws.send(Buffer.alloc(2048))
  assert.equal(await code, 1009)
})

for (const scheme of ['ws', 'wss'] as const) {
  test(`${scheme} behind haproxy with a PROXY header: the client is listed under its own address${scheme === 'wss' ? ', its tenant from SNI' : ''}`, async () => {
    const from = scheme === 'ws' ? '127.0.0.11' : '127.0.0.12'
    // ws passes TLS options through to node:tls, the SNI host name included.
    const options: WebSocket.ClientOptions & Pick<tls.ConnectionOptions, 'servername'> = {
      localAddress: from,
      ca: TEST_CA,
      servername: 'acme.mqtt.test',
    }
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const s = new WebSocket(`${scheme}://127.0.0.1:${lb.ports[scheme] ?? 0}/mqtt`, ['mqtt'], options)
      s.once('open', () => resolve(s))
      s.once('error', reject)
    })
    const parser = mqttPacket.parser()
    const connack = new Promise<Packet & { returnCode?: number }>((resolve) => parser.once('packet', resolve))
    ws.on('message', (d: Buffer) => parser.parse(d))
    const username = scheme === 'ws' ? 'alice@acme' : 'alice'
    ws.send(
      mqttPacket.generate(connectPacket({ clientId: `behind-lb-${scheme}`, username, password: Buffer.from('a') })),
    )
    assert.equal((await connack).returnCode, 0)
    const listed = gw.clients('acme').find((c) => c.clientId === `behind-lb-${scheme}`)
    assert.deepEqual([listed?.remoteAddress, listed?.listener], [from, `${scheme}-lb`])
    ws.close()
  })
}

/** The address the gateway lists for a WebSocket client connecting to `port` from `from`, sending `headers`. */
async function listedAddress(
  port: number,
  from: string,
  clientId: string,
  headers: Record<string, string> = {},
): Promise<[string | undefined, number | undefined]> {
  const ws = await new Promise<WebSocket>((resolve, reject) => {
    const s = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'], { localAddress: from, headers })
    s.once('open', () => resolve(s))
    s.once('error', reject)
  })
  const parser = mqttPacket.parser()
  const connack = new Promise<Packet>((resolve) => parser.once('packet', resolve))
  ws.on('message', (d: Buffer) => parser.parse(d))
  ws.send(mqttPacket.generate(connectPacket({ clientId, username: 'alice@acme', password: Buffer.from('a') })))
  assert.equal((await connack).cmd, 'connack')
  const listed = gw.clients('acme').find((c) => c.clientId === clientId)
  ws.close()
  return [listed?.remoteAddress, listed?.remotePort]
}

test('behind an HTTP reverse proxy (haproxy mode http, X-Forwarded-For): the client is the nearest untrusted address; forged headers are not believed', async () => {
  // Through the trusted proxy: the address haproxy saw (the port is not known behind HTTP proxies).
  assert.deepEqual(await listedAddress(lb.ports.http ?? 0, '127.0.0.13', 'fwd-1'), ['127.0.0.13', 0])
  // A client's own X-Forwarded-For, through the proxy, lies beyond the hop the proxy appended.
  assert.deepEqual(
    await listedAddress(lb.ports.http ?? 0, '127.0.0.14', 'fwd-2', { 'x-forwarded-for': '203.0.113.9' }),
    ['127.0.0.14', 0],
  )
  // Straight to the listener from an address that is no trusted proxy: its header is ignored.
  const [address] = await listedAddress(gw.port('ws-fwd'), '127.0.0.15', 'fwd-3', { 'x-forwarded-for': '203.0.113.9' })
  assert.equal(address, '127.0.0.15')
  assert.equal(gw.logs.find((l) => l.msg === 'connected' && l.clientId === 'fwd-1')?.via, '127.0.0.1')
})
