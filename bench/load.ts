// The load generator: raw sockets and pre-encoded packets, so the generator is not the bottleneck.
// Subscribers count PUBLISH frames by reading fixed headers only; nothing is fully decoded.
import net from 'node:net'
import mqttPacket from 'mqtt-packet'

/** Spread client sockets over several loopback source addresses so ephemeral ports do not run out. */
let sourceIndex = 0
function localAddress(): string {
  sourceIndex = (sourceIndex % 50) + 1
  return `127.0.0.${sourceIndex + 1}`
}

export function encode(packet: mqttPacket.Packet): Buffer {
  return mqttPacket.generate(packet, { protocolVersion: 4 })
}

export interface Conn {
  readonly socket: net.Socket
  /** called for each complete PUBLISH frame: the frame and the payload offset */
  onPublish?: (frame: Buffer, payloadOffset: number, qos: number, packetId: number) => void
  onAck?: (type: number) => void
}

/** Connects with CONNECT, resolves after CONNACK (rejects on refusal or after 10 s). */
export function connect(port: number, clientId: string, username: string, password: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: localAddress() })
    socket.setNoDelay(true)
    const conn: Conn = { socket }
    let connected = false
    let pending: Buffer | null = null
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('CONNACK timeout'))
    }, 10_000)
    socket.on('error', (err) => {
      clearTimeout(timer)
      if (!connected) reject(err)
    })
    socket.on('connect', () =>
      socket.write(
        encode({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clean: true,
          keepalive: 0,
          clientId,
          username,
          password: Buffer.from(password),
        }),
      ),
    )
    socket.on('data', (chunk: Buffer) => {
      let buf = pending === null ? chunk : Buffer.concat([pending, chunk])
      pending = null
      let off = 0
      while (off + 2 <= buf.length) {
        let len = 0
        let mul = 1
        let pos = off + 1
        let done = false
        while (pos < buf.length) {
          const b = buf[pos++] as number
          len += (b & 0x7f) * mul
          mul *= 128
          if ((b & 0x80) === 0) {
            done = true
            break
          }
        }
        if (!done || pos + len > buf.length) break
        const type = (buf[off] as number) >> 4
        if (type === 2) {
          clearTimeout(timer)
          if (buf[pos + 1] !== 0) {
            socket.destroy()
            reject(new Error(`refused ${buf[pos + 1]}`))
            return
          }
          connected = true
          resolve(conn)
        } else if (type === 3) {
          const qos = ((buf[off] as number) >> 1) & 3
          const topicLen = buf.readUInt16BE(pos)
          let p = pos + 2 + topicLen
          let id = 0
          if (qos > 0) {
            id = buf.readUInt16BE(p)
            p += 2
          }
          conn.onPublish?.(buf.subarray(off, pos + len), p - off, qos, id)
        } else {
          conn.onAck?.(type)
        }
        off = pos + len
      }
      if (off < buf.length) pending = buf.subarray(off)
      buf = Buffer.alloc(0)
    })
  })
}

export async function subscribe(conn: Conn, topic: string, qos: 0 | 1): Promise<void> {
  await new Promise<void>((resolve) => {
    const prev = conn.onAck
    conn.onAck = (type) => {
      if (type === 9) {
        conn.onAck = prev
        resolve()
      } else prev?.(type)
    }
    conn.socket.write(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }))
  })
}

export function close(conn: Conn): void {
  conn.socket.end(encode({ cmd: 'disconnect' }))
}

export function publishPacket(topic: string, payload: Buffer, qos: 0 | 1, id = 1): Buffer {
  return encode({
    cmd: 'publish',
    topic,
    payload,
    qos,
    retain: false,
    dup: false,
    ...(qos > 0 ? { messageId: id } : {}),
  })
}

/** Percentile of sorted numbers. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
