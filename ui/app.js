// The admin web UI: one page, preact + htm, no build step. The token (operator token or a tenant API
// key) lives in sessionStorage only; every view reads the admin API with it, so a tenant key can never
// show more than the API gives it.
import { h, render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import htm from 'htm'
import uPlot from 'uplot'

const html = htm.bind(h)
const TOKEN_KEY = 'mtg-token'
const HOUR = 3600

/** Set while logged in: a 401 then means the token was revoked or rotated, so back to the login. */
let unauthorized = () => {}

async function api (path, { method = 'GET', body } = {}) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  const data = text === '' ? null : JSON.parse(text)
  if (res.status === 401) unauthorized()
  if (!res.ok) throw Object.assign(new Error(data?.message ?? res.statusText), { status: res.status })
  return data
}

const enc = encodeURIComponent
/** A hand-typed hash like `#/tenants/%` must give a not-found view, not a blank page. */
const safeDecode = (s) => { try { return decodeURIComponent(s) } catch { return s } }

/** Polls `load` every `ms` (0: once); re-runs when `deps` change. A failed poll keeps the last data, so a blip does not blank the page. */
function usePolled (load, ms, deps) {
  const [state, setState] = useState({ data: undefined, error: undefined })
  const [tick, setTick] = useState(0)
  useEffect(() => {
    let live = true
    load().then((data) => live && setState({ data, error: undefined }), (error) => live && setState((s) => ({ data: s.data, error })))
    const t = ms > 0 ? setTimeout(() => setTick((n) => n + 1), ms) : undefined
    return () => { live = false; clearTimeout(t) }
  }, [...deps, tick])
  return [state, () => setTick((n) => n + 1)]
}

/** Runs a user's action, keeping its error to show next to the control that caused it. */
function useAction (after) {
  const [error, setError] = useState('')
  const run = async (fn) => {
    try { await fn(); setError(''); after?.() } catch (err) { setError(err.message) }
  }
  return [error, run]
}

const fmt = (n) => typeof n === 'number' ? n.toLocaleString('en') : String(n ?? '—')
/** Every time on the page is UTC, as the usage table's hours are: `2026-11-25 12:33:56`. */
const utc = (iso) => iso.slice(0, 19).replace('T', ' ')
const Err = ({ text, id }) => text !== '' && text !== undefined ? html`<div class="error" data-testid=${id}>${text}</div>` : null
const Status = ({ disabled }) => disabled ? html`<span class="pill off">disabled</span>` : html`<span class="pill">active</span>`

function Login ({ onLogin, notice }) {
  const [token, setToken] = useState('')
  const [error, setError] = useState('')
  const submit = async (e) => {
    e.preventDefault()
    sessionStorage.setItem(TOKEN_KEY, token.trim())
    try {
      await api('/tenants')
      onLogin()
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY)
      setError(err.status === 401 ? 'This token or key is not valid.' : err.message)
    }
  }
  return html`<section class="login">
    <h2>mqtt-tenant-gateway</h2>
    ${notice !== '' && error === '' && html`<p class="muted" data-testid="login-notice">${notice}</p>`}
    <form onSubmit=${submit}>
      <label for="token">Operator token or tenant API key</label>
      <input id="token" data-testid="token" type="password" autocomplete="off" value=${token} onInput=${(e) => setToken(e.target.value)} />
      <button class="primary" data-testid="login" type="submit">Log in</button>
      <${Err} text=${error} id="login-error" />
    </form>
  </section>`
}

/** `now / max` with a bar, or just `now` when unlimited. */
function Use ({ label, now, max, id }) {
  const pct = max === undefined ? 0 : Math.min(100, max === 0 ? 100 : (now / max) * 100)
  return html`<div data-testid=${id}>
    <span>${label}</span>${fmt(now)}${max === undefined ? html` <span class="muted inline">/ unlimited</span>` : ` / ${fmt(max)}`}
    ${max !== undefined && html`<div class=${`bar${pct >= 90 ? ' full' : ''}`}><i style=${`width:${pct}%`}></i></div>`}
  </div>`
}

function Limits ({ t }) {
  const { maxConnections, maxSubscriptions, ...rest } = t.effectiveLimits
  return html`<section data-testid="limits">
    <h2>Limits and current use</h2>
    <div class="grid">
      <${Use} label="connections" now=${t.connections} max=${maxConnections} id="use-connections" />
      <${Use} label="subscriptions" now=${t.subscriptions} max=${maxSubscriptions} id="use-subscriptions" />
      ${Object.entries(rest).map(([k, v]) => html`<div><span>${k}</span>${String(v)}</div>`)}
    </div>
  </section>`
}

/** host:port, IPv6 in brackets; the address alone when the port is unknown (0: behind an HTTP proxy). */
function addressText (address, port) {
  const host = address.includes(':') ? `[${address}]` : address
  return port === 0 ? address : `${host}:${port}`
}

/** One client's filters, a page at a time from their own route: a client may hold thousands. */
function Filters ({ tenant, clientId }) {
  const [after, setAfter] = useState(undefined)
  const query = after === undefined ? '' : `?after=${enc(after)}`
  const path = `/tenants/${enc(tenant)}/clients/${enc(clientId)}/subscriptions${query}`
  const [{ data, error }] = usePolled(() => api(path), 0, [tenant, clientId, after])
  return html`<div class="filters" data-testid=${`filters-${clientId}`}>
    <${Err} text=${error?.message} />
    ${(data?.subscriptions ?? []).map((f) => html`<code class="tag">${f}</code> `)}
    ${data !== undefined && data.total > data.subscriptions.length && html`<span class="muted">
      (${fmt(data.subscriptions.length)} of ${fmt(data.total)})</span>`}
    ${after !== undefined && html` <button onClick=${() => setAfter(undefined)}>first</button>`}
    ${data?.next != null && html` <button data-testid=${`filters-next-${clientId}`} onClick=${() => setAfter(data.next)}>next</button>`}
  </div>`
}

const CLIENT_COLUMNS = [
  'client ID', 'user', 'address', 'listener', 'protocol', 'since (UTC)', 'subscriptions',
  ['msgs in', 'num'], ['msgs out', 'num'], ['bytes in', 'num'], ['bytes out', 'num'], '',
]

function ClientRow ({ c, tenant, kick }) {
  const [open, setOpen] = useState(false)
  const id = c.clientId
  return html`<tr data-testid=${`client-${id}`}>
      <td><code>${id}</code></td><td>${c.username ?? '—'}</td>
      <td data-testid=${`address-${id}`}>${addressText(c.remoteAddress, c.remotePort)}</td>
      <td>${c.listener}</td><td>${c.protocol}</td><td>${utc(c.connectedAt)}</td>
      <td><button class="link" data-testid=${`subs-${id}`} disabled=${c.subscriptions === 0}
        onClick=${() => setOpen(!open)}>${fmt(c.subscriptions)}</button></td>
      <td class="num">${fmt(c.messagesIn)}</td><td class="num">${fmt(c.messagesOut)}</td>
      <td class="num">${fmt(c.bytesIn)}</td><td class="num">${fmt(c.bytesOut)}</td>
      <td class="act"><button class="danger" data-testid=${`kick-${id}`} onClick=${() => kick(id)}>Kick</button></td>
    </tr>
    ${open && html`<tr><td colspan="12"><${Filters} tenant=${tenant} clientId=${id} /></td></tr>`}`
}

/** The tenant's clients a page at a time (the API's), each with its subscriptions counted. */
function Clients ({ tenant }) {
  const [after, setAfter] = useState(undefined)
  const query = after === undefined ? '' : `?after=${enc(after)}`
  const [{ data, error }, reload] = usePolled(() => api(`/tenants/${enc(tenant)}/clients${query}`), 2000, [tenant, after])
  const [actionError, run] = useAction(reload)
  const kick = (clientId) => run(() => api(`/tenants/${enc(tenant)}/clients/${enc(clientId)}`, { method: 'DELETE' }))
  const clients = data?.clients ?? []
  return html`<section data-testid="clients">
    <h2>Connected clients ${data !== undefined && html`<span class="muted" data-testid="clients-count">(${fmt(data.total)})</span>`}</h2>
    <${Err} text=${error?.message} /><${Err} text=${actionError} />
    <table>
      <thead><tr>${CLIENT_COLUMNS.map((c) => Array.isArray(c) ? html`<th class=${c[1]}>${c[0]}</th>` : html`<th>${c}</th>`)}</tr></thead>
      <tbody>
        ${clients.map((c) => html`<${ClientRow} key=${c.clientId} c=${c} tenant=${tenant} kick=${kick} />`)}
        ${data?.total === 0 && html`<tr><td colspan="12" class="muted" data-testid="no-clients">No client connected.</td></tr>`}
      </tbody>
    </table>
    ${(after !== undefined || data?.next != null) && html`<div class="inline">
      <span class="muted">${fmt(clients.length)} of ${fmt(data?.total)}</span>
      ${after !== undefined && html`<button data-testid="clients-first" onClick=${() => setAfter(undefined)}>first page</button>`}
      ${data?.next != null && html`<button data-testid="clients-next" onClick=${() => setAfter(data.next)}>next page</button>`}
    </div>`}
  </section>`
}

/** One rule as it is written in the YAML config. */
const ruleYaml = (r) => `- { ${'allow' in r ? 'allow' : 'deny'}: ${r.allow ?? r.deny}, topic: ${JSON.stringify(r.topic)} }`

function Users ({ tenant }) {
  const [{ data }, reload] = usePolled(() => api(`/tenants/${enc(tenant)}/users`), 0, [tenant])
  const [name, setName] = useState('')
  const [password, setPassword] = useState('')
  const [error, run] = useAction(reload)
  const add = (e) => {
    e.preventDefault()
    run(async () => {
      await api(`/tenants/${enc(tenant)}/users/${enc(name.trim())}`, { method: 'PUT', body: { password } })
      setName(''); setPassword('')
    })
  }
  const remove = (u) => run(() => api(`/tenants/${enc(tenant)}/users/${enc(u)}`, { method: 'DELETE' }))
  return html`<section data-testid="users">
    <h2>Users ${data !== undefined && html`<span class="muted">(${data.length})</span>`}</h2>
    <table class="compact"><tbody>
      ${(data ?? []).map((u) => html`<tr key=${u.username} data-testid=${`user-${u.username}`}>
        <td><code>${u.username}</code></td>
        <td class="muted">${u.acl === null || u.acl.length === 0
          ? (u.acl === null ? 'tenant ACL' : 'no own ACL rules')
          : html`<pre class="yaml rules" data-testid=${`user-acl-${u.username}`}>${u.acl.map(ruleYaml).join('\n')}</pre>`}</td>
        <td class="act"><button class="danger" data-testid=${`delete-user-${u.username}`} onClick=${() => remove(u.username)}>Delete</button></td>
      </tr>`)}
      ${data?.length === 0 && html`<tr><td class="muted">No users.</td></tr>`}
    </tbody></table>
    <form class="inline" onSubmit=${add}>
      <input placeholder="username" data-testid="new-user" required value=${name} onInput=${(e) => setName(e.target.value)} />
      <input placeholder="password" type="password" autocomplete="new-password" data-testid="new-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} />
      <button type="submit" data-testid="add-user">Add or replace user</button>
    </form>
    <${Err} text=${error} id="users-error" />
  </section>`
}


/**
 * The rules as the YAML writes them, one per line. Built as one string: htm drops a newline written in
 * a template's static text, which once put the first rule on the `acl:` line.
 */
const aclYaml = (rules) => ['acl:', ...rules.map((r) => `  ${ruleYaml(r)}`)].join('\n')

/** Rules as a JSON array for editing, one rule per line like the YAML view. */
const rulesJson = (rules) => rules.length === 0 ? '[]' : `[\n${rules.map((r) => `  ${JSON.stringify(r)}`).join(',\n')}\n]`

function Acl ({ tenant }) {
  const [{ data }, reload] = usePolled(() => api(`/tenants/${enc(tenant)}/acl`), 0, [tenant])
  const [draft, setDraft] = useState(undefined)
  const [error, run] = useAction(reload)
  const save = () => run(async () => {
    let rules
    try { rules = JSON.parse(draft) } catch { throw new Error('not valid JSON: expected an array of { "allow"|"deny": …, "topic": … }, or null') }
    await api(`/tenants/${enc(tenant)}/acl`, { method: 'PUT', body: { rules } })
    setDraft(undefined)
  })
  return html`<section data-testid="acl">
    <h2>ACL <span class="muted">(first match wins; a user's own rules come first)</span></h2>
    ${data?.rules === null
      ? html`<p class="muted" data-testid="acl-none">No tenant rules: everything inside the tenant's namespace is allowed unless a user has rules.</p>`
      : data !== undefined && html`<pre class="yaml" data-testid="acl-rules">${aclYaml(data.rules)}</pre>`}
    ${draft === undefined
      ? html`<button data-testid="acl-edit" onClick=${() => setDraft(rulesJson(data?.rules ?? []))}>Edit as JSON</button>`
      : html`<textarea data-testid="acl-json" value=${draft} onInput=${(e) => setDraft(e.target.value)} />
        <div class="inline"><button class="primary" data-testid="acl-save" onClick=${save}>Save</button><button onClick=${() => setDraft(undefined)}>Cancel</button></div>`}
    <${Err} text=${error} id="acl-error" />
  </section>`
}

/** Every hour of the last day, zeros where nothing was recorded, so one busy hour is a step in a day rather than a lone dot. */
function hourly (rows) {
  const end = Math.floor(Date.now() / 1000 / HOUR) * HOUR
  const byHour = new Map(rows.map((r) => [Date.parse(r.hour) / 1000, r]))
  const cols = [[], [], [], []]
  // One point past the current hour closes its step.
  for (let x = end - 24 * HOUR; x <= end + HOUR; x += HOUR) {
    const r = byHour.get(x)
    cols[0].push(x); cols[1].push(r?.messagesIn ?? 0); cols[2].push(r?.messagesOut ?? 0); cols[3].push(r?.sessionMinutes ?? 0)
  }
  return cols
}

/** Counts start at 0 and end a little above the highest hour, at a round number; an empty day still has an axis. */
const fromZero = (_u, _min, max) => uPlot.rangeNum(0, max > 0 ? max : 1, 0.1, true)

function UsageChart ({ rows }) {
  const el = useRef(null)
  useEffect(() => {
    if (el.current === null) return
    const step = uPlot.paths.stepped({ align: 1 })
    const plot = new uPlot({
      width: el.current.clientWidth || 900, height: 220,
      // The hours are UTC in the table below and in the API: the axis says the same hours.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
      legend: { live: false },
      cursor: { points: { show: false } },
      series: [
        {},
        { label: 'messages in', stroke: '#2f6fed', fill: 'rgba(47,111,237,.10)', width: 2, paths: step, points: { show: false } },
        { label: 'messages out', stroke: '#16a37b', width: 2, paths: step, points: { show: false } },
        { label: 'session-minutes', stroke: '#d98a1c', width: 2, dash: [6, 4], scale: 'min', paths: step, points: { show: false } },
      ],
      scales: { y: { range: fromZero }, min: { range: fromZero } },
      axes: [{ label: 'hour (UTC)' }, { label: 'messages per hour', size: 60 }, { scale: 'min', side: 1, label: 'session-minutes per hour', size: 60, grid: { show: false } }],
    }, hourly(rows), el.current)
    return () => plot.destroy()
  }, [rows])
  return html`<div ref=${el} class="chart" data-testid="usage-chart"></div>`
}

function Usage ({ tenant }) {
  const [{ data }] = usePolled(() => api(`/tenants/${enc(tenant)}/usage`), 10_000, [tenant])
  const rows = data?.rows ?? []
  return html`<section data-testid="usage">
    <h2>Usage, last 24 hours <span class="muted">(per hour)</span></h2>
    ${data !== undefined && html`<${UsageChart} rows=${rows} />`}
    ${data !== undefined && rows.length === 0 && html`<p class="muted">No usage recorded yet.</p>`}
    ${rows.length > 0 && html`<table data-testid="usage-table">
      <thead><tr><th>hour (UTC)</th><th class="num">session-minutes</th><th class="num">msgs in</th><th class="num">msgs out</th><th class="num">bytes in</th><th class="num">bytes out</th><th class="num">peak conns</th><th class="num">limit hits</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.hour}><td>${r.hour.slice(0, 13).replace('T', ' ')}:00</td><td class="num">${fmt(r.sessionMinutes)}</td><td class="num">${fmt(r.messagesIn)}</td><td class="num">${fmt(r.messagesOut)}</td><td class="num">${fmt(r.bytesIn)}</td><td class="num">${fmt(r.bytesOut)}</td><td class="num">${fmt(r.peakConnections)}</td><td class="num">${fmt(r.limitHits)}</td></tr>`)}</tbody>
    </table>`}
  </section>`
}

function TenantView ({ tenant, operator }) {
  const [{ data: t, error }] = usePolled(() => api(`/tenants/${enc(tenant)}`), 2000, [tenant])
  const back = html`<p><a href="#/" data-testid="back">${operator ? '← all tenants' : '← your tenant'}</a></p>`
  // Unknown and foreign tenants both answer 404, and look the same here: nothing of them is shown.
  if (error?.status === 404) {
    return html`${back}<section data-testid="not-found"><h2>Tenant not found</h2><p class="muted">There is no such tenant, or this key may not see it.</p></section>`
  }
  if (t === undefined) return html`<p class="muted">Loading…</p><${Err} text=${error?.message} />`
  return html`
    ${operator && back}
    <${Err} text=${error?.message} />
    <section data-testid="tenant" class="head">
      <h2>Tenant <code data-testid="tenant-id">${t.id}</code> <${Status} disabled=${t.disabled} /></h2>
      <div class="grid">
        <div><span>plan</span><b data-testid="tenant-plan">${t.plan ?? 'none'}</b></div>
        <div><span>users</span>${fmt(t.users)}</div>
        <div><span>hosts</span>${t.hosts.length > 0 ? t.hosts.join(', ') : '—'}</div>
        <div><span>settings from</span>${t.source}${t.changed.length > 0 ? ` (${t.changed.join(', ')})` : ''}</div>
      </div>
    </section>
    <${Limits} t=${t} />
    <${Clients} tenant=${t.id} />
    <${Usage} tenant=${t.id} />
    <div class="cols">
      <${Users} tenant=${t.id} />
      <${Acl} tenant=${t.id} />
    </div>`
}

const limitsText = (limits) => Object.entries(limits).map(([k, v]) => `${k} ${v}`).join(', ') || 'unlimited'

function TenantsView () {
  const [{ data, error }, reload] = usePolled(() => api('/tenants'), 3000, [])
  const [{ data: planList }] = usePolled(() => api('/plans'), 0, [])
  const [{ data: usage }] = usePolled(() => api('/usage'), 10_000, [])
  const [id, setId] = useState('')
  const [plan, setPlan] = useState('')
  const [formError, runForm] = useAction(reload)
  const [rowError, runRow] = useAction(reload)
  const plans = (planList ?? []).map((p) => p.name)
  const create = (e) => {
    e.preventDefault()
    runForm(async () => {
      await api('/tenants', { method: 'POST', body: { id: id.trim(), ...(plan !== '' ? { plan } : {}) } })
      setId('')
    })
  }
  const patch = (tenant, body) => runRow(() => api(`/tenants/${enc(tenant)}`, { method: 'PATCH', body }))
  const totals = {}
  for (const r of usage?.rows ?? []) {
    const t = (totals[r.tenant] ??= { messages: 0, minutes: 0 })
    t.messages += r.messagesIn + r.messagesOut
    t.minutes += r.sessionMinutes
  }
  const use = (now, max) => max === undefined ? fmt(now) : `${fmt(now)} / ${fmt(max)}`
  return html`<section data-testid="tenants">
    <h2>Tenants ${data !== undefined && html`<span class="muted">(${data.length})</span>`}</h2>
    <${Err} text=${error?.message} /><${Err} text=${rowError} id="tenants-error" />
    <table>
      <thead><tr><th>tenant</th><th>plan</th><th>status</th><th class="num">connections</th><th class="num">subscriptions</th><th class="num">users</th><th class="num">messages 24 h</th><th class="num">session-min 24 h</th><th>settings from</th><th></th></tr></thead>
      <tbody>${(data ?? []).map((t) => html`<tr key=${t.id} data-testid=${`tenant-${t.id}`}>
        <td><a href=${`#/tenants/${enc(t.id)}`} data-testid=${`open-${t.id}`}>${t.id}</a></td>
        <td><select data-testid=${`plan-${t.id}`} value=${t.plan ?? ''} onChange=${(e) => patch(t.id, { plan: e.target.value === '' ? null : e.target.value })}>
          <option value="">none</option>${plans.map((p) => html`<option value=${p}>${p}</option>`)}
        </select></td>
        <td><${Status} disabled=${t.disabled} /></td>
        <td class="num">${use(t.connections, t.effectiveLimits.maxConnections)}</td><td class="num">${use(t.subscriptions, t.effectiveLimits.maxSubscriptions)}</td><td class="num">${fmt(t.users)}</td>
        <td class="num">${fmt(totals[t.id]?.messages ?? 0)}</td><td class="num">${fmt(Math.round((totals[t.id]?.minutes ?? 0) * 100) / 100)}</td><td>${t.source}</td>
        <td class="act"><button data-testid=${`toggle-${t.id}`} onClick=${() => patch(t.id, { disabled: !t.disabled })}>${t.disabled ? 'Enable' : 'Disable'}</button></td>
      </tr>`)}</tbody>
    </table>
    <form class="inline" onSubmit=${create}>
      <input placeholder="new tenant ID (a-z, 0-9, -)" data-testid="new-tenant" required value=${id} onInput=${(e) => setId(e.target.value)} />
      <select data-testid="new-tenant-plan" value=${plan} onChange=${(e) => setPlan(e.target.value)}><option value="">no plan</option>${plans.map((p) => html`<option value=${p}>${p}</option>`)}</select>
      <button class="primary" data-testid="create-tenant" type="submit">Create tenant</button>
    </form>
    <${Err} text=${formError} id="create-error" />
    ${plans.length > 0 && html`<h3>Plans</h3><ul class="plans" data-testid="plans">${planList.map((p) => html`<li><b>${p.name}</b> <span class="muted">${limitsText(p.limits)}</span></li>`)}</ul>`}
  </section>`
}

/** A tenant key's own tenant (from /tenants), or the tenant named in the route. */
function OwnTenant ({ operator, tenant }) {
  const [{ data, error }] = usePolled(() => tenant !== undefined ? Promise.resolve(tenant) : api('/tenants').then((list) => list[0]?.id), 0, [tenant])
  if (data === undefined) return html`<p class="muted">Loading…</p><${Err} text=${error?.message} />`
  // Keyed by tenant: moving to another tenant starts from empty state, never showing the previous one's data.
  return html`<${TenantView} key=${data} tenant=${data} operator=${operator} />`
}

function App () {
  const [token, setToken] = useState(sessionStorage.getItem(TOKEN_KEY))
  const [notice, setNotice] = useState('')
  const [route, setRoute] = useState(location.hash)
  useEffect(() => {
    const on = () => setRoute(location.hash)
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  useEffect(() => {
    if (token === null) return
    unauthorized = () => { sessionStorage.removeItem(TOKEN_KEY); setNotice('Logged out: the token or key is no longer valid.'); setToken(null) }
    return () => { unauthorized = () => {} }
  }, [token])
  if (token === null) return html`<${Login} notice=${notice} onLogin=${() => { setNotice(''); setToken(sessionStorage.getItem(TOKEN_KEY)) }} />`
  // Tenant keys are `mtg_…`; anything else that logged in is the operator token.
  const operator = !token.startsWith('mtg_')
  const logout = () => { sessionStorage.removeItem(TOKEN_KEY); location.hash = ''; setToken(null) }
  const m = /^#\/tenants\/([^/]+)$/.exec(route)
  const tenant = m?.[1] === undefined ? undefined : safeDecode(m[1])
  return html`
    <header><h1><a href="#/">mqtt-tenant-gateway</a></h1><span class="who" data-testid="who">${operator ? 'operator' : 'tenant key'}</span><button data-testid="logout" onClick=${logout}>Log out</button></header>
    <main>
      ${operator && tenant === undefined ? html`<${TenantsView} />` : html`<${OwnTenant} operator=${operator} tenant=${tenant} />`}
    </main>`
}

render(html`<${App} />`, document.getElementById('app'))
