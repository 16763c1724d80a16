import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js'
import { startTestGateway, yamlConfig, type TestGateway } from './helpers/gateway.js'
import { connectClient, quiet } from './helpers/clients.js'

let broker: Mosquitto
let gw: TestGateway

before(async () => {
  broker = await startMosquitto()
  gw = await startTestGateway(
    yamlConfig(
      broker.url,
      `
tenants:
  acme:
    users: { alice: { password: "plain:a" } }
  globex:
    users: { alice: { password: "plain:g" } }
`,
    ),
  )
})
after(async () => {
  await gw?.close()
  await broker?.stop()
})

for (const protocolVersion of [4, 5] as const) {
  test(`v${protocolVersion}: same client ID and topic in two tenants do not cross`, async () => {
    const a = await connectClient(gw.port(), {
      protocolVersion,
      clientId: 'dev-1',
      username: 'alice@acme',
      password: 'a',
    })
    const g = await connectClient(gw.port(), {
      protocolVersion,
      clientId: 'dev-1',
      username: 'alice@globex',
      password: 'g',
    })
    await a.client.subscribeAsync('sensors/#', { qos: 1 })
    await g.client.subscribeAsync('sensors/#', { qos: 1 })
    await a.client.publishAsync('sensors/t1', 'from-acme', { qos: 1 })
    const m = await a.next()
    assert.equal(m.topic, 'sensors/t1')
    assert.equal(m.payload, 'from-acme')
    await quiet(g)
    await g.client.publishAsync('sensors/t1', 'from-globex', { qos: 0 })
    assert.equal((await g.next()).payload, 'from-globex')
    await quiet(a)
    await a.end()
    await g.end()
  })
}
