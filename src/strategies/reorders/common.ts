/** Pieces shared by the built-in reorders: a typed error. */
import { ComponentError } from '../component-error.ts'

export type ReorderErrorCode = 'unknown_pattern' | 'bad_params' | 'bad_input' | 'not_a_permutation'

/** An ordering that cannot be made: an unknown pattern, bad pattern params, scores that do not fit the positions. */
export class ReorderError extends ComponentError<ReorderErrorCode> {
  override readonly name = 'ReorderError'
}
