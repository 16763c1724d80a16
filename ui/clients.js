// A tenant's connected clients, a page at a time, and one client's filters on demand.
import { useState } from 'preact/hooks'
import { Err, api, enc, fmt, html, useAction, usePolled, utc } from './lib.js'

/** host:port, IPv6 in brackets; the address alone when the port is unknown (0: behind an HTTP proxy). */
function addressText(address, port) {
  const host = address.includes(':') ? `[${address}]` : address
  return port === 0 ? address : `${host}:${port}`
}

/** One client's filters, a page at a time from their own route: a client may hold thousands. */
function Filters({ tenant, clientId }) {
  const [after, setAfter] = useState(undefined)
  const query = after === undefined ? '' : `?after=${enc(after)}`
  const path = `/tenants/${enc(tenant)}/clients/${enc(clientId)}/subscriptions${query}`
  const [{ data, error }] = usePolled(() => api(path), 0, [tenant, clientId, after])
  return html`<div class="filters" data-testid=${`filters-${clientId}`}>
    <${Err} text=${error?.message} />
    ${(data?.subscriptions ?? []).map((f) => html`<code class="tag">${f}</code> `)}
    ${
      data !== undefined &&
      data.total > data.subscriptions.length &&
      html`<span class="muted"> (${fmt(data.subscriptions.length)} of ${fmt(data.total)})</span>`
    }
    ${after !== undefined && html` <button onClick=${() => setAfter(undefined)}>first</button>`}
    ${
      data?.next != null &&
      html` <button data-testid=${`filters-next-${clientId}`} onClick=${() => setAfter(data.next)}>next</button>`
    }
  </div>`
}

const CLIENT_COLUMNS = [
  'client ID',
  'user',
  'address',
  'listener',
  'protocol',
  'since (UTC)',
  'subscriptions',
  ['msgs in', 'num'],
  ['msgs out', 'num'],
  ['bytes in', 'num'],
  ['bytes out', 'num'],
  '',
]

function ClientRow({ c, tenant, kick }) {
  const [open, setOpen] = useState(false)
  const id = c.clientId
  return html`<tr data-testid=${`client-${id}`}>
      <td><code>${id}</code></td>
      <td>${c.username ?? '—'}</td>
      <td data-testid=${`address-${id}`}>${addressText(c.remoteAddress, c.remotePort)}</td>
      <td>${c.listener}</td>
      <td class="nowrap">${c.protocol}</td>
      <td class="nowrap">${utc(c.connectedAt)}</td>
      <td>
        <button
          class="link"
          data-testid=${`subs-${id}`}
          disabled=${c.subscriptions === 0}
          onClick=${() => setOpen(!open)}
        >
          ${fmt(c.subscriptions)}
        </button>
      </td>
      <td class="num">${fmt(c.messagesIn)}</td>
      <td class="num">${fmt(c.messagesOut)}</td>
      <td class="num">${fmt(c.bytesIn)}</td>
      <td class="num">${fmt(c.bytesOut)}</td>
      <td class="act"><button class="danger" data-testid=${`kick-${id}`} onClick=${() => kick(id)}>Kick</button></td>
    </tr>
    ${
      open &&
      html`<tr>
        <td colspan="12"><${Filters} tenant=${tenant} clientId=${id} /></td>
      </tr>`
    }`
}

/** The tenant's clients a page at a time (the API's), each with its subscriptions counted. */
export function Clients({ tenant }) {
  const [after, setAfter] = useState(undefined)
  const query = after === undefined ? '' : `?after=${enc(after)}`
  const load = () => api(`/tenants/${enc(tenant)}/clients${query}`)
  const [{ data, error }, reload] = usePolled(load, 2000, [tenant, after])
  const [actionError, run] = useAction(reload)
  const kick = (clientId) => run(() => api(`/tenants/${enc(tenant)}/clients/${enc(clientId)}`, { method: 'DELETE' }))
  const clients = data?.clients ?? []
  return html`<section data-testid="clients">
    <h2>
      Connected clients
      ${data !== undefined && html`<span class="muted" data-testid="clients-count">(${fmt(data.total)})</span>`}
    </h2>
    <${Err} text=${error?.message} /><${Err} text=${actionError} />
    <table>
      <thead>
        <tr>
          ${CLIENT_COLUMNS.map((c) => (Array.isArray(c) ? html`<th class=${c[1]}>${c[0]}</th>` : html`<th>${c}</th>`))}
        </tr>
      </thead>
      <tbody>
        ${clients.map((c) => html`<${ClientRow} key=${c.clientId} c=${c} tenant=${tenant} kick=${kick} />`)}
        ${
          data?.total === 0 &&
          html`<tr>
            <td colspan="12" class="muted" data-testid="no-clients">No client connected.</td>
          </tr>`
        }
      </tbody>
    </table>
    ${
      (after !== undefined || data?.next != null) &&
      html`<div class="inline">
        <span class="muted">${fmt(clients.length)} of ${fmt(data?.total)}</span>
        ${
          after !== undefined &&
          html`<button data-testid="clients-first" onClick=${() => setAfter(undefined)}>first page</button>`
        }
        ${
          data?.next != null &&
          html`<button data-testid="clients-next" onClick=${() => setAfter(data.next)}>next page</button>`
        }
      </div>`
    }
  </section>`
}
