// A client that never reads (issue #17 item 2): a Python socket with a 2 KiB receive buffer, so the
// gateway's replies pile up on the gateway's side, not in this client, and a 536-byte MSS, so the
// kernel sizes the gateway's send buffer small and the gateway reaches its output bound after a few
// hundred KiB instead of several MiB (seconds of work for it). Node can set neither, hence Python
// (Debian's /usr/bin/python3).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'

/**
 * Connects, reads the first 4 bytes of the CONNACK (its return or reason code is the 4th for a short
 * CONNACK, v3 and v5 alike), then sends `unit` repeated `repeat` times until everything is sent or a
 * send blocks for `stall` seconds, and prints what it got: it never reads again until killed.
 */
const NEVER_READS = `
import json, socket, sys
port, connect, unit, repeat, stall = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
s.connect(('127.0.0.1', port))
s.sendall(connect)
connack = b''
while len(connack) < 4:
    got = s.recv(4 - len(connack))
    if not got:
        break
    connack += got
flood = unit * repeat
s.settimeout(stall)
sent = 0
try:
    while sent < len(flood):
        sent += s.send(flood[sent:sent + 65536])
except socket.timeout:
    pass
print(json.dumps({'connack': list(connack), 'sent': sent, 'total': len(flood)}), flush=True)
sys.stdin.read()
`

export interface NeverReader {
  /** the CONNACK's first 4 bytes */
  readonly connack: number[]
  /** bytes the client could send before a send blocked for the stall time (or all of them) */
  readonly sent: number
  /** bytes it meant to send */
  readonly total: number
  /** kills the client (its socket is reset, with the gateway's replies unread) */
  stop(): void
}

/** Starts a client that sends `connect`, then floods `unit` × `repeat` without ever reading. */
export async function floodWithoutReading(
  port: number,
  connect: Buffer,
  unit: Buffer,
  { repeat, stallSeconds = 1 }: { repeat: number; stallSeconds?: number },
): Promise<NeverReader> {
  const child = spawn(
    '/usr/bin/python3',
    [
      '-c',
      NEVER_READS,
      String(port),
      connect.toString('hex'),
      unit.toString('hex'),
      String(repeat),
      String(stallSeconds),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const stop = (): void => {
    child.kill()
  }
  try {
    const report = await new Promise<{ connack: number[]; sent: number; total: number }>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes('\n')) resolve(JSON.parse(out) as { connack: number[]; sent: number; total: number })
      })
      child.once('exit', () => reject(new Error('the flooding client exited')))
    })
    return { ...report, stop }
  } catch (err) {
    stop()
    throw err
  }
}

/**
 * What a client that never reads must find: accepted, then no longer read once what the gateway wrote to
 * it passed its bound — it could not send everything, the gateway read less than it sent (`bytesRead`,
 * the gateway's count) and reads no more — while the in-process gateway's heap grew under 64 MiB since
 * `heapBefore`.
 */
export async function assertNoLongerRead(
  flooder: NeverReader,
  bytesRead: () => number,
  heapBefore: number,
): Promise<void> {
  assert.deepEqual([flooder.connack[0], flooder.connack[3]], [0x20, 0], 'CONNACK, accepted')
  const read = bytesRead()
  assert.ok(flooder.sent < flooder.total, 'the client could not send everything: the gateway stopped reading it')
  // What it read is bounded by the kernel's socket buffers (under 1 MiB with the client's small MSS), not by the flood.
  assert.ok(read >= 0 && read < flooder.sent, `the gateway read ${read} bytes of the ${flooder.sent} sent`)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(bytesRead(), read, 'and reads no more while the client reads nothing')
  // Each queued reply costs far more than its 4 or 5 bytes: without the bound a 16 MB flood grew the heap 200–300 MiB.
  const grown = process.memoryUsage().heapUsed - heapBefore
  assert.ok(grown < 64 * 1024 * 1024, `the heap grew by ${(grown / 1048576).toFixed(1)} MiB`)
}
