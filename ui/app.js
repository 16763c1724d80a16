// The admin web UI: one page, preact + htm, no build step. The token (operator token or a tenant API
// key) lives in sessionStorage only; every view reads the admin API with it, so a tenant key can never
// show more than the API gives it.
import { h, render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import htm from 'htm'
import uPlot from 'uplot'

const html = htm.bind(h)
const TOKEN_KEY = 'mtg-token'

async function api (path, { method = 'GET', body } = {}) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  const data = text === '' ? null : JSON.parse(text)
  if (!res.ok) throw Object.assign(new Error(data?.message ?? res.statusText), { status: res.status })
  return data
}

/** Polls `load` every `ms` (0: once); re-runs when `deps` change. */
function usePolled (load, ms, deps) {
  const [state, setState] = useState({ data: undefined, error: undefined })
  const [tick, setTick] = useState(0)
  useEffect(() => {
    let live = true
    load().then((data) => live && setState({ data, error: undefined }), (error) => live && setState({ data: undefined, error }))
    const t = ms > 0 ? setTimeout(() => setTick((n) => n + 1), ms) : undefined
    return () => { live = false; clearTimeout(t) }
  }, [...deps, tick])
  return [state, () => setTick((n) => n + 1)]
}

const fmt = (n) => typeof n === 'number' ? n.toLocaleString('en') : String(n ?? '—')
const since = (iso) => new Date(iso).toLocaleTimeString()

function Login ({ onLogin }) {
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
    <form onSubmit=${submit}>
      <label for="token">Operator token or tenant API key</label>
      <input id="token" data-testid="token" type="password" autocomplete="off" value=${token} onInput=${(e) => setToken(e.target.value)} />
      <button class="primary" data-testid="login" type="submit">Log in</button>
      ${error !== '' && html`<div class="error" data-testid="login-error">${error}</div>`}
    </form>
  </section>`
}

function Clients ({ tenant }) {
  const [{ data, error }, reload] = usePolled(() => api(`/tenants/${tenant}/clients`), 2000, [tenant])
  const kick = async (clientId) => { await api(`/tenants/${tenant}/clients/${encodeURIComponent(clientId)}`, { method: 'DELETE' }); reload() }
  return html`<section data-testid="clients">
    <h2>Connected clients ${data !== undefined && html`<span class="muted">(${data.length})</span>`}</h2>
    ${error !== undefined && html`<div class="error">${error.message}</div>`}
    <table>
      <thead><tr><th>client ID</th><th>user</th><th>address</th><th>protocol</th><th>since</th><th>subscriptions</th><th class="num">msgs in</th><th class="num">msgs out</th><th class="num">bytes in</th><th class="num">bytes out</th><th></th></tr></thead>
      <tbody>
        ${(data ?? []).map((c) => html`<tr data-testid=${`client-${c.clientId}`}>
          <td><code>${c.clientId}</code></td><td>${c.username ?? '—'}</td><td>${c.remoteAddress}:${c.remotePort}</td><td>${c.protocol}</td>
          <td>${since(c.connectedAt)}</td><td>${c.subscriptions.map((s) => html`<code>${s}</code> `)}</td>
          <td class="num">${fmt(c.messagesIn)}</td><td class="num">${fmt(c.messagesOut)}</td><td class="num">${fmt(c.bytesIn)}</td><td class="num">${fmt(c.bytesOut)}</td>
          <td><button class="danger" data-testid=${`kick-${c.clientId}`} onClick=${() => kick(c.clientId)}>Kick</button></td>
        </tr>`)}
        ${data?.length === 0 && html`<tr><td colspan="11" class="muted">No client connected.</td></tr>`}
      </tbody>
    </table>
  </section>`
}

function Users ({ tenant }) {
  const [{ data }, reload] = usePolled(() => api(`/tenants/${tenant}/users`), 0, [tenant])
  const [name, setName] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState('')
  const add = async (e) => {
    e.preventDefault()
    try {
      await api(`/tenants/${tenant}/users/${encodeURIComponent(name)}`, { method: 'PUT', body: { password } })
      setName(''); setPassword(''); setError(''); reload()
    } catch (err) { setError(err.message) }
  }
  const remove = async (u) => { await api(`/tenants/${tenant}/users/${encodeURIComponent(u)}`, { method: 'DELETE' }); reload() }
  return html`<section data-testid="users">
    <h2>Users</h2>
    <table><tbody>
      ${(data ?? []).map((u) => html`<tr data-testid=${`user-${u.username}`}><td><code>${u.username}</code></td><td class="muted">${u.acl === null ? 'tenant ACL' : `${u.acl.length} own ACL rules`}</td><td><button class="danger" onClick=${() => remove(u.username)}>Delete</button></td></tr>`)}
    </tbody></table>
    <form class="inline" onSubmit=${add}>
      <input placeholder="username" data-testid="new-user" value=${name} onInput=${(e) => setName(e.target.value)} />
      <input placeholder="password" type="password" data-testid="new-password" value=${password} onInput=${(e) => setPassword(e.target.value)} />
      <button type="submit">Add or replace user</button>
      ${error !== '' && html`<span class="error">${error}</span>`}
    </form>
  </section>`
}

const ruleText = (r) => `${'allow' in r ? 'allow' : 'deny'} ${r.allow ?? r.deny} ${r.topic}`

function Acl ({ tenant }) {
  const [{ data }, reload] = usePolled(() => api(`/tenants/${tenant}/acl`), 0, [tenant])
  const [draft, setDraft] = useState(undefined)
  const [error, setError] = useState('')
  const save = async () => {
    try {
      await api(`/tenants/${tenant}/acl`, { method: 'PUT', body: { rules: JSON.parse(draft) } })
      setDraft(undefined); setError(''); reload()
    } catch (err) { setError(err.message) }
  }
  return html`<section data-testid="acl">
    <h2>ACL <span class="muted">(first match wins; user rules first)</span></h2>
    ${data?.rules === null ? html`<p class="muted">No tenant rules: everything inside the tenant's namespace is allowed unless a user has rules.</p>`
      : html`<ol>${(data?.rules ?? []).map((r) => html`<li><code>${ruleText(r)}</code></li>`)}</ol>`}
    ${draft === undefined
      ? html`<button onClick=${() => setDraft(JSON.stringify(data?.rules ?? [], null, 2))}>Edit</button>`
      : html`<textarea value=${draft} onInput=${(e) => setDraft(e.target.value)} /><div class="inline"><button class="primary" onClick=${save}>Save</button> <button onClick=${() => setDraft(undefined)}>Cancel</button></div>`}
    ${error !== '' && html`<div class="error">${error}</div>`}
  </section>`
}

function UsageChart ({ rows }) {
  const el = useRef(null)
  useEffect(() => {
    if (el.current === null || rows.length === 0) return
    const xs = rows.map((r) => Date.parse(r.hour) / 1000)
    const now = Date.now() / 1000
    const plot = new uPlot({
      width: Math.min(1100, el.current.clientWidth || 900), height: 220,
      // Always the last 24 hours, so one hour of data is a point in a day, not a point in a decade.
      scales: { x: { time: true, range: () => [now - 24 * 3600, now + 3600] } },
      series: [{}, { label: 'messages in', stroke: '#2f6fed' }, { label: 'messages out', stroke: '#16a37b' }, { label: 'session-minutes', stroke: '#d98a1c', scale: 'min' }],
      axes: [{}, { label: 'messages' }, { scale: 'min', side: 1, label: 'minutes', grid: { show: false } }],
    }, [xs, rows.map((r) => r.messagesIn), rows.map((r) => r.messagesOut), rows.map((r) => r.sessionMinutes)], el.current)
    return () => plot.destroy()
  }, [rows])
  return html`<div ref=${el} data-testid="usage-chart"></div>`
}

function Usage ({ tenant }) {
  const [{ data }] = usePolled(() => api(`/tenants/${tenant}/usage`), 10_000, [tenant])
  const rows = data?.rows ?? []
  return html`<section data-testid="usage">
    <h2>Usage, last 24 hours <span class="muted">(per hour, UTC)</span></h2>
    ${rows.length === 0 ? html`<p class="muted">No usage recorded yet.</p>` : html`<${UsageChart} rows=${rows} />`}
    <table>
      <thead><tr><th>hour</th><th class="num">session-minutes</th><th class="num">msgs in</th><th class="num">msgs out</th><th class="num">bytes in</th><th class="num">bytes out</th><th class="num">peak conns</th><th class="num">limit hits</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr><td>${new Date(r.hour).toISOString().slice(0, 13).replace('T', ' ')}:00</td><td class="num">${fmt(r.sessionMinutes)}</td><td class="num">${fmt(r.messagesIn)}</td><td class="num">${fmt(r.messagesOut)}</td><td class="num">${fmt(r.bytesIn)}</td><td class="num">${fmt(r.bytesOut)}</td><td class="num">${fmt(r.peakConnections)}</td><td class="num">${fmt(r.limitHits)}</td></tr>`)}</tbody>
    </table>
  </section>`
}

function TenantView ({ tenant, operator }) {
  const [{ data: t, error }] = usePolled(() => api(`/tenants/${encodeURIComponent(tenant)}`), 2000, [tenant])
  if (error !== undefined) {
    return html`<section data-testid="not-found"><h2>Tenant not found</h2><p class="muted">${error.message}</p>${operator && html`<a href="#/">Back to all tenants</a>`}</section>`
  }
  if (t === undefined) return html`<p class="muted">Loading…</p>`
  const limits = t.effectiveLimits
  const use = (now, max) => max === undefined ? fmt(now) : `${fmt(now)} / ${fmt(max)}`
  return html`
    ${operator && html`<p><a href="#/">← all tenants</a></p>`}
    <section data-testid="tenant">
      <h2>Tenant <code data-testid="tenant-id">${t.id}</code> ${t.disabled ? html`<span class="pill off">disabled</span>` : html`<span class="pill">active</span>`}</h2>
      <div class="grid">
        <div><span>plan</span>${t.plan ?? 'none'}</div>
        <div><span>connections</span>${use(t.connections, limits.maxConnections)}</div>
        <div><span>subscriptions</span>${use(t.subscriptions, limits.maxSubscriptions)}</div>
        <div><span>settings from</span>${t.source}${t.changed.length > 0 ? ` (${t.changed.join(', ')})` : ''}</div>
      </div>
      <h2 style="margin-top:16px">Effective limits</h2>
      <div class="grid">
        ${Object.keys(limits).length === 0 ? html`<div class="muted">unlimited</div>` : Object.entries(limits).map(([k, v]) => html`<div><span>${k}</span>${String(v)}</div>`)}
      </div>
    </section>
    <${Clients} tenant=${t.id} />
    <${Usage} tenant=${t.id} />
    <${Users} tenant=${t.id} />
    <${Acl} tenant=${t.id} />`
}

function TenantsView () {
  const [{ data, error }, reload] = usePolled(() => api('/tenants'), 3000, [])
  const [id, setId] = useState('')
  const [plan, setPlan] = useState('')
  const [formError, setFormError] = useState('')
  const [{ data: planList }] = usePolled(() => api('/plans'), 0, [])
  const plans = (planList ?? []).map((p) => p.name)
  const create = async (e) => {
    e.preventDefault()
    try {
      await api('/tenants', { method: 'POST', body: { id: id.trim(), ...(plan !== '' ? { plan } : {}) } })
      setId(''); setFormError(''); reload()
    } catch (err) { setFormError(err.message) }
  }
  const patch = async (tenant, body) => { await api(`/tenants/${tenant}`, { method: 'PATCH', body }); reload() }
  const [{ data: usage }] = usePolled(() => api('/usage'), 10_000, [])
  const totals = {}
  for (const r of usage?.rows ?? []) {
    const t = (totals[r.tenant] ??= { messages: 0, minutes: 0 })
    t.messages += r.messagesIn + r.messagesOut
    t.minutes += r.sessionMinutes
  }
  return html`<section data-testid="tenants">
    <h2>Tenants ${data !== undefined && html`<span class="muted">(${data.length})</span>`}</h2>
    ${error !== undefined && html`<div class="error">${error.message}</div>`}
    <table>
      <thead><tr><th>tenant</th><th>plan</th><th>status</th><th class="num">connections</th><th class="num">subscriptions</th><th class="num">users</th><th class="num">messages 24 h</th><th class="num">session-min 24 h</th><th>settings from</th><th></th></tr></thead>
      <tbody>${(data ?? []).map((t) => html`<tr data-testid=${`tenant-${t.id}`}>
        <td><a href=${`#/tenants/${t.id}`} data-testid=${`open-${t.id}`}>${t.id}</a></td>
        <td><select data-testid=${`plan-${t.id}`} value=${t.plan ?? ''} onChange=${(e) => patch(t.id, { plan: e.target.value === '' ? null : e.target.value })}>
          <option value="">none</option>${plans.map((p) => html`<option value=${p}>${p}</option>`)}
        </select></td>
        <td>${t.disabled ? html`<span class="pill off">disabled</span>` : html`<span class="pill">active</span>`}</td>
        <td class="num">${use0(t.connections, t.effectiveLimits.maxConnections)}</td><td class="num">${fmt(t.subscriptions)}</td><td class="num">${fmt(t.users)}</td><td class="num">${fmt(totals[t.id]?.messages ?? 0)}</td><td class="num">${fmt(Math.round((totals[t.id]?.minutes ?? 0) * 100) / 100)}</td><td>${t.source}</td>
        <td><button onClick=${() => patch(t.id, { disabled: !t.disabled })}>${t.disabled ? 'Enable' : 'Disable'}</button></td>
      </tr>`)}</tbody>
    </table>
    <form class="inline" onSubmit=${create}>
      <input placeholder="new tenant ID" data-testid="new-tenant" value=${id} onInput=${(e) => setId(e.target.value)} />
      <select data-testid="new-tenant-plan" value=${plan} onChange=${(e) => setPlan(e.target.value)}><option value="">no plan</option>${plans.map((p) => html`<option value=${p}>${p}</option>`)}</select>
      <button class="primary" data-testid="create-tenant" type="submit">Create tenant</button>
      ${formError !== '' && html`<span class="error" data-testid="create-error">${formError}</span>`}
    </form>
  </section>`
}
const use0 = (now, max) => max === undefined ? fmt(now) : `${fmt(now)} / ${fmt(max)}`

function App () {
  const [token, setToken] = useState(sessionStorage.getItem(TOKEN_KEY))
  const [route, setRoute] = useState(location.hash)
  useEffect(() => {
    const on = () => setRoute(location.hash)
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  if (token === null) return html`<${Login} onLogin=${() => setToken(sessionStorage.getItem(TOKEN_KEY))} />`
  // Tenant keys are `mtg_…`; anything else that logged in is the operator token.
  const operator = !token.startsWith('mtg_')
  const logout = () => { sessionStorage.removeItem(TOKEN_KEY); location.hash = ''; setToken(null) }
  const m = /^#\/tenants\/([^/]+)$/.exec(route)
  return html`
    <header><h1>mqtt-tenant-gateway</h1><span class="who" data-testid="who">${operator ? 'operator' : 'tenant key'}</span><button data-testid="logout" onClick=${logout}>Log out</button></header>
    <main>
      ${operator && m === null ? html`<${TenantsView} />` : html`<${OwnTenant} operator=${operator} tenant=${m?.[1]} />`}
    </main>`
}

/** A tenant key's own tenant (from /tenants), or the tenant named in the route. */
function OwnTenant ({ operator, tenant }) {
  const [{ data }] = usePolled(() => tenant !== undefined ? Promise.resolve(tenant) : api('/tenants').then((list) => list[0]?.id), 0, [tenant])
  if (data === undefined) return html`<p class="muted">Loading…</p>`
  return html`<${TenantView} tenant=${decodeURIComponent(data)} operator=${operator} />`
}

render(html`<${App} />`, document.getElementById('app'))
