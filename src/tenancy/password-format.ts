// Which stored password strings the gateway can verify. A value it cannot read (`password: "hunter2"`,
// a hash from another tool) would make its user fail every login with nothing said; the config loader
// and the admin API refuse it up front with this message instead. Pure: no hashing here.

/** What an operator may write, for messages. */
export const ACCEPTED_PASSWORD_FORMATS =
  '"plain:SECRET" (demos only), a hash from `mqtt-tenant-gateway passwd` ("scrypt$…"), or mosquitto_passwd\'s "$6$…" or "$7$…"'

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const POSITIVE_INT = /^[1-9]\d{0,9}$/

/** Why `stored` is not a password the gateway can verify; undefined when it is one. */
export function passwordFormatProblem(stored: string): string | undefined {
  if (stored.startsWith('plain:')) {
    return stored.length > 'plain:'.length ? undefined : 'empty plain: password'
  }
  const parts = stored.split('$')
  if (parts[0] === 'scrypt') {
    const [, n, r, p, salt, hash] = parts
    if (parts.length === 6 && isInt(n) && isInt(r) && isInt(p) && isB64(salt) && isB64(hash) && isPowerOfTwo(Number(n)))
      return undefined
    return 'damaged scrypt hash (expected scrypt$N$r$p$salt$hash as `mqtt-tenant-gateway passwd` prints it)'
  }
  if (parts[0] === '' && parts[1] === '6') {
    if (parts.length === 4 && isB64(parts[2]) && isB64(parts[3])) return undefined
    return 'damaged mosquitto $6$ hash (expected $6$salt$hash)'
  }
  if (parts[0] === '' && parts[1] === '7') {
    if (parts.length === 5 && isInt(parts[2]) && isB64(parts[3]) && isB64(parts[4])) return undefined
    return 'damaged mosquitto $7$ hash (expected $7$iterations$salt$hash)'
  }
  return `unrecognised password format; expected ${ACCEPTED_PASSWORD_FORMATS}`
}

function isInt(s: string | undefined): boolean {
  return s !== undefined && POSITIVE_INT.test(s)
}
function isB64(s: string | undefined): boolean {
  return s !== undefined && BASE64.test(s)
}
function isPowerOfTwo(n: number): boolean {
  return n > 1 && (n & (n - 1)) === 0
}
