// @ts-check
// Prettier owns the layout (.prettierrc.json, checked by `npm run lint`); ESLint owns the rest: the
// recommended sets, a 120-column limit for what Prettier does not wrap (comments, long strings), the
// type-aware promise rules that catch a forgotten await or an async callback where a sync one is
// expected, and an import-cycle check.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import prettier from 'eslint-config-prettier'
import importX from 'eslint-plugin-import-x'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'

const BROWSER_GLOBALS = [
  'window',
  'document',
  'location',
  'sessionStorage',
  'fetch',
  'addEventListener',
  'removeEventListener',
  'setTimeout',
  'clearTimeout',
  'URLSearchParams',
  'Intl',
]

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/', 'test/interop/paho/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // String literals stay whole (an error message or a test's name is found by grep), so they may run longer.
      'max-len': [
        'error',
        { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true, ignoreStrings: true, ignoreTemplateLiterals: true },
      ],
    },
  },
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver()] },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's test() and describe() return promises the runner itself awaits.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      'import-x/no-cycle': 'error',
    },
  },
  { files: ['bin/*', '**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
  {
    // The web UI runs in the browser.
    files: ['ui/**/*.js'],
    languageOptions: { globals: Object.fromEntries(BROWSER_GLOBALS.map((g) => [g, 'readonly'])) },
  },
)
