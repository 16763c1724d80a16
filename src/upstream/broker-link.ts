// A small MQTT 3.1.1 client of the gateway's own, for talking to a broker as itself rather than for a
// device: the readiness probe (CONNECT, CONNACK, DISCONNECT) and mosquitto dynamic-security
// provisioning (SUBSCRIBE to the responses, PUBLISH commands). It speaks the few packets through the
// codec, so MQTT.js stays a test dependency.
import type net from 'node:net'
import { randomBytes } from 'node:crypto'
import { decodePacket, encode, FrameReader, PacketType, type Packet } from '../codec.js'
import { openUpstream, type UpstreamTarget } from './connect.js'

export interface LinkOptions {
  clientId?: string
  username?: string
  password?: Buffer
  /** bounds the TCP connect and the CONNACK, in ms */
  timeoutMs: number
}

/** The broker's answer to the CONNECT: 0 accepted, else the 3.1.1 return code (5 not authorised…). */
export type ConnectOutcome =
  | { readonly kind: 'connected'; readonly link: BrokerLink }
  | { readonly kind: 'refused'; readonly returnCode: number }
  | { readonly kind: 'unreachable'; readonly error: string }

const MAX_PACKET = 1024 * 1024

export class BrokerLink {
  private nextId = 1
  private readonly acks = new Map<number, () => void>()
  private readonly handlers = new Set<(topic: string, payload: Buffer) => void>()
  private closed = false
  /** settles when the socket is gone, however it went */
  readonly gone: Promise<void>

  constructor(
    private readonly socket: net.Socket,
    private readonly reader: FrameReader,
  ) {
    this.gone = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true
        resolve()
      }),
    )
    socket.on('data', (chunk: Buffer) => this.read(chunk))
    socket.on('error', () => {}) // followed by close, which is what the users of a link wait for
  }

  get isOpen(): boolean {
    return !this.closed
  }

  onMessage(handler: (topic: string, payload: Buffer) => void): () => void {
    this.handlers.add(handler)
    return () => this.handlers.delete(handler)
  }

  /** SUBSCRIBE at QoS 0; resolves on the SUBACK (rejects if it refuses or the socket goes). */
  subscribe(filter: string): Promise<void> {
    const messageId = this.id()
    return new Promise((resolve, reject) => {
      const gone = (): void => reject(new Error('connection to the broker closed'))
      this.gone.then(gone, gone)
      this.acks.set(messageId, resolve)
      this.socket.write(encode({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos: 0 }] }, 4))
    })
  }

  publish(topic: string, payload: Buffer | string): void {
    this.socket.write(encode({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }, 4))
  }

  close(): void {
    if (this.closed) return
    this.socket.end(encode({ cmd: 'disconnect' }, 4))
    this.socket.setTimeout(1000, () => this.socket.destroy())
  }

  private id(): number {
    const id = this.nextId
    this.nextId = this.nextId === 0xffff ? 1 : this.nextId + 1
    return id
  }

  private read(chunk: Buffer): void {
    try {
      this.reader.push(chunk, (frame) => {
        if (frame.type === PacketType.PINGRESP) return
        const packet = decodePacket(frame, 4)
        if (packet.cmd === 'publish') {
          const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
          for (const h of this.handlers) h(packet.topic, payload)
        } else if (packet.cmd === 'suback' && packet.messageId !== undefined) {
          const done = this.acks.get(packet.messageId)
          this.acks.delete(packet.messageId)
          const granted = packet.granted[0]
          if (typeof granted === 'number' && granted < 0x80) done?.()
          else this.socket.destroy()
        }
      })
    } catch {
      this.socket.destroy() // a broker that sends garbage is not one to talk to
    }
  }
}

/** CONNECT (clean session, MQTT 3.1.1, which every broker speaks) and wait for the CONNACK. */
export function dialBroker(target: UpstreamTarget, opts: LinkOptions): Promise<ConnectOutcome> {
  return new Promise((resolve) => {
    const socket = openUpstream(target)
    const reader = new FrameReader(MAX_PACKET)
    let settled = false
    const finish = (outcome: ConnectOutcome): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.off('data', onData)
      if (outcome.kind !== 'connected') socket.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(
      () => finish({ kind: 'unreachable', error: `no CONNACK within ${opts.timeoutMs} ms` }),
      opts.timeoutMs,
    )
    const onData = (chunk: Buffer): void => {
      try {
        reader.push(chunk, (frame) => {
          const packet: Packet = decodePacket(frame, 4)
          if (packet.cmd !== 'connack') throw new Error(`expected CONNACK, got ${packet.cmd}`)
          const code = packet.returnCode ?? packet.reasonCode ?? 0
          if (code !== 0) {
            finish({ kind: 'refused', returnCode: code })
            return false
          }
          const link = new BrokerLink(socket, reader)
          finish({ kind: 'connected', link })
          return false
        })
      } catch (err) {
        finish({ kind: 'unreachable', error: err instanceof Error ? err.message : String(err) })
      }
    }
    socket.on('data', onData)
    socket.once('error', (err) => finish({ kind: 'unreachable', error: err.message }))
    socket.once('close', () => finish({ kind: 'unreachable', error: 'connection closed before CONNACK' }))
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      socket.write(
        encode(
          {
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            keepalive: 60,
            clientId: opts.clientId ?? `mtg-${randomBytes(6).toString('hex')}`,
            ...(opts.username !== undefined ? { username: opts.username } : {}),
            ...(opts.password !== undefined ? { password: opts.password } : {}),
          },
          4,
        ),
      )
    })
  })
}
