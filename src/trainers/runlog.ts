import { appendFileSync, existsSync, mkdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SELECTIONS_DIR } from '../strategies/selection-file.ts'
import { writeJsonAtomic } from '../util/atomic.ts'

/** One line of `dataflex/decisions.jsonl`: every decision the run made, enough to replay it. */
export interface Decision {
  step: number
  kind: 'plan' | 'select' | 'mix' | 'weight' | 'refresh' | 'reorder'
  strategy: string
  [key: string]: unknown
}

/** A line of `dataflex/decisions.jsonl` as written: the decision and when it was made. */
export type DecisionLine = Decision & { time: string }

/** An evaluation's loss: at a step (also in metrics.jsonl), at the end of a pass, or the run's final evaluation. */
export interface EvalReport {
  step: number
  evalLoss: number
  at: 'step' | 'pass_end' | 'final'
}

/** A complete checkpoint: Hugging Face's folder with `dataflex_state.json` beside it (what `--resume` needs). */
export interface CheckpointReport {
  step: number
  path: string
}

/**
 * Told of what the run records as it records it (the Node API's events, src/api/). Decision and step lines are told
 * as the log writes them, so what a listener sees and what the files hold have one definition.
 */
export interface RunObserver {
  decision?(line: DecisionLine): void
  /** Each trained step, in order, once its line is in metrics.jsonl. */
  step?(record: StepRecord): void
  eval?(report: EvalReport): void
  checkpoint?(report: CheckpointReport): void
}

/** Byte sizes of the two logs. */
export interface LogSizes {
  decisions: number
  metrics: number
}

/** One line of `dataflex/metrics.jsonl`: unrounded per-step values as the executor measured them. */
export interface StepRecord {
  step: number
  epoch: number
  loss: number
  grad_norm: number | null
  lr: number
  tokens: number
  eval_loss?: number
}

/**
 * Append-only run artefacts under `<output_dir>/dataflex/`. Lines are appended whole (one write each), so a crash
 * leaves complete lines; summary files are written atomically (temp file + rename).
 *
 * Nothing is created until the first write or `open()`: a run refused for bad input after the sidecar loaded (a
 * schedule that plans no step, a strategy's bad params) leaves its output_dir as it found it.
 */
export class RunLog {
  readonly dir: string
  private opened = false

  /** `onOpen` runs once, right after the folder is created (run.ts starts sidecar.log there). */
  constructor(
    readonly outputDir: string,
    private readonly onOpen?: (dir: string) => void,
    /** Told of each line written, and of evaluations and checkpoints (driver.ts, resume.ts). */
    readonly observer: RunObserver = {},
  ) {
    this.dir = join(outputDir, 'dataflex')
  }

  /** The logs' sizes in bytes: where a checkpoint's run stands in them. */
  sizes(): LogSizes {
    const size = (name: string): number => (existsSync(join(this.dir, name)) ? statSync(join(this.dir, name)).size : 0)
    return { decisions: size('decisions.jsonl'), metrics: size('metrics.jsonl') }
  }

  /**
   * Opens the logs of a run resumed from a checkpoint instead of starting fresh ones: each cut back to its size at the
   * checkpoint, so the lines the interrupted run wrote after it are made again, once.
   */
  resume(at: LogSizes): void {
    if (this.opened) throw new Error('the run log is already open')
    for (const [name, size] of [['decisions.jsonl', at.decisions], ['metrics.jsonl', at.metrics]] as const) {
      const path = join(this.dir, name)
      const have = existsSync(path) ? statSync(path).size : -1
      if (have < size) throw new Error(`${path} has ${Math.max(have, 0)} bytes, fewer than the ${size} it had at the checkpoint`)
      truncateSync(path, size)
    }
    this.opened = true
    this.onOpen?.(this.dir)
  }

  /** Creates the folder and starts fresh logs; later calls do nothing. */
  open(): void {
    if (this.opened) return
    this.opened = true
    mkdirSync(this.dir, { recursive: true })
    // A fresh run starts fresh logs (truncating to empty is one step, and keeps a `tail -f` on them attached);
    // LLaMA-Factory's overwrite_output_dir semantics apply to the rest.
    for (const name of ['decisions.jsonl', 'metrics.jsonl']) writeFileSync(join(this.dir, name), '')
    // A stale selection file would pass for this run's last selection (a reorder's cached_selection).
    rmSync(join(this.outputDir, SELECTIONS_DIR), { recursive: true, force: true })
    this.onOpen?.(this.dir)
  }

  decision(d: Decision): void {
    this.open()
    const line: DecisionLine = { ...d, time: new Date().toISOString() }
    appendFileSync(join(this.dir, 'decisions.jsonl'), JSON.stringify(line) + '\n')
    this.observer.decision?.(line)
  }

  steps(records: StepRecord[]): void {
    if (records.length === 0) return
    this.open()
    appendFileSync(join(this.dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n')
    for (const r of records) {
      this.observer.step?.(r)
      if (r.eval_loss !== undefined) this.observer.eval?.({ step: r.step, evalLoss: r.eval_loss, at: 'step' })
    }
  }

  writeJson(name: string, value: unknown): void {
    this.open()
    writeJsonAtomic(join(this.dir, name), value)
  }
}
