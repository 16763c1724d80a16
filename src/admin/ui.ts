// The web UI's files: a few static files of our own (ui/) and the ES module builds of preact, htm and
// uPlot straight from node_modules, joined by an import map — no bundler, no build step.
import { readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface UiFile {
  type: string
  body: Buffer
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
}

/** src/admin and dist/admin both sit two levels below the package root, where ui/ is. */
const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url))

export function uiFiles(): Map<string, UiFile> {
  const files = new Map<string, UiFile>()
  const add = (path: string, file: string): void => {
    files.set(path, { type: TYPES[extname(file)] ?? 'application/octet-stream', body: readFileSync(file) })
  }
  for (const name of readdirSync(UI_DIR)) add(`/ui/${name}`, join(UI_DIR, name))
  const index = files.get('/ui/index.html')
  if (index !== undefined) files.set('/', index)
  // Browsers ask for /favicon.ico whatever the page says; an SVG answers it (every current browser reads one).
  const icon = files.get('/ui/favicon.svg')
  if (icon !== undefined) files.set('/favicon.ico', icon)
  const require = createRequire(import.meta.url)
  add('/ui/vendor/preact.mjs', require.resolve('preact'))
  add('/ui/vendor/hooks.mjs', require.resolve('preact/hooks'))
  add('/ui/vendor/htm.mjs', join(dirname(require.resolve('htm')), 'htm.mjs'))
  const uplot = dirname(require.resolve('uplot'))
  add('/ui/vendor/uPlot.esm.js', join(uplot, 'uPlot.esm.js'))
  add('/ui/vendor/uPlot.min.css', join(uplot, 'uPlot.min.css'))
  return files
}
