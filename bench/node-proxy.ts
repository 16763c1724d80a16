// Two reference proxies for the connection-rate floor (bench/connect-floor.ts), in the gateway's own
// runtime: `pipe` forwards bytes (what any Node.js L4 proxy pays per connection) and `mqtt` reads the
// CONNECT, dials, sends a mounted CONNECT, relays the CONNACK and then pipes (what any MQTT-aware
// Node.js proxy pays before doing any tenancy: no auth, no limits, no framing after CONNACK).
// With a process count, that many processes share the listening socket (node:cluster, the kernel hands
// each connection to one of them): what more processes buy on this machine when nothing is shared.
// node --import tsx bench/node-proxy.ts <pipe|mqtt> <listen port> <upstream port> [processes]
import cluster from 'node:cluster'
import net from 'node:net'
import mqttPacket from 'mqtt-packet'

const [mode, listenPort, upstreamPort, processes] = process.argv.slice(2)
const upstream = { port: Number(upstreamPort), host: '127.0.0.1', noDelay: true }

function pipe(client: net.Socket, up: net.Socket): void {
  client.pipe(up)
  up.pipe(client)
}

function proxyMqtt(client: net.Socket): void {
  let up: net.Socket | undefined
  client.on('error', () => up?.destroy())
  client.on('close', () => up?.destroy())
  client.once('data', (chunk: Buffer) => {
    client.pause()
    const parser = mqttPacket.parser()
    let connect: mqttPacket.IConnectPacket | undefined
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd === 'connect') connect = p
    })
    parser.parse(chunk)
    if (connect === undefined) {
      client.destroy()
      return
    }
    const socket = (up = net.connect(upstream))
    socket.on('error', () => client.destroy())
    socket.on('close', () => client.destroy())
    socket.write(mqttPacket.generate({ ...connect, clientId: `tenant/${connect.clientId}` }))
    socket.once('data', () => {
      client.write(mqttPacket.generate({ cmd: 'connack', sessionPresent: false, returnCode: 0 }))
      pipe(client, socket)
      client.resume()
    })
  })
}

// Round-robin through the primary costs a handle transfer per connection: the shared socket does not.
cluster.schedulingPolicy = cluster.SCHED_NONE
const forks = Number(processes ?? '1')
if (forks > 1 && cluster.isPrimary) {
  for (let i = 0; i < forks; i++) cluster.fork()
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill()
    process.exit(0)
  })
} else {
  serve()
}

function serve(): void {
  net
    .createServer({ noDelay: true }, (client) => {
      if (mode === 'mqtt') return proxyMqtt(client)
      const up = net.connect(upstream)
      client.on('error', () => up.destroy())
      up.on('error', () => client.destroy())
      client.on('close', () => up.destroy())
      up.on('close', () => client.destroy())
      pipe(client, up)
    })
    .listen(Number(listenPort), '127.0.0.1')
}
