// The pure checks `check` runs beyond the schema: which binds collide on one host, and which stored
// password strings the gateway can verify.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { bindsCollide } from '../src/config/bind-conflicts.js'
import { passwordFormatProblem } from '../src/tenancy/password-format.js'
import { hashPassword } from '../src/tenancy/passwords.js'

const b = (host: string, port = 1883) => ({ host, port })

test('binds collide on the same address, or a wildcard and an address it covers', () => {
  const cases: Array<[string, string, boolean]> = [
    ['127.0.0.1', '127.0.0.1', true],
    ['0.0.0.0', '127.0.0.1', true],
    ['127.0.0.1', '0.0.0.0', true],
    ['::', '127.0.0.1', true], // Node's :: is dual-stack
    ['::', '::1', true],
    ['0.0.0.0', '::1', false], // an IPv4 wildcard leaves IPv6 free
    ['0:0::1', '::1', true],
    ['::ffff:127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '127.0.0.2', false],
    ['localhost', '0.0.0.0', true],
    ['localhost', '127.0.0.1', false], // names are not resolved
  ]
  for (const [x, y, expected] of cases) assert.equal(bindsCollide(b(x), b(y)), expected, `${x} vs ${y}`)
  assert.equal(bindsCollide(b('0.0.0.0', 1883), b('0.0.0.0', 1884)), false)
  assert.equal(bindsCollide(b('127.0.0.1', 0), b('127.0.0.1', 0)), false) // port 0: the kernel picks two
})

test('password formats: plain:, scrypt from passwd, mosquitto $6$ and $7$; anything else is named', async () => {
  for (const ok of [
    'plain:x',
    await hashPassword('s3cret'),
    '$6$OcA0Il9sOGRcaIrP$7j1b/CM7Q4KyIQhOu0SHCt47R3Nvj3vWP4Flg8r0+4gSAgqSKPJ5k4szOs5P/2HwQL6+5FJ5M6yTzfq0OJGo4w==',
    '$7$101$Ylpuk8w4nv5J7LCz$Ya1VOmJkPe1FERDQELSCCAlA1ICdENkqyPj29m93we64Snt4xJEnxMsNW11WAJ0egqBcEdC9tPO+jdYg8KE8LQ==',
  ])
    assert.equal(passwordFormatProblem(ok), undefined, ok)
  assert.match(
    passwordFormatProblem('hunter2') ?? '',
    /unrecognised password format; expected "plain:SECRET".*scrypt.*\$6\$.*\$7\$/,
  )
  assert.match(passwordFormatProblem('plain:') ?? '', /empty/)
  assert.match(passwordFormatProblem('scrypt$16384$8$1$salt') ?? '', /damaged scrypt/)
  // N not a power of two
  assert.match(passwordFormatProblem('scrypt$1000$8$1$c2FsdA==$aGFzaA==') ?? '', /damaged scrypt/)
  assert.match(passwordFormatProblem('$7$x$salt$hash') ?? '', /damaged mosquitto \$7\$/)
  assert.match(passwordFormatProblem('$2y$10$abcdefghijklmnopqrstuv') ?? '', /unrecognised/) // bcrypt: not ours
})
