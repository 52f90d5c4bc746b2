/**
 * JSON in one canonical form, for hashing: every object's keys sorted, so equal values give equal text whatever
 * order their keys were written in. Otherwise exactly JSON.stringify (undefined entries left out of objects).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, sortKeys) ?? 'null'
}

function sortKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const record = value as Record<string, unknown>
  return Object.fromEntries(
    Object.keys(record)
      .sort()
      .map((k) => [k, record[k]]),
  )
}
