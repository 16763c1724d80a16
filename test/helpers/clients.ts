// Real MQTT clients for the behaviour tests: MQTT.js with awaitable helpers.
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt'

export interface Received {
  topic: string
  payload: string
  packet: IPublishPacket
}

export interface TestClient {
  readonly client: MqttClient
  readonly received: Received[]
  /** resolves with the first message (after those already seen) matching `pred`, or rejects after `ms` */
  next(pred?: (m: Received) => boolean, ms?: number): Promise<Received>
  end(): Promise<void>
}

/** Connects and resolves on CONNACK, rejects with the error carrying the reason code on refusal. */
export async function connectClient(port: number, opts: IClientOptions = {}): Promise<TestClient> {
  const client = mqtt.connect({
    host: '127.0.0.1',
    port,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4,
    ...opts,
  })
  const received: Received[] = []
  const waiters: Array<() => void> = []
  client.on('message', (topic, payload, packet) => {
    received.push({ topic, payload: payload.toString(), packet })
    for (const w of waiters.splice(0)) w()
  })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  client.on('error', () => {})
  let seen = 0
  return {
    client,
    received,
    async next(pred = () => true, ms = 3000) {
      const deadline = Date.now() + ms
      for (;;) {
        while (seen < received.length) {
          const m = received[seen++] as Received
          if (pred(m)) return m
        }
        const left = deadline - Date.now()
        if (left <= 0) throw new Error('no matching message')
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left)
          waiters.push(() => {
            clearTimeout(t)
            resolve()
          })
        })
      }
    },
    end: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
  }
}

/** The CONNACK code a refused connection got (MQTT.js puts it on the error as `code`). */
export async function connectRefusal(port: number, opts: IClientOptions = {}): Promise<number> {
  try {
    const c = await connectClient(port, opts)
    await c.end()
    throw new Error('connection was accepted')
  } catch (err) {
    const code = (err as { code?: number }).code
    if (typeof code !== 'number') throw err
    return code
  }
}

/** Waits `ms` and asserts nothing arrived meanwhile (used to show that a message did NOT cross). */
export async function quiet(c: TestClient, ms = 300): Promise<void> {
  const before = c.received.length
  await new Promise((resolve) => setTimeout(resolve, ms))
  if (c.received.length !== before)
    throw new Error(`unexpected message: ${JSON.stringify(c.received.slice(before).map((m) => m.topic))}`)
}
