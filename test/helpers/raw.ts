// Raw-socket MQTT for exact packets and exact answers (reason codes MQTT.js would hide).
import net from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'

export interface RawClient {
  readonly socket: net.Socket
  send(packet: Packet): void
  write(bytes: Buffer): void
  /** next packet from the gateway, or rejects after `ms` / on close */
  next(ms?: number): Promise<Packet>
  /** resolves when the gateway closes the connection (bounded) */
  closed(ms?: number): Promise<void>
  end(): void
}

/** A raw MQTT connection to 127.0.0.1:`port`; from `localAddress` (another loopback address) when given. */
export async function rawConnect(
  port: number,
  protocolVersion: 3 | 4 | 5 = 4,
  localAddress?: string,
): Promise<RawClient> {
  const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress !== undefined ? { localAddress } : {}) })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  const parser = mqttPacket.parser({ protocolVersion })
  const packets: Packet[] = []
  let wake: (() => void) | undefined
  let isClosed = false
  parser.on('packet', (p: Packet) => {
    packets.push(p)
    wake?.()
  })
  parser.on('error', () => {})
  socket.on('data', (d) => parser.parse(d))
  socket.on('error', () => {})
  socket.on('close', () => {
    isClosed = true
    wake?.()
  })
  const waitFor = async <T>(ready: () => T | undefined, ms: number, what: string): Promise<T> => {
    const deadline = Date.now() + ms
    for (;;) {
      const v = ready()
      if (v !== undefined) return v
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
  }
  return {
    socket,
    send: (p) => {
      socket.write(mqttPacket.generate(p, { protocolVersion }))
    },
    write: (b) => {
      socket.write(b)
    },
    next: (ms = 3000) =>
      waitFor(
        () => {
          const p = packets.shift()
          if (p === undefined && isClosed) throw new Error('connection closed')
          return p
        },
        ms,
        'a packet',
      ),
    closed: (ms = 3000) => waitFor(() => (isClosed ? true : undefined), ms, 'close').then(() => undefined),
    end: () => {
      socket.destroy()
    },
  }
}

export function connectPacket(
  opts: Partial<mqttPacket.IConnectPacket> & { protocolVersion?: 3 | 4 | 5 },
): mqttPacket.IConnectPacket {
  const protocolVersion = opts.protocolVersion ?? 4
  return {
    cmd: 'connect',
    protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion,
    clean: true,
    keepalive: 30,
    clientId: 'raw',
    ...opts,
  }
}
