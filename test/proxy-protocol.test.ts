// Behind a load balancer: a real haproxy in front of the gateway writes PROXY protocol headers (v1, v2,
// and v2 ahead of a TLS handshake it passes through), and the gateway takes the client's own address
// from them — for the admin API's client list, the logs and the per-IP login throttle — while tenants
// stay as isolated as without a balancer. A connection without a valid header is closed unanswered.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { Command, IPv4Address, IPv4ProxyAddress, TransportProtocol, V2ProxyProtocol } from 'proxy-protocol-js'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, type TestGateway } from './helpers/gateway.js'
import { startHaproxy, type Haproxy } from './helpers/haproxy.js'
import { connectClient, quiet } from './helpers/clients.js'
import { connectPacket, rawConnect } from './helpers/raw.js'
import { SERVER_TLS_YAML, TEST_CA } from './helpers/tls-fixtures.js'

let broker: Mosquitto
let gw: TestGateway
let lb: Haproxy

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(`listeners:
  - { name: lb, type: tcp, bind: "127.0.0.1:0", proxyProtocol: true, connectTimeout: 1s }
  - { name: lb-rate, type: tcp, bind: "127.0.0.1:0", proxyProtocol: true, ipConnectRate: 2 }
  - { name: lb-tls, type: tls, bind: "127.0.0.1:0", proxyProtocol: true, tls: { ${SERVER_TLS_YAML} } }
upstream: { url: ${broker.url} }
tenancy: { resolve: [sni, username], sni: "{tenant}.mqtt.test" }
auth: { maxFailuresPerMinute: 2, cooldown: 60s }
tenants:
  acme: { users: { alice: { password: "plain:a" } } }
  globex: { users: { alice: { password: "plain:g" } } }
`)
  lb = await startHaproxy([
    { name: 'v1', to: gw.port('lb'), send: 'send-proxy' },
    { name: 'v2', to: gw.port('lb'), send: 'send-proxy-v2' },
    { name: 'rate', to: gw.port('lb-rate'), send: 'send-proxy-v2' },
    { name: 'tls', to: gw.port('lb-tls'), send: 'send-proxy-v2' },
  ])
})
after(async () => {
  await lb?.stop()
  await gw?.close()
  await broker?.stop()
})

const port = (route: string): number => lb.ports[route] as number

/** The CONNACK's code for a raw CONNECT through haproxy's `route`, sent from `from`; the client, still open. */
async function connectFrom(
  route: string,
  from: string,
  username: string,
  password: string,
  clientId = 'dev-1',
): Promise<{ code: number; localPort: number; end: () => void }> {
  const c = await rawConnect(port(route), 4, from)
  c.send(connectPacket({ clientId, username, password: Buffer.from(password) }))
  const connack = (await c.next()) as Packet & { returnCode: number }
  assert.equal(connack.cmd, 'connack')
  return { code: connack.returnCode, localPort: c.socket.localPort ?? 0, end: () => c.end() }
}

for (const route of ['v1', 'v2']) {
  test(`PROXY ${route} through haproxy: the admin API and the log show the client's own address and port`, async () => {
    const from = route === 'v1' ? '127.0.0.2' : '127.0.0.3'
    const c = await connectFrom(route, from, 'alice@acme', 'a', `where-${route}`)
    assert.equal(c.code, 0)
    const listed = gw.clients('acme').find((x) => x.clientId === `where-${route}`)
    assert.deepEqual([listed?.remoteAddress, listed?.remotePort, listed?.listener], [from, c.localPort, 'lb'])
    const line = gw.logs.find((l) => l.msg === 'connected' && l.clientId === `where-${route}`)
    assert.deepEqual([line?.remote, line?.via], [`${from}:${c.localPort}`, '127.0.0.1'])
    c.end()
  })
}

test('the login throttle counts the client behind the balancer, not the balancer: one guesser is locked out, its neighbours are not', async () => {
  for (const guess of ['x', 'y']) assert.equal((await connectFrom('v2', '127.0.0.4', 'alice@acme', guess)).code, 4)
  // The guesser's right password is refused for the cooldown…
  assert.equal((await connectFrom('v1', '127.0.0.4', 'alice@acme', 'a')).code, 4)
  // …while other clients behind the same haproxy log in.
  const neighbour = await connectFrom('v2', '127.0.0.5', 'alice@acme', 'a', 'neighbour')
  assert.equal(neighbour.code, 0)
  neighbour.end()
})

test('ipConnectRate counts each client behind the balancer: the third connection in a second from one client is closed, another client still gets in', async () => {
  const answered = async (from: string): Promise<boolean> => {
    const c = await rawConnect(port('rate'), 4, from)
    c.send(connectPacket({ clientId: `rate-${from}`, username: 'alice@acme', password: Buffer.from('a') }))
    const ok = await c.next().then(
      (p) => p.cmd === 'connack',
      () => false,
    )
    c.end()
    return ok
  }
  assert.deepEqual(
    [await answered('127.0.0.9'), await answered('127.0.0.9'), await answered('127.0.0.9')],
    [true, true, false],
  )
  assert.equal(await answered('127.0.0.10'), true)
})

test('through the balancer two tenants with the same user, client ID and topics stay apart: wildcards, retained, wills', async () => {
  const a = await connectClient(port('v2'), { clientId: 'dev-1', username: 'alice@acme', password: 'a' })
  const g = await connectClient(port('v1'), { clientId: 'dev-1', username: 'alice@globex', password: 'g' })
  for (const c of [a, g]) await c.client.subscribeAsync(['#', 'sensors/+'], { qos: 1 })
  await a.client.publishAsync('sensors/t1', 'A', { qos: 1, retain: true })
  await g.client.publishAsync('sensors/t1', 'G', { qos: 1, retain: true })
  assert.equal((await a.next()).payload, 'A')
  assert.equal((await g.next()).payload, 'G')
  // A device of acme dies with a will; only acme hears it.
  const doomed = await connectClient(port('v2'), {
    clientId: 'doomed',
    username: 'alice@acme',
    password: 'a',
    will: { topic: 'status/doomed', payload: Buffer.from('gone'), qos: 1, retain: false },
  })
  doomed.client.stream.destroy()
  assert.equal((await a.next()).topic, 'status/doomed')
  // Late subscribers get their own tenant's retained message only.
  const lateG = await connectClient(port('v2'), { clientId: 'late', username: 'alice@globex', password: 'g' })
  await lateG.client.subscribeAsync('sensors/#', { qos: 1 })
  assert.equal((await lateG.next()).payload, 'G')
  await quiet(g, 200)
  for (const m of a.received) assert.ok(['A', 'gone'].includes(m.payload), `acme got ${m.payload}`)
  for (const m of [...g.received, ...lateG.received]) assert.equal(m.payload, 'G')
  await Promise.all([a.end(), g.end(), lateG.end()])
})

test("TLS passed through haproxy with a v2 header: the SNI host still names the tenant, and the address is the client's", async () => {
  const clientIds: string[] = []
  for (const [tenant, password, from] of [
    ['acme', 'a', '127.0.0.6'],
    ['globex', 'g', '127.0.0.7'],
  ] as const) {
    const tcp = net.connect({ port: port('tls'), host: '127.0.0.1', localAddress: from })
    const socket = tls.connect({ socket: tcp, servername: `${tenant}.mqtt.test`, ca: TEST_CA })
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve)
      socket.once('error', reject)
    })
    const parser = mqttPacket.parser()
    const connack = new Promise<Packet & { returnCode?: number }>((resolve) => parser.once('packet', resolve))
    socket.on('data', (d: Buffer) => parser.parse(d))
    socket.write(
      mqttPacket.generate(connectPacket({ clientId: 'tls-dev', username: 'alice', password: Buffer.from(password) })),
    )
    const answer = await connack
    assert.deepEqual([answer.cmd, answer.returnCode], ['connack', 0])
    const listed = gw.clients(tenant).find((x) => x.clientId === 'tls-dev')
    assert.deepEqual([listed?.remoteAddress, listed?.remotePort, listed?.listener], [from, tcp.localPort, 'lb-tls'])
    clientIds.push(`${tenant}:${listed?.clientId ?? ''}`)
    socket.destroy()
  }
  assert.deepEqual(clientIds, ['acme:tls-dev', 'globex:tls-dev'])
})

test('a connection that skips the balancer (no PROXY header) is closed unanswered, and logged', async () => {
  const c = await rawConnect(gw.port('lb'))
  c.send(connectPacket({ clientId: 'sneaky', username: 'alice@acme', password: Buffer.from('a') }))
  await c.closed()
  await assert.rejects(c.next(100), /connection closed/) // not a single byte came back
  assert.ok(
    gw.logs.some(
      (l) => l.msg === 'connection without a valid PROXY header closed' && l.reason === 'no PROXY protocol header',
    ),
  )
  assert.equal(
    gw.clients('acme').some((x) => x.clientId === 'sneaky'),
    false,
  )
})

test("a PROXY header that never completes is cut after the listener's connectTimeout", async () => {
  const c = await rawConnect(gw.port('lb'))
  c.write(Buffer.from('PROXY TCP4 192.0.2.1 '))
  await c.closed(4000)
  assert.ok(
    gw.logs.some(
      (l) =>
        l.msg === 'connection without a valid PROXY header closed' &&
        l.reason === 'no PROXY header within connectTimeout',
    ),
  )
})

test('the PROXY header deadline runs from accept: a header dribbled a byte at a time is cut all the same', async () => {
  const c = await rawConnect(gw.port('lb'))
  const header = Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 40000 1883\r\n')
  let sent = 0
  // every 300 ms, well inside the 1 s connectTimeout: an idle timeout would never fire
  const dribble = setInterval(() => {
    if (sent < header.length) c.write(header.subarray(sent, ++sent))
  }, 300)
  try {
    await c.closed(5000)
  } finally {
    clearInterval(dribble)
  }
  assert.ok(sent < header.length, `the whole header (${sent} bytes) was taken`)
  assert.ok(
    gw.logs.some(
      (l) =>
        l.msg === 'connection without a valid PROXY header closed' &&
        l.reason === 'no PROXY header within connectTimeout',
    ),
  )
})

test("the header and the first packets in one write: a v2 LOCAL header (a balancer's own check) keeps the socket's address; v1 pipelined with CONNECT and SUBSCRIBE", async () => {
  const local = new V2ProxyProtocol(
    Command.LOCAL,
    TransportProtocol.UNSPEC,
    new IPv4ProxyAddress(IPv4Address.createFrom([0, 0, 0, 0]), 0, IPv4Address.createFrom([0, 0, 0, 0]), 0),
  ).build()
  const connect = mqttPacket.generate(
    connectPacket({ clientId: 'check', username: 'alice@acme', password: Buffer.from('a') }),
  )
  const checker = await rawConnect(gw.port('lb'), 4, '127.0.0.8')
  checker.write(Buffer.concat([Buffer.from(local), connect]))
  assert.equal(((await checker.next()) as Packet & { returnCode: number }).returnCode, 0)
  assert.equal(gw.clients('acme').find((x) => x.clientId === 'check')?.remoteAddress, '127.0.0.8')
  checker.end()

  const piped = await rawConnect(gw.port('lb'))
  piped.write(
    Buffer.concat([
      Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 40000 1883\r\n'),
      mqttPacket.generate(connectPacket({ clientId: 'piped', username: 'alice@globex', password: Buffer.from('g') })),
      mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'x/#', qos: 0 }] }),
    ]),
  )
  assert.equal((await piped.next()).cmd, 'connack')
  assert.equal((await piped.next()).cmd, 'suback')
  const listed = gw.clients('globex').find((x) => x.clientId === 'piped')
  assert.deepEqual([listed?.remoteAddress, listed?.remotePort, listed?.filters?.()], ['2001:db8::1', 40000, ['x/#']])
  piped.end()
})
