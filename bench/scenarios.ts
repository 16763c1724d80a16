// The scenarios of issue 5, each run the same way against every endpoint so the results are ratios.
// Every loop is bounded by a duration or a count.
import { connect, subscribe, close, publishPacket, percentile, sleep, type Conn } from './load.js'
import { rssBytes, type Endpoint } from './peers.js'

const PAYLOAD = Buffer.alloc(64, 0x61)

/** N publishers → N subscribers (publisher i → topic i), as fast as possible; received msg/s. */
export async function throughput(
  ep: Endpoint,
  qos: 0 | 1,
  seconds: number,
  pairs = 10,
): Promise<{ msgs: number; mbps: number }> {
  const run = `${ep.name}-${qos}-${Date.now()}`
  const subs: Conn[] = []
  const pubs: Conn[] = []
  let received = 0
  let counting = false
  for (let i = 0; i < pairs; i++) {
    const s = await connect(ep.port, `s-${run}-${i}`, ep.userB, ep.password)
    const acks: Buffer[] = []
    s.onPublish = (_f, _o, q, id) => {
      if (counting) received++
      if (q === 1) {
        if (acks.length === 0)
          setImmediate(() => {
            s.socket.write(Buffer.concat(acks.splice(0)))
          })
        acks.push(Buffer.from([0x40, 2, id >> 8, id & 0xff]))
      }
    }
    await subscribe(s, `bench/${i}`, qos)
    subs.push(s)
    pubs.push(await connect(ep.port, `p-${run}-${i}`, ep.userB, ep.password))
  }
  const deadline = Date.now() + seconds * 1000 + 500
  setTimeout(() => {
    counting = true
  }, 500).unref() // warm-up
  const started = Date.now() + 500
  await Promise.all(
    pubs.map((p, i) => (qos === 0 ? floodQos0(p, `bench/${i}`, deadline) : floodQos1(p, `bench/${i}`, deadline))),
  )
  const elapsed = (Date.now() - started) / 1000
  counting = false
  const msgs = received / elapsed
  for (const c of [...subs, ...pubs]) close(c)
  return { msgs, mbps: (msgs * PAYLOAD.length) / 1e6 }
}

async function floodQos0(p: Conn, topic: string, deadline: number): Promise<void> {
  const batch = Buffer.concat(Array.from({ length: 100 }, () => publishPacket(topic, PAYLOAD, 0)))
  while (Date.now() < deadline && !p.socket.destroyed) {
    if (!p.socket.write(batch)) await drainOrClose(p)
  }
}

/** Waits for room to write, or for the socket to go (a destroyed socket never drains). */
function drainOrClose(p: Conn): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      p.socket.off('drain', done)
      p.socket.off('close', done)
      resolve()
    }
    p.socket.once('drain', done)
    p.socket.once('close', done)
  })
}

/** QoS 1 with a window of in-flight PUBLISH: a new one goes out as each PUBACK comes back. */
async function floodQos1(p: Conn, topic: string, deadline: number, window = 100): Promise<void> {
  const ring = Array.from({ length: 1000 }, (_x, i) => publishPacket(topic, PAYLOAD, 1, i + 1))
  let next = 0
  await new Promise<void>((resolve) => {
    const send = (n: number): void => {
      if (Date.now() >= deadline) return resolve()
      const out: Buffer[] = []
      for (let i = 0; i < n; i++) {
        out.push(ring[next] as Buffer)
        next = (next + 1) % ring.length
      }
      p.socket.write(Buffer.concat(out))
    }
    let acked = 0
    p.onAck = (type) => {
      if (type !== 4) return
      if (++acked >= 20) {
        send(acked)
        acked = 0
      }
    }
    send(window)
    setTimeout(resolve, deadline - Date.now() + 2000).unref()
  })
}

export interface Latency {
  p50: number
  p99: number
  p999: number
  count: number
}

/** One publisher at a fixed rate to one subscriber; end-to-end latency in ms. */
/**
 * Messages of the first 2 s are not measured: a Node.js process (the gateway) reaches its steady p99
 * only once V8 has optimised the path at this rate — after 0.5 s the gateway's first latency run of a
 * process still measured about twice its steady p99.
 */
const LATENCY_WARM_UP_MS = 2000

export async function latency(
  ep: Endpoint,
  rate: number,
  seconds: number,
  user = ep.userB,
  topic = 'lat',
): Promise<Latency> {
  const run = `${ep.name}-lat-${Date.now()}-${Math.random()}`
  const sub = await connect(ep.port, `ls-${run}`, user, ep.password)
  const samples: number[] = []
  let measuring = false
  sub.onPublish = (frame, offset) => {
    if (!measuring) return
    const sent = frame.readBigUInt64BE(offset)
    samples.push(Number(process.hrtime.bigint() - sent) / 1e6)
  }
  await subscribe(sub, topic, 0)
  const pub = await connect(ep.port, `lp-${run}`, user, ep.password)
  const start = Date.now()
  const end = start + LATENCY_WARM_UP_MS + seconds * 1000
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = Date.now()
      if (now >= end) return resolve()
      if (!measuring && now - start > LATENCY_WARM_UP_MS) measuring = true
      const due = Math.floor(((now - start) * rate) / 1000)
      for (; sent < due; sent++) {
        const payload = Buffer.alloc(64)
        payload.writeBigUInt64BE(process.hrtime.bigint())
        pub.socket.write(publishPacket(topic, payload, 0))
      }
      setTimeout(tick, 1)
    }
    tick()
  })
  await sleep(200)
  close(sub)
  close(pub)
  samples.sort((a, b) => a - b)
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    p999: percentile(samples, 99.9),
    count: samples.length,
  }
}

/** CONNECT→CONNACK (with authentication at the gateway), `concurrency` at a time; connections/s. */
export async function connectionRate(ep: Endpoint, seconds: number, concurrency = 50): Promise<number> {
  const deadline = Date.now() + seconds * 1000
  let done = 0
  let failed = 0
  const started = Date.now()
  await Promise.all(
    Array.from({ length: concurrency }, async (_x, w) => {
      for (let i = 0; Date.now() < deadline; i++) {
        try {
          const c = await connect(ep.port, `cr-${w}-${i}`, ep.userB, ep.password)
          done++
          close(c)
        } catch {
          failed++
        }
      }
    }),
  )
  if (failed > 0) process.stderr.write(`  ${ep.name}: ${failed} connections failed\n`)
  return done / ((Date.now() - started) / 1000)
}

/** Idle connections held open; RSS growth of the process holding them, per connection (bytes). */
export async function memoryPerConnection(ep: Endpoint, count: number): Promise<number> {
  await sleep(500)
  const before = rssBytes(ep.pid)
  const conns: Conn[] = []
  const run = `${ep.name}-mem-${Date.now()}`
  for (let i = 0; i < count; i += 100) {
    conns.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, count - i) }, (_x, j) =>
          connect(ep.port, `m-${run}-${i + j}`, ep.userB, ep.password),
        ),
      )),
    )
  }
  await sleep(1500)
  const after = rssBytes(ep.pid)
  for (const c of conns) c.socket.destroy()
  await sleep(1000)
  return (after - before) / count
}

/** Tenant A floods (4 publishers, as fast as possible) while tenant B measures latency. */
export async function noisyNeighbour(ep: Endpoint, seconds: number): Promise<{ alone: Latency; flooded: Latency }> {
  const alone = await latency(ep, 1000, seconds, ep.userB, 'calm')
  const run = `${ep.name}-noisy-${Date.now()}`
  const flooders = await Promise.all(
    Array.from({ length: 4 }, (_x, i) => connect(ep.port, `nf-${run}-${i}`, ep.userA, ep.password)),
  )
  const deadline = Date.now() + LATENCY_WARM_UP_MS + (seconds + 2) * 1000
  const flood = Promise.all(flooders.map((p) => floodQos0(p, 'flood', deadline)))
  await sleep(300)
  const flooded = await latency(ep, 1000, seconds, ep.userB, 'calm')
  for (const f of flooders) f.socket.destroy()
  await flood
  return { alone, flooded }
}

/** One publisher at `rate` msg/s to `subscribers` subscribers of one topic; deliveries/s. */
export async function fanOut(ep: Endpoint, subscribers: number, rate: number, seconds: number): Promise<number> {
  const run = `${ep.name}-fan-${Date.now()}`
  let delivered = 0
  let counting = false
  const subs: Conn[] = []
  for (let i = 0; i < subscribers; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, subscribers - i) }, (_x, j) =>
        connect(ep.port, `fs-${run}-${i + j}`, ep.userB, ep.password),
      ),
    )
    for (const s of batch) {
      s.onPublish = () => {
        if (counting) delivered++
      }
      await subscribe(s, 'fan', 0)
    }
    subs.push(...batch)
  }
  const pub = await connect(ep.port, `fp-${run}`, ep.userB, ep.password)
  const packet = publishPacket('fan', PAYLOAD, 0)
  const start = Date.now()
  const end = start + (seconds + 0.5) * 1000
  let sent = 0
  let countedFrom = 0
  while (Date.now() < end) {
    const now = Date.now()
    if (!counting && now - start > 500) {
      counting = true
      countedFrom = now
    }
    const due = Math.floor(((now - start) * rate) / 1000)
    for (; sent < due; sent++) pub.socket.write(packet)
    await sleep(2)
  }
  const elapsed = (Date.now() - countedFrom) / 1000
  await sleep(300)
  counting = false
  for (const s of subs) s.socket.destroy()
  close(pub)
  return delivered / elapsed
}
