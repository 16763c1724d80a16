// Errors as values with codes: operators see one clear line, never a stack trace.

export class GatewayError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = new.target.name
  }
}

export interface ConfigIssue {
  /** dotted YAML path, e.g. `tenants.acme.limits.publishRate` (empty for the document itself) */
  path: string
  line?: number
  message: string
}

/** A configuration that cannot be used; `format()` prints one line per issue. */
export class ConfigError extends GatewayError {
  constructor(
    readonly issues: ConfigIssue[],
    readonly file?: string,
  ) {
    super('CONFIG_INVALID', issues.map(formatIssue).join('\n'))
  }

  format(): string {
    const head = this.file !== undefined ? `${this.file}: invalid configuration\n` : 'invalid configuration\n'
    return head + this.issues.map((i) => `  ${formatIssue(i)}`).join('\n')
  }
}

function formatIssue(i: ConfigIssue): string {
  const where = i.path === '' ? '(document)' : i.path
  return `${where}${i.line !== undefined ? ` (line ${i.line})` : ''}: ${i.message}`
}
