// What a tenant ID may be, in one place: the config schema, the admin API, tenant resolution and the
// namespace all test this one rule (kept out of schema.ts so namespace.ts can use it without a cycle).

/** A DNS label (SPEC §3): never `/`, `+`, `#`, `$`, `@` or U+0000, so a tenant ID cannot escape its namespace. */
export const TENANT_ID = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

export const TENANT_ID_RULE = 'expected a tenant ID of 1-63 characters a-z, 0-9 and -, not starting or ending with -'
