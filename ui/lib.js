// What every view of the web UI shares: htm bound to preact, the API call with the session's token,
// polling and action hooks, and how numbers and times are written.
import { h } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import htm from 'htm'

export const html = htm.bind(h)
export const TOKEN_KEY = 'mtg-token'

/** Set while logged in: a 401 then means the token was revoked or rotated, so back to the login. */
let unauthorized = () => {}
/** What a 401 does while logged in (App sets it; nothing when logged out). */
export const onUnauthorized = (fn) => {
  unauthorized = fn
}

export async function api(path, { method = 'GET', body } = {}) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  const data = text === '' ? null : JSON.parse(text)
  if (res.status === 401) unauthorized()
  if (!res.ok) throw Object.assign(new Error(data?.message ?? res.statusText), { status: res.status })
  return data
}

export const enc = encodeURIComponent
/** A hand-typed hash like `#/tenants/%` must give a not-found view, not a blank page. */
export const safeDecode = (s) => {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/**
 * Polls `load` every `ms` (0: once); re-runs when `deps` change. A failed poll keeps the last data, so a
 * blip does not blank the page.
 */
export function usePolled(load, ms, deps) {
  const [state, setState] = useState({ data: undefined, error: undefined })
  const [tick, setTick] = useState(0)
  useEffect(() => {
    let live = true
    load().then(
      (data) => live && setState({ data, error: undefined }),
      (error) => live && setState((s) => ({ data: s.data, error })),
    )
    const t = ms > 0 ? setTimeout(() => setTick((n) => n + 1), ms) : undefined
    return () => {
      live = false
      clearTimeout(t)
    }
  }, [...deps, tick])
  return [state, () => setTick((n) => n + 1)]
}

/** Runs a user's action, keeping its error to show next to the control that caused it. */
export function useAction(after) {
  const [error, setError] = useState('')
  const run = async (fn) => {
    try {
      await fn()
      setError('')
      after?.()
    } catch (err) {
      setError(err.message)
    }
  }
  return [error, run]
}

export const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en') : String(n ?? '—'))
/** Every time on the page is UTC, as the usage table's hours are: `2026-11-25 12:33:56`. */
export const utc = (iso) => iso.slice(0, 19).replace('T', ' ')
export const Err = ({ text, id }) =>
  text !== '' && text !== undefined ? html`<div class="error" data-testid=${id}>${text}</div>` : null
export const Status = ({ disabled }) =>
  disabled ? html`<span class="pill off">disabled</span>` : html`<span class="pill">active</span>`
