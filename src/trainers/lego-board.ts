/**
 * The pipeline's score board: per-sample losses computed once per boundary and shared by every stage. Each stage
 * gets the model through `view(step, maxAge)`, a ModelOps whose `losses` answers rows already scored at most `maxAge`
 * steps ago from the board and asks the executor only for the rest (so a loss selector and a loss-scored reorder at
 * one boundary cost one forward over the pool). The other ops pass through; the model does not change within a
 * boundary, so a cached loss is exactly what a fresh forward would give.
 */
import type { LossOptions, ModelOps, Split } from '../strategies/types.ts'

interface Entry {
  value: number
  step: number
}

export interface BoardStats {
  /** Rows the executor scored. */
  computed: number
  /** Rows answered from the board. */
  hits: number
  /** `losses` calls answered entirely from the board. */
  fullHits: number
}

export class ScoreBoard {
  private readonly splits = new Map<Split, Map<number, Entry>>()
  private readonly counts: BoardStats = { computed: 0, hits: 0, fullHits: 0 }

  /** `batchRows`: rows per scoring forward when a stage does not say (the preset's score_batch_size). */
  constructor(
    private readonly model: ModelOps,
    private readonly batchRows: number | null,
  ) {}

  get stats(): BoardStats {
    return { ...this.counts }
  }

  /** The latest loss of each row of `split` (NaN: never scored), for save_plans. */
  latest(split: Split, rows: Int32Array): Float64Array {
    const table = this.splits.get(split)
    return Float64Array.from(rows, (r) => table?.get(r)?.value ?? NaN)
  }

  /** The model as a stage at `step` sees it: losses from the board when fresh enough (`maxAge` steps). */
  view(step: number, maxAge: number): ModelOps {
    const board = this
    const model = this.model
    return {
      numTrain: model.numTrain,
      numEval: model.numEval,
      losses: (split, indices, opts) => board.losses(split, indices, step, maxAge, opts),
      gradients: (split, indices, opts) => model.gradients(split, indices, opts),
      embeddings: (split, indices, opts) => model.embeddings(split, indices, opts),
      routerLoads: (split, indices, opts) => model.routerLoads(split, indices, opts),
    }
  }

  private async losses(split: Split, indices: Int32Array, step: number, maxAge: number, opts?: LossOptions): Promise<Float32Array> {
    let table = this.splits.get(split)
    if (table === undefined) this.splits.set(split, (table = new Map()))
    // A NaN (a row without labels) is stamped too but never counts as fresh: it is asked again, as a new row would be.
    const usable = (e: Entry | undefined): boolean => e !== undefined && !Number.isNaN(e.value) && step - e.step <= maxAge
    const stale = [...new Set(Array.from(indices).filter((r) => !usable(table.get(r))))].sort((a, b) => a - b)
    this.counts.hits += indices.length - stale.length
    if (stale.length === 0) this.counts.fullHits++
    else {
      const rows = Int32Array.from(stale)
      const batch = opts?.maxBatchRows ?? this.batchRows
      const got = await this.model.losses(split, rows, batch === null ? {} : { maxBatchRows: batch })
      rows.forEach((r, i) => table.set(r, { value: got[i]!, step }))
      this.counts.computed += rows.length
    }
    return Float32Array.from(indices, (r) => table.get(r)!.value)
  }
}
