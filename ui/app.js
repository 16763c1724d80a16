// The admin web UI: one page, preact + htm, no build step. The token (operator token or a tenant API
// key) lives in sessionStorage only; every view reads the admin API with it, so a tenant key can never
// show more than the API gives it.
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { Clients } from './clients.js'
import { Err, Status, TOKEN_KEY, api, enc, fmt, html, onUnauthorized, safeDecode, useAction, usePolled } from './lib.js'
import { Usage } from './usage.js'
import { Acl, Users } from './users.js'

function Login({ onLogin, notice }) {
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
      <input
        id="token"
        data-testid="token"
        type="password"
        autocomplete="off"
        value=${token}
        onInput=${(e) => setToken(e.target.value)}
      />
      <button class="primary" data-testid="login" type="submit">Log in</button>
      <${Err} text=${error} id="login-error" />
    </form>
  </section>`
}

/** `now / max` with a bar, or just `now` when unlimited. */
function Use({ label, now, max, id }) {
  const pct = max === undefined ? 0 : Math.min(100, max === 0 ? 100 : (now / max) * 100)
  return html`<div data-testid=${id}>
    <span>${label}</span>${fmt(now)}${
      max === undefined ? html` <span class="muted inline">/ unlimited</span>` : ` / ${fmt(max)}`
    }
    ${max !== undefined && html`<div class=${`bar${pct >= 90 ? ' full' : ''}`}><i style=${`width:${pct}%`}></i></div>`}
  </div>`
}

function Limits({ t }) {
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

function TenantView({ tenant, operator }) {
  const [{ data: t, error }] = usePolled(() => api(`/tenants/${enc(tenant)}`), 2000, [tenant])
  const back = html`<p><a href="#/" data-testid="back">${operator ? '← all tenants' : '← your tenant'}</a></p>`
  // Unknown and foreign tenants both answer 404, and look the same here: nothing of them is shown.
  if (error?.status === 404) {
    return html`${back}
      <section data-testid="not-found">
        <h2>Tenant not found</h2>
        <p class="muted">There is no such tenant, or this key may not see it.</p>
      </section>`
  }
  if (t === undefined)
    return html`<p class="muted">Loading…</p>
      <${Err} text=${error?.message} />`
  return html` ${operator && back}
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

const limitsText = (limits) =>
  Object.entries(limits)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'unlimited'

function TenantsView() {
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
  const use = (now, max) => (max === undefined ? fmt(now) : `${fmt(now)} / ${fmt(max)}`)
  return html`<section data-testid="tenants">
    <h2>Tenants ${data !== undefined && html`<span class="muted">(${data.length})</span>`}</h2>
    <${Err} text=${error?.message} /><${Err} text=${rowError} id="tenants-error" />
    <table>
      <thead>
        <tr>
          <th>tenant</th>
          <th>plan</th>
          <th>status</th>
          <th class="num">connections</th>
          <th class="num">subscriptions</th>
          <th class="num">users</th>
          <th class="num">messages 24 h</th>
          <th class="num">session-min 24 h</th>
          <th>settings from</th>
          <th></th>
        </tr>
      </thead>
      <tbody>
        ${(data ?? []).map(
          (t) =>
            html`<tr key=${t.id} data-testid=${`tenant-${t.id}`}>
              <td><a href=${`#/tenants/${enc(t.id)}`} data-testid=${`open-${t.id}`}>${t.id}</a></td>
              <td>
                <select
                  data-testid=${`plan-${t.id}`}
                  value=${t.plan ?? ''}
                  onChange=${(e) => patch(t.id, { plan: e.target.value === '' ? null : e.target.value })}
                >
                  <option value="">none</option>
                  ${plans.map((p) => html`<option value=${p}>${p}</option>`)}
                </select>
              </td>
              <td><${Status} disabled=${t.disabled} /></td>
              <td class="num">${use(t.connections, t.effectiveLimits.maxConnections)}</td>
              <td class="num">${use(t.subscriptions, t.effectiveLimits.maxSubscriptions)}</td>
              <td class="num">${fmt(t.users)}</td>
              <td class="num">${fmt(totals[t.id]?.messages ?? 0)}</td>
              <td class="num">${fmt(Math.round((totals[t.id]?.minutes ?? 0) * 100) / 100)}</td>
              <td>${t.source}</td>
              <td class="act">
                <button data-testid=${`toggle-${t.id}`} onClick=${() => patch(t.id, { disabled: !t.disabled })}>
                  ${t.disabled ? 'Enable' : 'Disable'}
                </button>
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
    <form class="inline" onSubmit=${create}>
      <input
        placeholder="new tenant ID (a-z, 0-9, -)"
        data-testid="new-tenant"
        required
        value=${id}
        onInput=${(e) => setId(e.target.value)}
      />
      <select data-testid="new-tenant-plan" value=${plan} onChange=${(e) => setPlan(e.target.value)}>
        <option value="">no plan</option>
        ${plans.map((p) => html`<option value=${p}>${p}</option>`)}
      </select>
      <button class="primary" data-testid="create-tenant" type="submit">Create tenant</button>
    </form>
    <${Err} text=${formError} id="create-error" />
    ${
      plans.length > 0 &&
      html`<h3>Plans</h3>
        <ul class="plans" data-testid="plans">
          ${planList.map((p) => html`<li><b>${p.name}</b> <span class="muted">${limitsText(p.limits)}</span></li>`)}
        </ul>`
    }
  </section>`
}

/** A tenant key's own tenant (from /tenants), or the tenant named in the route. */
function OwnTenant({ operator, tenant }) {
  const own = () => (tenant !== undefined ? Promise.resolve(tenant) : api('/tenants').then((list) => list[0]?.id))
  const [{ data, error }] = usePolled(own, 0, [tenant])
  if (data === undefined)
    return html`<p class="muted">Loading…</p>
      <${Err} text=${error?.message} />`
  // Keyed by tenant: moving to another tenant starts from empty state, never showing the previous one's data.
  return html`<${TenantView} key=${data} tenant=${data} operator=${operator} />`
}

function App() {
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
    onUnauthorized(() => {
      sessionStorage.removeItem(TOKEN_KEY)
      setNotice('Logged out: the token or key is no longer valid.')
      setToken(null)
    })
    return () => onUnauthorized(() => {})
  }, [token])
  if (token === null)
    return html`<${Login}
      notice=${notice}
      onLogin=${() => {
        setNotice('')
        setToken(sessionStorage.getItem(TOKEN_KEY))
      }}
    />`
  // Tenant keys are `mtg_…`; anything else that logged in is the operator token.
  const operator = !token.startsWith('mtg_')
  const logout = () => {
    sessionStorage.removeItem(TOKEN_KEY)
    location.hash = ''
    setToken(null)
  }
  const m = /^#\/tenants\/([^/]+)$/.exec(route)
  const tenant = m?.[1] === undefined ? undefined : safeDecode(m[1])
  return html` <header>
      <h1><a href="#/">mqtt-tenant-gateway</a></h1>
      <span class="who" data-testid="who">${operator ? 'operator' : 'tenant key'}</span>
      <button data-testid="logout" onClick=${logout}>Log out</button>
    </header>
    <main>
      ${
        operator && tenant === undefined
          ? html`<${TenantsView} />`
          : html`<${OwnTenant} operator=${operator} tenant=${tenant} />`
      }
    </main>`
}

render(html`<${App} />`, document.getElementById('app'))
