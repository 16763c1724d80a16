// A real RabbitMQ (Debian's rabbitmq-server with rabbitmq_mqtt) for the RabbitMQ test: its own node name,
// data, logs, Erlang cookie and epmd, all on random ports, so it neither sees nor disturbs any other node.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { freePort } from './net.js'

// The script itself, not /usr/sbin's wrapper, which switches to user rabbitmq and logs under /var/log.
export const RABBITMQ_SERVER = process.env.RABBITMQ_SERVER ?? '/usr/lib/rabbitmq/bin/rabbitmq-server'
export const rabbitmqInstalled = existsSync(RABBITMQ_SERVER)

/** Booting takes ~10-30 s (Erlang, Mnesia, the MQTT client-ID Raft cluster) depending on the machine's load. */
const BOOT_MS = 90_000

export interface RabbitMQ {
  readonly mqttPort: number
  readonly url: string
  /** how long the boot took, until the MQTT listener let the gateway user in */
  readonly bootMs: number
  stop(): Promise<void>
}

export interface RabbitSetup {
  vhosts: string[]
  user: string
  password: string
}

/** RabbitMQ's rabbit_password_hashing_sha256: base64(salt ‖ SHA-256(salt ‖ password)), 4-byte salt. */
function passwordHash(password: string): string {
  const salt = randomBytes(4)
  return Buffer.concat([
    salt,
    createHash('sha256')
      .update(Buffer.concat([salt, Buffer.from(password)]))
      .digest(),
  ]).toString('base64')
}

/** Vhosts, the user and its permissions are loaded at boot from a definitions file: no rabbitmqctl (1-2 s a call). */
function definitions(s: RabbitSetup): string {
  return JSON.stringify({
    vhosts: s.vhosts.map((name) => ({ name })),
    users: [
      {
        name: s.user,
        password_hash: passwordHash(s.password),
        hashing_algorithm: 'rabbit_password_hashing_sha256',
        tags: [],
      },
    ],
    permissions: s.vhosts.map((vhost) => ({ user: s.user, vhost, configure: '.*', write: '.*', read: '.*' })),
  })
}

async function loginOnce(url: string, username: string, password: string): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const c = mqtt.connect(url, {
      username,
      password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 2000,
      clientId: 'mtg-boot-probe',
    })
    c.once('connect', () => {
      c.end(true)
      resolve(true)
    })
    c.once('error', () => {
      c.end(true)
      resolve(false)
    })
    c.once('close', () => resolve(false))
  })
}

export async function startRabbitMQ(setup: RabbitSetup): Promise<RabbitMQ> {
  const dir = mkdtempSync(join(tmpdir(), 'mtg-rabbitmq-'))
  const [amqpPort, distPort, epmdPort, mqttPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ]
  writeFileSync(join(dir, 'definitions.json'), definitions(setup))
  writeFileSync(join(dir, 'enabled_plugins'), '[rabbitmq_mqtt].\n')
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
      'mqtt.allow_anonymous = false',
      `load_definitions = ${join(dir, 'definitions.json')}`,
    ].join('\n') + '\n',
  )
  const env = {
    ...process.env,
    HOME: dir, // the Erlang cookie is written there
    RABBITMQ_NODENAME: `mtg-${randomBytes(4).toString('hex')}@localhost`,
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_PORT: String(epmdPort),
    // epmd refuses `-kill` while it still lists the node, which it may for a moment after SIGKILL.
    ERL_EPMD_RELAXED_COMMAND_CHECK: '1',
  }
  const started = Date.now()
  // Its own process group: the script runs erl as a child (and erl its helpers); stop() kills them all.
  const child: ChildProcess = spawn(RABBITMQ_SERVER, [], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString()
  })
  child.on('error', (err) => {
    output += String(err)
  })
  const stop = async (): Promise<void> => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve))
      process.kill(-child.pid, 'SIGKILL') // a throwaway node: nothing to shut down gracefully
      await gone
    }
    // epmd daemonizes, so it outlives the node; this one is ours alone (its own port).
    await new Promise((resolve) => execFile('epmd', ['-kill'], { env }, resolve))
  }
  const url = `mqtt://127.0.0.1:${mqttPort}`
  const probeUser = `${setup.vhosts[0] ?? '/'}:${setup.user}`
  try {
    while (!(await loginOnce(url, probeUser, setup.password))) {
      if (child.exitCode !== null) throw new Error(`rabbitmq-server exited (${child.exitCode}): ${output}`)
      if (Date.now() - started > BOOT_MS)
        throw new Error(`RabbitMQ did not let ${probeUser} in within ${BOOT_MS} ms: ${output}`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { mqttPort, url, bootMs: Date.now() - started, stop }
}
