/** How the CLI reports a failure: one `error [code]: message` line, a hint, and the exit code it maps to. */
import { errorCode, isBadInput } from '../config/errors.ts'
import type { CliIO } from './io.ts'

export const EXIT_OK = 0
export const EXIT_RUNTIME = 1
export const EXIT_BAD_INPUT = 2



/** `error [code]: message` (+ hint); the stack and causes only with DATAFLEX_DEBUG=1. */
export function formatError(err: unknown, debug: boolean): string {
  const message = err instanceof Error ? err.message : String(err)
  const [first = '', ...rest] = message.split('\n')
  const lines = [`error [${errorCode(err) ?? 'runtime'}]: ${first}`]
  const hint = typeof err === 'object' && err !== null ? (err as { hint?: unknown }).hint : undefined
  if (typeof hint === 'string' && hint !== '') lines.push(`  hint: ${hint}`)
  if (debug) {
    if (rest.length > 0) lines.push(...rest)
    let current: unknown = err
    for (let depth = 0; current !== undefined && depth < 8; depth++) {
      if (current instanceof Error) lines.push(depth === 0 ? (current.stack ?? '') : `caused by: ${current.stack ?? current.message}`)
      else if (depth > 0) lines.push(`caused by: ${String(current)}`)
      current = current instanceof Error ? current.cause : undefined
    }
  } else if (rest.some((l) => l.trim() !== '')) {
    lines.push('  (details: run with DATAFLEX_DEBUG=1)')
  }
  return `${lines.join('\n')}\n`
}

/** Prints the error on stderr and returns its exit code: 2 for bad input, else 1. */
export function reportError(io: CliIO, err: unknown): number {
  io.stderr.write(formatError(err, io.env['DATAFLEX_DEBUG'] === '1'))
  return isBadInput(err) ? EXIT_BAD_INPUT : EXIT_RUNTIME
}
