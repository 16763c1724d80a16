// listeners[].reusePort: two gateways (as two processes would) bind one port and both serve clients of
// the same tenant; on a Node.js without SO_REUSEPORT support the loader says so instead.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { freePort } from './helpers/net.js'
import { startTestGateway } from './helpers/gateway.js'
import { connectClient } from './helpers/clients.js'
import { parseConfigText } from '../src/config/load.js'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
const supported = major > 22 || (major === 22 && minor >= 12)

test('reusePort: two gateways share one port', { skip: !supported && 'needs Node.js ≥ 22.12' }, async () => {
  const port = await freePort()
  const yaml = `listeners:\n  - { name: mqtt, type: tcp, bind: "127.0.0.1:${port}", reusePort: true }\nupstream: { url: embedded }\ntenants:\n  acme: { users: { alice: { password: "plain:a" } } }\n`
  const one = await startTestGateway(yaml)
  const two = await startTestGateway(yaml) // without SO_REUSEPORT: "port in use"
  try {
    assert.equal(one.port(), port)
    assert.equal(two.port(), port)
    const clients = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        connectClient(port, { clientId: `dev-${i}`, username: 'alice@acme', password: 'a' }),
      ),
    )
    assert.equal(one.connections('acme') + two.connections('acme'), 8)
    await Promise.all(clients.map((c) => c.end()))
  } finally {
    await one.close()
    await two.close()
  }
})

test('reusePort on an older Node.js is a config error', { skip: supported && 'this Node.js supports it' }, () => {
  assert.throws(
    () =>
      parseConfigText(
        'listeners: [{ name: m, type: tcp, bind: "127.0.0.1:0", reusePort: true }]\nupstream: { url: embedded }\n',
        { baseDir: '.' },
      ),
    /listeners\[0\]\.reusePort \(line 1\): reusePort needs Node\.js 22\.12 or later/,
  )
})
