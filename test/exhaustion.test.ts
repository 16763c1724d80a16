// Resource exhaustion (issue #6) from the outside: a per-IP connection-rate limit that cuts a flood at
// TCP level, the gateway-wide connection cap answering 0x89 / 0x03, and slow senders ("slowloris") cut
// before CONNECT by connectTimeout and after it by the keep alive — while others keep being served.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { execFileSync } from 'node:child_process'
import mqttPacket from 'mqtt-packet'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway } from './helpers/gateway.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { rawConnect, connectPacket } from './helpers/raw.js'

let broker: Mosquitto
before(async () => {
  broker = await startMosquitto()
})
after(async () => {
  await broker?.stop()
})

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const TENANTS = `
tenants:
  acme: { users: { u: { password: "plain:p" } } }
  globex: { users: { u: { password: "plain:p" } } }
`

/** Opens a TCP connection and reports whether the gateway still holds it open after `ms`. */
async function heldOpen(port: number, ms: number): Promise<boolean> {
  const socket = net.connect({ port, host: '127.0.0.1' })
  socket.on('error', () => {})
  let closed = false
  socket.on('close', () => {
    closed = true
  })
  await sleep(ms)
  socket.destroy()
  return !closed
}

test('ipConnectRate: a flood from one address is cut at TCP level; the listener without the limit, and later connections, are served', async () => {
  const gw = await startTestGateway(`listeners:
  - { name: limited, type: tcp, bind: "127.0.0.1:0", ipConnectRate: 5 }
  - { name: open, type: tcp, bind: "127.0.0.1:0" }
upstream: { url: ${broker.url} }
${TENANTS}`)
  try {
    const held = await Promise.all(Array.from({ length: 30 }, () => heldOpen(gw.port('limited'), 300)))
    const kept = held.filter(Boolean).length
    // 5 per second, and the flood may straddle two one-second windows.
    assert.ok(kept >= 5 && kept <= 10, `${kept} of 30 connections kept`)
    const open = await Promise.all(Array.from({ length: 30 }, () => heldOpen(gw.port('open'), 300)))
    assert.equal(open.filter(Boolean).length, 30)
    await sleep(1100)
    const c = await connectClient(gw.port('limited'), { username: 'u@acme', password: 'p' })
    await c.end()
  } finally {
    await gw.close()
  }
})

for (const [v, code] of [
  [5, 0x89],
  [4, 0x03],
] as const) {
  test(`gateway maxConnections: the connection over the cap gets CONNACK 0x${code.toString(16)} (v${v}); a slot freed is usable again`, async () => {
    const gw = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url} }
maxConnections: 2
${TENANTS}`)
    try {
      const a = await connectClient(gw.port(), { username: 'u@acme', password: 'p', protocolVersion: v })
      const b = await connectClient(gw.port(), { username: 'u@globex', password: 'p', protocolVersion: v })
      assert.equal(await connectRefusal(gw.port(), { username: 'u@globex', password: 'p', protocolVersion: v }), code)
      assert.equal(await connectRefusal(gw.port(), { username: 'u@acme', password: 'p', protocolVersion: v }), code)
      assert.ok(a.client.connected && b.client.connected)
      await a.end()
      for (let i = 0; i < 50 && gw.connections() > 1; i++) await sleep(20)
      const c = await connectClient(gw.port(), { username: 'u@acme', password: 'p', protocolVersion: v })
      await Promise.all([b.end(), c.end()])
    } finally {
      await gw.close()
    }
  })
}

test('slowloris before CONNECT: a CONNECT dribbled a byte at a time is cut at connectTimeout, though bytes keep coming', async () => {
  const gw = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0", connectTimeout: 500ms }]
upstream: { url: ${broker.url} }
${TENANTS}`)
  try {
    const wire = mqttPacket.generate(
      connectPacket({ username: 'u@acme', password: Buffer.from('p'), clientId: 'x'.repeat(40) }),
      { protocolVersion: 4 },
    )
    const raw = await rawConnect(gw.port())
    const started = Date.now()
    let sent = 0
    const dribble = setInterval(() => {
      if (sent < wire.length) raw.write(wire.subarray(sent, ++sent))
    }, 50)
    try {
      await raw.closed(3000)
    } finally {
      clearInterval(dribble)
    }
    const took = Date.now() - started
    assert.ok(sent < wire.length, `the CONNECT (${wire.length} bytes) was never completed: ${sent} sent`)
    assert.ok(took >= 400 && took < 2000, `cut after ${took} ms`)
    // Meanwhile, and after, a normal client is served.
    const c = await connectClient(gw.port(), { username: 'u@globex', password: 'p' })
    await c.end()
  } finally {
    await gw.close()
  }
})

test("keep alive: the broker is asked for twice the client's, so the gateway cuts first (0x8D); a shorter Server Keep Alive reaches the client, a longer one does not", async () => {
  // A broker played by a socket, so what the gateway asks for and what the broker answers can be seen.
  let answer: mqttPacket.IConnackPacket['properties'] = {}
  const asked: number[] = []
  const fake = net.createServer((s) => {
    s.on('error', () => {})
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd !== 'connect') return
      asked.push(p.keepalive ?? -1)
      s.write(
        mqttPacket.generate(
          { cmd: 'connack', sessionPresent: false, reasonCode: 0, properties: answer },
          { protocolVersion: 5 },
        ),
      )
    })
    s.on('data', (d: Buffer) => parser.parse(d))
  })
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve))
  const gw = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: "mqtt://127.0.0.1:${(fake.address() as net.AddressInfo).port}" }
${TENANTS}`)
  const connackOf = async (keepalive: number): Promise<mqttPacket.IConnackPacket> => {
    const raw = await rawConnect(gw.port(), 5)
    raw.send(connectPacket({ protocolVersion: 5, username: 'u@acme', password: Buffer.from('p'), keepalive }))
    const connack = await raw.next()
    raw.end()
    assert.equal(connack.cmd, 'connack')
    return connack as mqttPacket.IConnackPacket
  }
  try {
    assert.equal((await connackOf(10)).properties?.serverKeepAlive, undefined)
    answer = { serverKeepAlive: 4 }
    assert.equal((await connackOf(10)).properties?.serverKeepAlive, 4)
    answer = { serverKeepAlive: 15 }
    assert.equal((await connackOf(10)).properties?.serverKeepAlive, undefined, 'the client keeps its own 10 s')
    answer = { serverKeepAlive: 30 }
    assert.equal((await connackOf(0)).properties?.serverKeepAlive, 30, "no keep alive asked: the broker's applies")
    assert.deepEqual(asked, [20, 20, 20, 0])
  } finally {
    await gw.close()
    await new Promise((resolve) => fake.close(resolve))
  }
})

test('slowloris after CONNECT: a PUBLISH dribbled slower than the keep alive allows is cut (1.5 × keep alive)', async () => {
  const gw = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url} }
${TENANTS}`)
  try {
    const raw = await rawConnect(gw.port(), 5)
    raw.send(connectPacket({ protocolVersion: 5, username: 'u@acme', password: Buffer.from('p'), keepalive: 1 }))
    assert.equal((await raw.next()).cmd, 'connack')
    const wire = mqttPacket.generate(
      { cmd: 'publish', topic: 't', payload: Buffer.alloc(200), qos: 0, retain: false, dup: false },
      { protocolVersion: 5 },
    )
    const started = Date.now()
    let sent = 0
    const dribble = setInterval(() => {
      if (sent < wire.length) raw.write(wire.subarray(sent, ++sent))
    }, 50)
    try {
      const disconnect = await raw.next(5000)
      assert.equal(disconnect.cmd, 'disconnect')
      assert.equal((disconnect as mqttPacket.IDisconnectPacket).reasonCode, 0x8d)
      await raw.closed(2000)
    } finally {
      clearInterval(dribble)
    }
    assert.ok(sent < wire.length, 'cut before the PUBLISH was complete')
    assert.ok(Date.now() - started < 4000)
  } finally {
    await gw.close()
  }
})

/** The gateway's side of a client connection as `ss -o` shows it, with its timer: "timer:(keepalive,59sec,0)". */
function gatewaySide(gatewayPort: number, clientPort: number): string {
  return execFileSync(
    'ss',
    ['-tnoH', 'state', 'established', `( sport = :${gatewayPort} and dport = :${clientPort} )`],
    { encoding: 'utf8' },
  ).trim()
}

test('dead peers: a client without a keep alive gets TCP keep-alive probes after a minute idle; a client with one is left to its keep alive', async () => {
  const gw = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url} }
${TENANTS}`)
  try {
    for (const keepalive of [0, 30]) {
      const raw = await rawConnect(gw.port())
      raw.send(
        connectPacket({ username: 'u@acme', password: Buffer.from('p'), clientId: `ka-${keepalive}`, keepalive }),
      )
      assert.equal((await raw.next()).cmd, 'connack')
      await sleep(1200) // switched on by the gateway's clock, within a tick of CONNACK
      const side = gatewaySide(gw.port(), raw.socket.localPort ?? 0)
      assert.notEqual(side, '', 'the connection is listed')
      if (keepalive === 0) assert.match(side, /timer:\(keepalive,(5\d|60)sec/)
      else assert.doesNotMatch(side, /keepalive/)
      raw.end()
    }
  } finally {
    await gw.close()
  }
})

test("a refused client that never closes its side does not hold the gateway's socket: released within the linger (2 s)", async () => {
  const gw = await startTestGateway(`listeners: [{ name: mqtt, type: tcp, bind: "127.0.0.1:0" }]
upstream: { url: ${broker.url} }
${TENANTS}`)
  // allowHalfOpen: the client reads the gateway's FIN and keeps its own side open, as a broken device might.
  const socket = net.connect({ port: gw.port(), host: '127.0.0.1', allowHalfOpen: true })
  try {
    socket.on('error', () => {})
    socket.resume() // read (and drop) the CONNACK, so 'end' is seen
    await new Promise((resolve) => socket.once('connect', resolve))
    const ended = new Promise((resolve) => socket.once('end', resolve))
    socket.write(
      mqttPacket.generate(connectPacket({ username: 'u@acme', password: Buffer.from('wrong') }), {
        protocolVersion: 4,
      }),
    )
    await ended // CONNACK 0x04, then the gateway's FIN
    const held = (): boolean => {
      const out = execFileSync('ss', ['-tnpH', `( sport = :${gw.port()} and dport = :${socket.localPort ?? 0} )`], {
        encoding: 'utf8',
      })
      return out.includes(`pid=${process.pid},`)
    }
    assert.ok(held(), "the gateway still owns its socket, waiting for the client's FIN")
    await sleep(3000)
    assert.ok(!held(), 'after the linger the gateway has let its socket go')
  } finally {
    socket.destroy()
    await gw.close()
  }
})
