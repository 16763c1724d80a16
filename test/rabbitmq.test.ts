// In front of RabbitMQ 3.10 with rabbitmq_mqtt, configured as the README says: upstream username
// "{tenant}:gateway" puts each tenant in its own vhost, protocol 3.1.1, and a maxQos 1 plan. These
// cases pin what the README promises and each caveat it warns of, against Debian's rabbitmq-server.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'
import { rabbitmqInstalled, startRabbitMQ, type RabbitMQ } from './helpers/rabbitmq.js'
import { connectClient, connectRefusal, quiet } from './helpers/clients.js'
import { connectPacket, rawConnect } from './helpers/raw.js'

const skip = rabbitmqInstalled ? false : 'rabbitmq-server is not installed (apt-get install rabbitmq-server)'
let rabbit: RabbitMQ | undefined
let gw: TestGateway | undefined

before(
  async () => {
    if (!rabbitmqInstalled) return
    // `lab` has a vhost but no maxQos plan (to show why the plan is needed); `nohost` has no vhost.
    rabbit = await startRabbitMQ({ vhosts: ['acme', 'globex', 'lab'], user: 'gateway', password: 'rabbit-secret' })
    gw = await startTestGateway(
      yamlConfig(
        rabbit.url,
        `  username: "{tenant}:gateway"
  password: rabbit-secret
  protocol: 3.1.1
plans:
  rabbitmq: { maxQos: 1 }
tenants:
  acme: { plan: rabbitmq, users: { alice: { password: "plain:a" } } }
  globex: { plan: rabbitmq, users: { alice: { password: "plain:g" } } }
  lab: { users: { alice: { password: "plain:l" } } }
  nohost: { plan: rabbitmq, users: { alice: { password: "plain:n" } } }
`,
      ),
    )
  },
  { timeout: 120_000 },
)

after(async () => {
  await gw?.close()
  await rabbit?.stop()
})

function port(): number {
  assert.ok(gw !== undefined)
  return gw.port()
}

test('RabbitMQ boots for the test', { skip }, (t) => {
  t.diagnostic(`rabbitmq-server booted in ${rabbit?.bootMs ?? -1} ms`)
})

test('each tenant is its own vhost: same client ID, same topics, nothing crosses', { skip }, async () => {
  const acme = await connectClient(port(), { clientId: 'dev-1', username: 'alice@acme', password: 'a' })
  const globex = await connectClient(port(), { clientId: 'dev-1', username: 'alice@globex', password: 'g' })
  await Promise.all([
    acme.client.subscribeAsync('sensors/#', { qos: 1 }),
    globex.client.subscribeAsync('sensors/#', { qos: 1 }),
  ])
  await acme.client.publishAsync('sensors/t1', 'from-acme', { qos: 1 })
  await globex.client.publishAsync('sensors/t1', 'from-globex', { qos: 1 })
  assert.equal((await acme.next()).payload, 'from-acme')
  assert.equal((await globex.next()).payload, 'from-globex')
  await Promise.all([quiet(acme), quiet(globex)])
  assert.deepEqual([acme.received.length, globex.received.length], [1, 1])
  // Both sessions still stand: RabbitMQ saw two client IDs in two vhosts, no takeover.
  assert.ok(acme.client.connected && globex.client.connected)
  await Promise.all([acme.end(), globex.end()])
})

test("a tenant without its vhost is refused with the broker's CONNACK 0x04", { skip }, async () => {
  assert.equal(await connectRefusal(port(), { clientId: 'dev-1', username: 'alice@nohost', password: 'n' }), 4)
})

test('MQTT 5 clients get CONNACK 0x84 from the gateway (RabbitMQ 3.10 speaks 3.1.1 only)', { skip }, async () => {
  assert.equal(
    await connectRefusal(port(), { protocolVersion: 5, clientId: 'dev-1', username: 'alice@acme', password: 'a' }),
    0x84,
  )
})

test(
  'QoS 2: with maxQos 1 SUBACK grants 1 and a QoS 2 PUBLISH closes; without it RabbitMQ answers PUBACK',
  { skip },
  async () => {
    const acme = await connectClient(port(), { clientId: 'dev-1', username: 'alice@acme', password: 'a' })
    const granted = await acme.client.subscribeAsync('q/#', { qos: 2 })
    assert.equal(granted[0]?.qos, 1)
    await acme.end()

    const publishQos2 = async (username: string, password: string) => {
      const raw = await rawConnect(port())
      raw.send(connectPacket({ clientId: 'dev-2', username, password: Buffer.from(password) }))
      assert.equal((await raw.next()).cmd, 'connack')
      raw.send({
        cmd: 'publish',
        topic: 'q/a',
        payload: Buffer.from('two'),
        qos: 2,
        messageId: 1,
        retain: false,
        dup: false,
      })
      return raw
    }
    const planned = await publishQos2('alice@acme', 'a')
    await planned.closed() // maxQos 1 on MQTT 3.1.1: the connection is closed, nothing reaches RabbitMQ
    // RabbitMQ 3.10 downgrades QoS 2 to 1 and acknowledges with PUBACK where the client waits for
    // PUBREC: a protocol error for the client (mosquitto_pub: "A network protocol error occurred").
    const unplanned = await publishQos2('alice@lab', 'l')
    assert.equal((await unplanned.next()).cmd, 'puback')
    unplanned.end()
  },
)

test('retained messages reach exact-topic subscriptions only, each tenant its own', { skip }, async () => {
  for (const [username, password, payload] of [
    ['alice@acme', 'a', 'kept-acme'],
    ['alice@globex', 'g', 'kept-globex'],
  ] as const) {
    const p = await connectClient(port(), { clientId: 'dev-1', username, password })
    await p.client.publishAsync('r/a', payload, { qos: 1, retain: true })
    await p.end()
  }
  for (const [username, password, payload] of [
    ['alice@acme', 'a', 'kept-acme'],
    ['alice@globex', 'g', 'kept-globex'],
  ] as const) {
    const exact = await connectClient(port(), { clientId: 'dev-1', username, password })
    await exact.client.subscribeAsync('r/a', { qos: 1 })
    const m = await exact.next()
    assert.deepEqual([m.topic, m.payload, m.packet.retain], ['r/a', payload, true])
    await exact.end()
  }
  const wildcard = await connectClient(port(), { clientId: 'dev-2', username: 'alice@acme', password: 'a' })
  await wildcard.client.subscribeAsync(['r/#', 'r/+'], { qos: 1 })
  await quiet(wildcard, 1000) // RabbitMQ 3.10 looks retained messages up by the exact filter only
  await wildcard.end()
})

test(
  'dots in topics become slashes: "a.b/c" is delivered as "a/b/c", in the publisher\'s tenant only',
  { skip },
  async () => {
    const acme = await connectClient(port(), { clientId: 'dev-1', username: 'alice@acme', password: 'a' })
    const globex = await connectClient(port(), { clientId: 'dev-1', username: 'alice@globex', password: 'g' })
    await Promise.all([acme.client.subscribeAsync('#', { qos: 1 }), globex.client.subscribeAsync('#', { qos: 1 })])
    await acme.client.publishAsync('a.b/c', 'dotted', { qos: 1 })
    const m = await acme.next()
    assert.deepEqual([m.topic, m.payload], ['a/b/c', 'dotted'])
    await quiet(globex)
    await Promise.all([acme.end(), globex.end()])
  },
)
