/** Pieces shared by the built-in reorders: a typed error. */

export type ReorderErrorCode = 'unknown_pattern' | 'bad_params' | 'bad_input' | 'not_a_permutation'

/** An ordering that cannot be made: an unknown pattern, bad pattern params, scores that do not fit the positions. */
export class ReorderError extends Error {
  override readonly name = 'ReorderError'
  readonly code: ReorderErrorCode
  readonly reorder: string

  constructor(reorder: string, code: ReorderErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(`${reorder}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.reorder = reorder
  }
}
