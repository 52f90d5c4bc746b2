/**
 * A selection's scores as a file, in the Python DataFlex's selector-cache layout (`step_N.json`: `indices` and
 * `metric.<name>`, one value per index), so a reorder's `cached_selection` reads our runs and DataFlex's alike.
 * A dynamic_select run writes one per selection whose selector returned scores, under
 * `<output_dir>/dataflex/selections/`.
 */
import { join } from 'node:path'
import { writeFileAtomic } from '../util/atomic.ts'

/** The folder of a run's selection files, relative to its output_dir. */
export const SELECTIONS_DIR = join('dataflex', 'selections')
/** A selection file's name: the optimizer step the selection followed. */
export const SELECTION_FILE = /^step_(\d+)\.json$/
/** The metric key of scores whose selector did not name them. */
export const DEFAULT_METRIC = 'score'

export function selectionFileName(step: number): string {
  return `step_${step}.json`
}

export interface SelectionRecord {
  readonly step: number
  readonly indices: ArrayLike<number>
  readonly scores: ArrayLike<number>
  readonly metric: string
  readonly strategy: string
  readonly component: string
}

/** Writes `<dir>/step_<step>.json` atomically (a reader never sees half a file). */
export function writeSelectionFile(dir: string, r: SelectionRecord): void {
  const path = join(dir, selectionFileName(r.step))
  const body = {
    indices: Array.from(r.indices),
    // A non-finite score becomes null (JSON has no NaN): a reader refuses it by position.
    metric: { [r.metric]: Array.from(r.scores, (v) => (Number.isFinite(v) ? v : null)) },
    computed_at_step: r.step,
    strategy: r.strategy,
    component: r.component,
  }
  writeFileAtomic(path, JSON.stringify(body) + '\n')
}
