// A tenant's usage of the last 24 hours: a chart and a table, both in UTC hours.
import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'
import { api, enc, fmt, html, usePolled } from './lib.js'

const HOUR = 3600

/**
 * Every hour of the last day, zeros where nothing was recorded, so one busy hour is a step in a day
 * rather than a lone dot.
 */
function hourly(rows) {
  const end = Math.floor(Date.now() / 1000 / HOUR) * HOUR
  const byHour = new Map(rows.map((r) => [Date.parse(r.hour) / 1000, r]))
  const cols = [[], [], [], []]
  // One point past the current hour closes its step.
  for (let x = end - 24 * HOUR; x <= end + HOUR; x += HOUR) {
    const r = byHour.get(x)
    cols[0].push(x)
    cols[1].push(r?.messagesIn ?? 0)
    cols[2].push(r?.messagesOut ?? 0)
    cols[3].push(r?.sessionMinutes ?? 0)
  }
  return cols
}

/** Counts start at 0 and end a little above the highest hour, at a round number; an empty day still has an axis. */
const fromZero = (_u, _min, max) => uPlot.rangeNum(0, max > 0 ? max : 1, 0.1, true)

function UsageChart({ rows }) {
  const el = useRef(null)
  useEffect(() => {
    if (el.current === null) return
    const step = uPlot.paths.stepped({ align: 1 })
    // uPlot fills in the objects it is given: each series gets its own.
    const line = (series) => ({ width: 2, paths: step, points: { show: false }, ...series })
    const plot = new uPlot(
      {
        width: el.current.clientWidth || 900,
        height: 220,
        // The hours are UTC in the table below and in the API: the axis says the same hours.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
        legend: { live: false },
        cursor: { points: { show: false } },
        series: [
          {},
          line({ label: 'messages in', stroke: '#2f6fed', fill: 'rgba(47,111,237,.10)' }),
          line({ label: 'messages out', stroke: '#16a37b' }),
          line({ label: 'session-minutes', stroke: '#d98a1c', dash: [6, 4], scale: 'min' }),
        ],
        scales: { y: { range: fromZero }, min: { range: fromZero } },
        axes: [
          { label: 'hour (UTC)' },
          { label: 'messages per hour', size: 60 },
          { scale: 'min', side: 1, label: 'session-minutes per hour', size: 60, grid: { show: false } },
        ],
      },
      hourly(rows),
      el.current,
    )
    return () => plot.destroy()
  }, [rows])
  return html`<div ref=${el} class="chart" data-testid="usage-chart"></div>`
}

export function Usage({ tenant }) {
  const [{ data }] = usePolled(() => api(`/tenants/${enc(tenant)}/usage`), 10_000, [tenant])
  const rows = data?.rows ?? []
  return html`<section data-testid="usage">
    <h2>Usage, last 24 hours <span class="muted">(per hour)</span></h2>
    ${data !== undefined && html`<${UsageChart} rows=${rows} />`}
    ${data !== undefined && rows.length === 0 && html`<p class="muted">No usage recorded yet.</p>`}
    ${
      rows.length > 0 &&
      html`<table data-testid="usage-table">
        <thead>
          <tr>
            <th>hour (UTC)</th>
            <th class="num">session-minutes</th>
            <th class="num">msgs in</th>
            <th class="num">msgs out</th>
            <th class="num">bytes in</th>
            <th class="num">bytes out</th>
            <th class="num">peak conns</th>
            <th class="num">limit hits</th>
          </tr>
        </thead>
        <tbody>
          ${rows.map(
            (r) =>
              html`<tr key=${r.hour}>
                <td>${r.hour.slice(0, 13).replace('T', ' ')}:00</td>
                <td class="num">${fmt(r.sessionMinutes)}</td>
                <td class="num">${fmt(r.messagesIn)}</td>
                <td class="num">${fmt(r.messagesOut)}</td>
                <td class="num">${fmt(r.bytesIn)}</td>
                <td class="num">${fmt(r.bytesOut)}</td>
                <td class="num">${fmt(r.peakConnections)}</td>
                <td class="num">${fmt(r.limitHits)}</td>
              </tr>`,
          )}
        </tbody>
      </table>`
    }
  </section>`
}
