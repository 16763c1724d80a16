// The web UI in a real browser (Debian's Chromium driven by playwright-core) against the real gateway:
// a tenant logs in with its key, sees its connected device and kicks it; another tenant's key shows
// nothing of the first; the operator sees every tenant, creates one and changes a plan. Screenshots of
// each view are kept in docs/.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import { adminYaml, OPERATOR_TOKEN, startTestService, type TestService } from './helpers/service.js'
import { connectClient } from './helpers/clients.js'
import { nextEvent } from './helpers/events.js'

const CHROMIUM = '/usr/bin/chromium'
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

let svc: TestService
let browser: Browser | undefined
const keys: Record<string, string> = {}

before(async () => {
  svc = await startTestService(adminYaml('embedded', TENANTS, { flush: '1s' }))
  for (const t of ['acme', 'globex']) {
    const res = await svc.api(`/api/v1/tenants/${t}/keys`, { method: 'POST', body: { label: 'ui test' } })
    keys[t] = (res.body as { key: string }).key
  }
  if (existsSync(CHROMIUM)) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  }
})
after(async () => { await browser?.close(); await svc?.close() })

async function login (token: string): Promise<Page> {
  if (browser === undefined) throw new Error('no browser')
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  await page.goto(svc.adminUrl + '/')
  await page.getByTestId('token').fill(token)
  await page.getByTestId('login').click()
  await page.getByTestId('who').waitFor()
  return page
}

test('login: a wrong token is refused with a message', async (t) => {
  if (browser === undefined) return t.skip(`${CHROMIUM} not installed (apt-get install chromium)`)
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  await page.goto(svc.adminUrl + '/')
  await page.getByTestId('token').fill('not-a-token')
  await page.getByTestId('login').click()
  assert.match(await page.getByTestId('login-error').innerText(), /not valid/)
  await page.screenshot({ path: 'docs/ui-login.png' })
  await page.close()
})

test('tenant view: the device is listed live with its subscription; Kick disconnects it', async (t) => {
  if (browser === undefined) return t.skip(`${CHROMIUM} not installed (apt-get install chromium)`)
  const device = await connectClient(svc.mqttPort, { clientId: 'sensor-1', username: 'alice@acme', password: 'pw-a' })
  await device.client.subscribeAsync('rooms/+/temp')
  for (let i = 0; i < 5; i++) await device.client.publishAsync('rooms/kitchen/temp', `${20 + i}`, { qos: 1 })
  await new Promise((resolve) => setTimeout(resolve, 1200)) // one usage flush, so the chart has a point
  const page = await login(keys.acme ?? '')
  try {
    assert.equal(await page.getByTestId('tenant-id').innerText(), 'acme')
    const row = page.getByTestId('client-sensor-1')
    await row.waitFor()
    assert.match(await row.innerText(), /rooms\/\+\/temp/)
    assert.match(await row.innerText(), /alice/)
    await page.getByTestId('usage-chart').locator('canvas').waitFor()
    await page.screenshot({ path: 'docs/ui-tenant.png', fullPage: true })
    const closed = nextEvent(device.client, 'close')
    await page.getByTestId('kick-sensor-1').click()
    await closed
    await row.waitFor({ state: 'detached' })
  } finally {
    device.client.end(true)
    await page.close()
  }
})

test("another tenant's key shows nothing of acme, even when the page is pointed at acme", async (t) => {
  if (browser === undefined) return t.skip(`${CHROMIUM} not installed (apt-get install chromium)`)
  const device = await connectClient(svc.mqttPort, { clientId: 'sensor-1', username: 'alice@acme', password: 'pw-a' })
  const page = await login(keys.globex ?? '')
  try {
    assert.equal(await page.getByTestId('tenant-id').innerText(), 'globex')
    await page.getByTestId('users').getByText('bob').waitFor()
    for (const secret of ['acme', 'sensor-1', 'alice']) assert.ok(!(await page.innerText('body')).includes(secret), `globex sees "${secret}"`)
    await page.goto(svc.adminUrl + '/#/tenants/acme')
    await page.getByTestId('not-found').waitFor()
    const text = await page.innerText('body')
    for (const secret of ['sensor-1', 'alice', 'free']) assert.ok(!text.includes(secret), `globex sees "${secret}" on acme's route`)
  } finally {
    await device.end()
    await page.close()
  }
})

test('operator view: every tenant; create a tenant; change a plan', async (t) => {
  if (browser === undefined) return t.skip(`${CHROMIUM} not installed (apt-get install chromium)`)
  const page = await login(OPERATOR_TOKEN)
  try {
    await page.getByTestId('tenant-acme').waitFor()
    await page.getByTestId('tenant-globex').waitFor()
    await page.getByTestId('new-tenant').fill('initech')
    await page.getByTestId('new-tenant-plan').selectOption('free')
    await page.getByTestId('create-tenant').click()
    await page.getByTestId('tenant-initech').waitFor()
    assert.equal(((await svc.api('/api/v1/tenants/initech')).body as { plan: string }).plan, 'free')

    await page.getByTestId('plan-acme').selectOption('pro')
    for (let i = 0; i < 50; i++) {
      if (((await svc.api('/api/v1/tenants/acme')).body as { plan: string }).plan === 'pro') break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.equal(((await svc.api('/api/v1/tenants/acme')).body as { plan: string }).plan, 'pro')
    await page.getByTestId('tenant-acme').getByText('0 / 100').waitFor() // the page shows pro's limit
    await page.screenshot({ path: 'docs/ui-operator.png', fullPage: true })
    await page.getByTestId('open-globex').click()
    assert.equal(await page.getByTestId('tenant-id').innerText(), 'globex')
  } finally {
    await page.close()
  }
})
