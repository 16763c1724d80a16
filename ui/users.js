// A tenant's users and ACL rules, one rule per line as the YAML writes them.
import { useState } from 'preact/hooks'
import { Err, api, enc, html, useAction, usePolled } from './lib.js'

/** One rule as it is written in the YAML config. */
const ruleYaml = (r) => {
  const effect = 'allow' in r ? 'allow' : 'deny'
  return `- { ${effect}: ${r[effect]}, topic: ${JSON.stringify(r.topic)} }`
}

export function Users({ tenant }) {
  const [{ data }, reload] = usePolled(() => api(`/tenants/${enc(tenant)}/users`), 0, [tenant])
  const [name, setName] = useState('')
  const [password, setPassword] = useState('')
  const [error, run] = useAction(reload)
  const add = (e) => {
    e.preventDefault()
    run(async () => {
      await api(`/tenants/${enc(tenant)}/users/${enc(name.trim())}`, { method: 'PUT', body: { password } })
      setName('')
      setPassword('')
    })
  }
  const remove = (u) => run(() => api(`/tenants/${enc(tenant)}/users/${enc(u)}`, { method: 'DELETE' }))
  return html`<section data-testid="users">
    <h2>Users ${data !== undefined && html`<span class="muted">(${data.length})</span>`}</h2>
    <table class="compact">
      <tbody>
        ${(data ?? []).map(
          (u) =>
            html`<tr key=${u.username} data-testid=${`user-${u.username}`}>
              <td><code>${u.username}</code></td>
              <td class="muted">
                ${
                  u.acl === null || u.acl.length === 0
                    ? u.acl === null
                      ? 'tenant ACL'
                      : 'no own ACL rules'
                    : html`<pre class="yaml rules" data-testid=${`user-acl-${u.username}`}>
${u.acl.map(ruleYaml).join('\n')}</pre>`
                }
              </td>
              <td class="act">
                <button class="danger" data-testid=${`delete-user-${u.username}`} onClick=${() => remove(u.username)}>
                  Delete
                </button>
              </td>
            </tr>`,
        )}
        ${
          data?.length === 0 &&
          html`<tr>
            <td class="muted">No users.</td>
          </tr>`
        }
      </tbody>
    </table>
    <form class="inline" onSubmit=${add}>
      <input
        placeholder="username"
        data-testid="new-user"
        required
        value=${name}
        onInput=${(e) => setName(e.target.value)}
      />
      <input
        placeholder="password"
        type="password"
        autocomplete="new-password"
        data-testid="new-password"
        required
        value=${password}
        onInput=${(e) => setPassword(e.target.value)}
      />
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
const rulesJson = (rules) =>
  rules.length === 0 ? '[]' : ['[', rules.map((r) => `  ${JSON.stringify(r)}`).join(',\n'), ']'].join('\n')

export function Acl({ tenant }) {
  const [{ data }, reload] = usePolled(() => api(`/tenants/${enc(tenant)}/acl`), 0, [tenant])
  const [draft, setDraft] = useState(undefined)
  const [error, run] = useAction(reload)
  const save = () =>
    run(async () => {
      let rules
      try {
        rules = JSON.parse(draft)
      } catch {
        throw new Error('not valid JSON: expected an array of { "allow"|"deny": …, "topic": … }, or null')
      }
      await api(`/tenants/${enc(tenant)}/acl`, { method: 'PUT', body: { rules } })
      setDraft(undefined)
    })
  return html`<section data-testid="acl">
    <h2>ACL <span class="muted">(first match wins; a user's own rules come first)</span></h2>
    ${
      data?.rules === null
        ? html`<p class="muted" data-testid="acl-none">
            No tenant rules: everything inside the tenant's namespace is allowed unless a user has rules.
          </p>`
        : data !== undefined && html`<pre class="yaml" data-testid="acl-rules">${aclYaml(data.rules)}</pre>`
    }
    ${
      draft === undefined
        ? html`<button data-testid="acl-edit" onClick=${() => setDraft(rulesJson(data?.rules ?? []))}>
            Edit as JSON
          </button>`
        : html`<textarea data-testid="acl-json" value=${draft} onInput=${(e) => setDraft(e.target.value)} />
            <div class="inline">
              <button class="primary" data-testid="acl-save" onClick=${save}>Save</button>
              <button onClick=${() => setDraft(undefined)}>Cancel</button>
            </div>`
    }
    <${Err} text=${error} id="acl-error" />
  </section>`
}
