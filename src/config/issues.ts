/**
 * Reading a failed zod parse in the terms a ConfigError needs: which key, what the input held there, the unknown
 * key's name, a did-you-mean for a mistyped choice. Each caller words the message for its own input (a config
 * key, a selector param, a CLI flag), so this returns the facts, not the error.
 */
import type { z } from 'zod'
import { didYouMean } from './suggest.ts'

export interface IssueAt {
  readonly issue: z.core.$ZodIssue
  /** Dotted path of the failing value; '' for the input itself. */
  readonly key: string
  /** The input's value at that path; undefined when it is missing. */
  readonly value: unknown
  /** For unrecognized keys: the first one, by name and by its full dotted path. */
  readonly unknownKey?: { readonly name: string; readonly key: string }
  /** For a string that is not one of the allowed values: the closest one, as a hint. */
  readonly suggestion?: string
}

/** The first issue of a failed parse (or the issue given), read against the input that failed. */
export function issueAt(failure: { readonly issues: readonly z.core.$ZodIssue[] } | z.core.$ZodIssue, input: unknown): IssueAt {
  const issue = 'issues' in failure ? failure.issues[0]! : failure
  const key = issue.path.map(String).join('.')
  if (issue.code === 'unrecognized_keys') {
    const name = issue.keys[0] ?? ''
    return { issue, key, value: undefined, unknownKey: { name, key: key === '' ? name : `${key}.${name}` } }
  }
  let value: unknown = input
  for (const p of issue.path) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[String(p)] : undefined
  const suggestion = issue.code === 'invalid_value' && typeof value === 'string' ? didYouMean(value, issue.values.map(String)) : undefined
  return { issue, key, value, suggestion }
}
