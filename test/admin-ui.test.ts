// The web UI in a real browser (Debian's Chromium driven by playwright-core) against the real gateway:
// a tenant logs in with its key, sees its connected device and kicks it; another tenant's key shows
// nothing of the first, even on the first's route; a tenant manages its users and ACL; a revoked key
// falls back to the login; the operator sees every tenant, creates one, changes a plan, disables one.
// Screenshots of each view are taken here, so they follow the UI; `UPDATE_SCREENSHOTS=1 npm test` writes
// them to docs/ (a plain run writes them to a temporary directory and leaves the work tree alone).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { adminYaml, OPERATOR_TOKEN, startTestService, type TestService } from './helpers/service.js'
import { connectClient, connectRefusal } from './helpers/clients.js'
import { nextEvent } from './helpers/events.js'

const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? 'docs' : mkdtempSync(join(tmpdir(), 'ui-shots-'))
const SKIP = `${CHROMIUM} not installed (apt-get install chromium)`
const TENANTS = `
plans:
  free: { maxConnections: 5 }
  pro: { maxConnections: 100 }
tenants:
  acme:
    plan: free
    users: { alice: { password: "plain:pw-a" } }
  globex:
    plan: free
    users: { bob: { password: "plain:pw-b" } }
`

let svc: TestService | undefined
let browser: Browser | undefined
const keys: Record<string, string> = {}
/** Requests any page made off the admin listener (aborted); the last test asserts there were none. */
const external: string[] = []

async function newKey(tenant: string): Promise<{ id: string; key: string }> {
  const res = await api(`/api/v1/tenants/${tenant}/keys`, { method: 'POST', body: { label: 'ui test' } })
  assert.equal(res.status, 201)
  return res.body as { id: string; key: string }
}

function api(path: string, init?: Parameters<TestService['api']>[1]): ReturnType<TestService['api']> {
  if (svc === undefined) throw new Error('no service')
  return svc.api(path, init)
}

before(async () => {
  svc = await startTestService(adminYaml('embedded', TENANTS))
  for (const t of ['acme', 'globex']) keys[t] = (await newKey(t)).key
  if (existsSync(CHROMIUM)) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
  }
})
after(async () => {
  try {
    await browser?.close()
  } finally {
    await svc?.close()
  }
  if (SCREENSHOTS !== 'docs') rmSync(SCREENSHOTS, { recursive: true, force: true })
})

async function newPage(): Promise<Page> {
  if (browser === undefined || svc === undefined) throw new Error('no browser')
  // A zone that is not UTC, so a time shown in the browser's own zone would be seen.
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, timezoneId: 'Asia/Kolkata' })
  // The UI is self-contained: any request off the admin listener is a bug (CDN, web font…).
  const origin = new URL(svc.adminUrl).origin
  await page.route(
    (url) => url.origin !== origin,
    async (route) => {
      external.push(route.request().url())
      await route.abort()
    },
  )
  await page.goto(svc.adminUrl + '/')
  return page
}

async function login(token: string): Promise<Page> {
  const page = await newPage()
  await page.getByTestId('token').fill(token)
  await page.getByTestId('login').click()
  await page.getByTestId('who').waitFor()
  return page
}

test('login: a wrong token is refused with a message', async (t) => {
  if (browser === undefined) return t.skip(SKIP)
  const page = await newPage()
  try {
    await page.getByTestId('token').fill('not-a-token')
    await page.getByTestId('login').click()
    assert.match(await page.getByTestId('login-error').innerText(), /not valid/)
    assert.equal(await page.evaluate(() => sessionStorage.getItem('mtg-token')), null)
    await page.screenshot({ path: join(SCREENSHOTS, 'ui-login.png') })
  } finally {
    await page.close()
  }
})

test('tenant view: the device is listed live with its subscription; Kick disconnects it', async (t) => {
  if (browser === undefined || svc === undefined) return t.skip(SKIP)
  const device = await connectClient(svc.mqttPort, { clientId: 'sensor-1', username: 'alice@acme', password: 'pw-a' })
  await device.client.subscribeAsync('rooms/+/temp')
  // QoS 1 and its own subscription: counted in and out before the PUBACK; the usage route flushes the meter.
  for (let i = 0; i < 5; i++) await device.client.publishAsync('rooms/kitchen/temp', `${20 + i}`, { qos: 1 })
  const page = await login(keys.acme ?? '')
  try {
    assert.equal(await page.getByTestId('who').innerText(), 'tenant key')
    assert.equal(await page.getByTestId('tenant-id').innerText(), 'acme')
    assert.equal(await page.getByTestId('tenant-plan').innerText(), 'free')
    const row = page.getByTestId('client-sensor-1')
    await row.waitFor()
    // The list counts the subscriptions; the filters open from the count, read from the client's own route.
    assert.doesNotMatch(await row.innerText(), /rooms\/\+\/temp/)
    await page.getByTestId('subs-sensor-1').click()
    await page.getByTestId('filters-sensor-1').getByText('rooms/+/temp', { exact: true }).waitFor()
    assert.match(await row.innerText(), /alice/)
    // One zone on the whole page (the browser's is Asia/Kolkata): the connect time is UTC, as the usage hours are.
    const info = (await api('/api/v1/tenants/acme/clients/sensor-1')).body as { connectedAt: string }
    assert.ok((await row.innerText()).includes(info.connectedAt.slice(0, 19).replace('T', ' ')), await row.innerText())
    // host:port of the device and the listener it came in on
    assert.match(await page.getByTestId('address-sensor-1').innerText(), /^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):\d+$/)
    assert.match(await row.innerText(), /\bmqtt\b/)
    assert.match(await page.getByTestId('use-connections').innerText(), /1\s*\/\s*5/)
    await page.getByTestId('usage-chart').locator('canvas').waitFor()
    await page.getByTestId('usage-table').getByText('5', { exact: true }).first().waitFor()
    await page.screenshot({ path: join(SCREENSHOTS, 'ui-tenant.png'), fullPage: true })

    const closed = nextEvent(device.client, 'close')
    await page.getByTestId('kick-sensor-1').click()
    await closed
    await row.waitFor({ state: 'detached' })
    await page.getByTestId('no-clients').waitFor()
  } finally {
    device.client.end(true)
    await page.close()
  }
})

test("another tenant's key shows nothing of acme, even when the page is pointed at acme", async (t) => {
  if (browser === undefined || svc === undefined) return t.skip(SKIP)
  const device = await connectClient(svc.mqttPort, { clientId: 'sensor-1', username: 'alice@acme', password: 'pw-a' })
  const page = await login(keys.globex ?? '')
  try {
    assert.equal(await page.getByTestId('tenant-id').innerText(), 'globex')
    // Every panel loaded, so the text below is all the page will show.
    await page.getByTestId('users').getByText('bob').waitFor()
    await page.getByTestId('no-clients').waitFor()
    await page.getByTestId('usage-chart').waitFor()
    await page.getByTestId('acl-none').waitFor()
    let text = await page.innerText('body')
    for (const secret of ['acme', 'sensor-1', 'alice']) assert.ok(!text.includes(secret), `globex sees "${secret}"`)

    await page.goto(svc.adminUrl + '/#/tenants/acme')
    await page.getByTestId('not-found').waitFor()
    assert.equal(await page.getByTestId('tenant-id').count(), 0)
    text = await page.innerText('body')
    for (const secret of ['acme', 'sensor-1', 'alice', 'free'])
      assert.ok(!text.includes(secret), `globex sees "${secret}" on acme's route`)

    await page.getByTestId('back').click()
    assert.equal(await page.getByTestId('tenant-id').innerText(), 'globex')
  } finally {
    await device.end()
    await page.close()
  }
})

test('tenant view: add a user who can then connect, delete it; replace the ACL', async (t) => {
  if (browser === undefined || svc === undefined) return t.skip(SKIP)
  const page = await login(keys.globex ?? '')
  try {
    await page.getByTestId('new-user').fill('carol')
    await page.getByTestId('new-password').fill('pw-c')
    await page.getByTestId('add-user').click()
    await page.getByTestId('user-carol').waitFor()
    const carol = await connectClient(svc.mqttPort, { clientId: 'carol-1', username: 'carol@globex', password: 'pw-c' })
    await carol.end()

    await page.getByTestId('delete-user-carol').click()
    await page.getByTestId('user-carol').waitFor({ state: 'detached' })
    assert.equal(
      await connectRefusal(svc.mqttPort, { clientId: 'carol-2', username: 'carol@globex', password: 'pw-c' }),
      4,
    )

    await page.getByTestId('acl-edit').click()
    await page.getByTestId('acl-json').fill('not json')
    await page.getByTestId('acl-save').click()
    assert.match(await page.getByTestId('acl-error').innerText(), /not valid JSON/)
    await page.getByTestId('acl-json').fill('[{ "allow": "all", "topic": "rooms/#" }, { "deny": "all", "topic": "#" }]')
    await page.getByTestId('acl-save').click()
    await page.getByTestId('acl-rules').getByText('- { deny: all, topic: "#" }').waitFor()
    assert.deepEqual((await api('/api/v1/tenants/globex/acl')).body, {
      rules: [
        { allow: 'all', topic: 'rooms/#' },
        { deny: 'all', topic: '#' },
      ],
    })
    // One rule per line, in the YAML view and in the editor.
    assert.deepEqual((await page.getByTestId('acl-rules').innerText()).split('\n'), [
      'acl:',
      '  - { allow: all, topic: "rooms/#" }',
      '  - { deny: all, topic: "#" }',
    ])
    await page.getByTestId('acl-edit').click()
    assert.deepEqual((await page.getByTestId('acl-json').inputValue()).split('\n'), [
      '[',
      '  {"allow":"all","topic":"rooms/#"},',
      '  {"deny":"all","topic":"#"}',
      ']',
    ])
    // A user's own rules too.
    const own = [
      { allow: 'publish', topic: 'a/#' },
      { deny: 'all', topic: '#' },
    ]
    assert.equal(
      (await api('/api/v1/tenants/globex/users/dave', { method: 'PUT', body: { password: 'pw-d', acl: own } })).status,
      201,
    )
    await page.reload()
    assert.deepEqual((await page.getByTestId('user-acl-dave').innerText()).split('\n'), [
      '- { allow: publish, topic: "a/#" }',
      '- { deny: all, topic: "#" }',
    ])
  } finally {
    await api('/api/v1/tenants/globex/acl', { method: 'PUT', body: { rules: null } })
    await api('/api/v1/tenants/globex/users/dave', { method: 'DELETE' })
    await page.close()
  }
})

test('a key revoked while logged in sends the page back to the login', async (t) => {
  if (browser === undefined) return t.skip(SKIP)
  const { id, key } = await newKey('globex')
  const page = await login(key)
  try {
    await page.getByTestId('tenant-id').waitFor()
    assert.equal((await api(`/api/v1/tenants/globex/keys/${id}`, { method: 'DELETE' })).status, 204)
    // The next poll (every 2 s) gets 401.
    await page.getByTestId('login-notice').waitFor()
    await page.getByTestId('token').waitFor()
  } finally {
    await page.close()
  }
})

test('operator view: every tenant; create a tenant; change a plan; disable and enable; open a tenant', async (t) => {
  if (browser === undefined) return t.skip(SKIP)
  const page = await login(OPERATOR_TOKEN)
  const plan = async (id: string): Promise<unknown> =>
    ((await api(`/api/v1/tenants/${id}`)).body as { plan: unknown }).plan
  try {
    assert.equal(await page.getByTestId('who').innerText(), 'operator')
    await page.getByTestId('tenant-acme').waitFor()
    await page.getByTestId('tenant-globex').waitFor()

    await page.getByTestId('new-tenant').fill('initech')
    await page.getByTestId('new-tenant-plan').selectOption('free')
    await page.getByTestId('create-tenant').click()
    await page.getByTestId('tenant-initech').waitFor()
    assert.equal(await plan('initech'), 'free')

    await page.getByTestId('plan-acme').selectOption('pro')
    // The row shows pro's limit once the PATCH is done and the list reloaded.
    await page
      .getByTestId('tenant-acme')
      .getByText(/\/ 100$/)
      .waitFor()
    assert.equal(await plan('acme'), 'pro')

    await page.getByTestId('toggle-initech').click()
    await page.getByTestId('tenant-initech').getByText('disabled').waitFor()
    assert.equal(((await api('/api/v1/tenants/initech')).body as { disabled: boolean }).disabled, true)
    await page.mouse.move(0, 0) // no hover highlight in the picture
    await page.screenshot({ path: join(SCREENSHOTS, 'ui-operator.png'), fullPage: true })
    await page.getByTestId('toggle-initech').click()
    await page.getByTestId('tenant-initech').getByText('active').waitFor()
    assert.equal(((await api('/api/v1/tenants/initech')).body as { disabled: boolean }).disabled, false)

    // A second create of the same ID is refused with the API's message.
    await page.getByTestId('new-tenant').fill('initech')
    await page.getByTestId('create-tenant').click()
    assert.match(await page.getByTestId('create-error').innerText(), /exists/)

    await page.getByTestId('open-globex').click()
    assert.equal(await page.getByTestId('tenant-id').innerText(), 'globex')
    await page.getByTestId('users').getByText('bob').waitFor()
    await page.getByTestId('back').click()
    await page.getByTestId('tenant-initech').waitFor()
  } finally {
    await page.close()
  }
})

test('a client with many long filters: the list counts them, its filters open a page at a time', async (t) => {
  if (browser === undefined || svc === undefined) return t.skip(SKIP)
  const device = await connectClient(svc.mqttPort, { clientId: 'busy', username: 'alice@acme', password: 'pw-a' })
  const filters = Array.from({ length: 250 }, (_, i) => `long/${String(i).padStart(3, '0')}/${'x'.repeat(500)}`)
  await device.client.subscribeAsync(filters)
  const page = await login(keys.acme ?? '')
  try {
    const row = page.getByTestId('client-busy')
    await row.waitFor()
    assert.ok(!(await row.innerText()).includes('xxxxxxxx'), 'no filter in the list')
    assert.equal(await page.getByTestId('subs-busy').innerText(), '250')
    await page.getByTestId('subs-busy').click()
    const box = page.getByTestId('filters-busy')
    await box.getByText('(100 of 250)').waitFor()
    assert.equal(await box.locator('code').count(), 100)
    await page.getByTestId('filters-next-busy').click()
    await box.getByText(`long/100/${'x'.repeat(500)}`).waitFor()
  } finally {
    device.client.end(true)
    await page.close()
  }
})

test('/favicon.ico is served', async () => {
  const icon = await api('/favicon.ico', { token: null })
  assert.equal(icon.status, 200)
  assert.match(icon.type, /^image\//)
})

test('no page made a request off the admin listener', (t) => {
  if (browser === undefined) return t.skip(SKIP)
  assert.deepEqual(external, [])
})
