/**
 * A run seen from Node: typed events (`on`, or `for await` over all of them), the final summary as a promise, and
 * a clean stop. The events are those the run records (runlog.ts) and reports (events.ts); this module only fans them
 * out, so what a listener sees is what the run's files hold.
 */
import type { ProgressEvent } from '../trainers/events.ts'
import type { RunSummary } from '../trainers/run.ts'
import type { DecisionLine } from '../trainers/runlog.ts'

/** How a run ended: all its steps, or fewer because `stop()` was called. */
export type RunStatus = 'completed' | 'stopped'

export interface TrainSummary extends RunSummary {
  readonly status: RunStatus
}

/** The run's phase, step and live loss, a few times a second and at each phase change (what a progress bar shows). */
export interface ProgressUpdate extends ProgressEvent {
  readonly type: 'progress'
}

/** One trained optimizer step, as its line in `dataflex/metrics.jsonl` says (steps arrive in order, each once). */
export interface StepEvent {
  readonly type: 'step'
  readonly step: number
  /** Optimizer steps the run plans. */
  readonly totalSteps: number
  readonly epoch: number
  readonly loss: number
  readonly gradNorm: number | null
  readonly lr: number
  /** Label tokens of the step. */
  readonly tokens: number
  /** When the step evaluated (an `eval` event follows). */
  readonly evalLoss?: number
}

/** A line for the user: a config warning (`warning: …`), a strategy's message, a bridge warning. */
export interface LogEvent {
  readonly type: 'log'
  readonly message: string
}

/** A line of `dataflex/decisions.jsonl`, as written. */
export interface DecisionEvent {
  readonly type: 'decision'
  readonly decision: DecisionLine
}

/** An evaluation's loss: at a step that evaluated, at the end of a pass (epoch-end evaluation), or the final one. */
export interface EvalEvent {
  readonly type: 'eval'
  readonly step: number
  readonly evalLoss: number
  readonly at: 'step' | 'pass_end' | 'final'
}

/** A checkpoint is complete (Hugging Face's folder and `dataflex_state.json`): `--resume` can continue from it. */
export interface CheckpointEvent {
  readonly type: 'checkpoint'
  readonly step: number
  readonly path: string
}

/** The run failed (bad input: a ConfigError; aborted: a RunAbortedError; else the runtime error); `done` follows. */
export interface ErrorEvent {
  readonly type: 'error'
  readonly error: Error
}

/** Always the last event. `summary` is what `result` resolves to; null when the run failed or was aborted. */
export interface DoneEvent {
  readonly type: 'done'
  readonly status: RunStatus | 'failed' | 'aborted'
  readonly summary: TrainSummary | null
}

export interface TrainEventMap {
  progress: ProgressUpdate
  step: StepEvent
  log: LogEvent
  decision: DecisionEvent
  eval: EvalEvent
  checkpoint: CheckpointEvent
  error: ErrorEvent
  done: DoneEvent
}

export type TrainEventType = keyof TrainEventMap
export type TrainEvent = TrainEventMap[TrainEventType]

type Listener<K extends TrainEventType> = (event: TrainEventMap[K]) => void

/** What a run body is given by its handle: where events go and the two ways a run is asked to end. */
export interface RunControl {
  emit(event: Exclude<TrainEvent, ErrorEvent | DoneEvent>): void
  /** Aborts at once: the caller's signal, or a listener that threw. */
  readonly signal: AbortSignal
  /** stop(): training ends after the step in progress. */
  readonly stop: AbortSignal
}

/** One `for await` over a handle: its events from the moment it starts, buffered until read. */
class EventQueue {
  private readonly items: TrainEvent[] = []
  private wake: (() => void) | undefined
  private closed = false

  push(event: TrainEvent): void {
    this.items.push(event)
    this.wake?.()
  }

  close(): void {
    this.closed = true
    this.wake?.()
  }

  async next(): Promise<IteratorResult<TrainEvent>> {
    for (;;) {
      const event = this.items.shift()
      if (event !== undefined) return { value: event, done: false }
      if (this.closed) return { value: undefined, done: true }
      await new Promise<void>((resolve) => (this.wake = resolve))
      this.wake = undefined
    }
  }
}

/**
 * A run started by `train()`. Listeners are called synchronously as the run records each event; one that throws ends
 * the run as an abort would, and its error rejects `result`. The run does not wait for slow `for await` readers:
 * their events are buffered.
 */
export class RunHandle implements AsyncIterable<TrainEvent> {
  /** The summary once the run ends (`status` says whether stop() cut it short); rejects with the run's error. */
  readonly result: Promise<TrainSummary>
  private readonly listeners = new Map<TrainEventType, Set<Listener<TrainEventType>>>()
  private readonly queues = new Set<EventQueue>()
  private readonly stopper = new AbortController()
  private readonly aborter = new AbortController()
  private listenerError: { error: unknown } | undefined
  private last: DoneEvent | undefined

  /** `body` runs the run with this handle's control (train.ts); its summary or error ends the handle. */
  constructor(body: (run: RunControl) => Promise<RunSummary>, signal?: AbortSignal) {
    const abort = signal === undefined ? this.aborter.signal : AbortSignal.any([signal, this.aborter.signal])
    const control: RunControl = { emit: (e) => this.emit(e), signal: abort, stop: this.stopper.signal }
    this.result = Promise.resolve()
      .then(() => body(control))
      .then(
        (summary) => {
          const done: TrainSummary = { ...summary, status: this.stopper.signal.aborted ? 'stopped' : 'completed' }
          this.end({ type: 'done', status: done.status, summary: done })
          return done
        },
        (err: unknown) => {
          // A listener's own error is the news, not the abort it caused.
          const error = this.listenerError === undefined ? err : this.listenerError.error
          this.emit({ type: 'error', error: error instanceof Error ? error : new Error(String(error)) })
          this.end({ type: 'done', status: abort.aborted && this.listenerError === undefined ? 'aborted' : 'failed', summary: null })
          throw error
        },
      )
    // Whoever only listens to events must not get an unhandled rejection; awaiting `result` still throws.
    this.result.catch(() => undefined)
  }

  /** Calls `listener` with each event of `type`; returns a function that removes it. */
  on<K extends TrainEventType>(type: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(type)
    if (set === undefined) this.listeners.set(type, (set = new Set()))
    set.add(listener as Listener<TrainEventType>)
    return () => this.off(type, listener)
  }

  off<K extends TrainEventType>(type: K, listener: Listener<K>): void {
    this.listeners.get(type)?.delete(listener as Listener<TrainEventType>)
  }

  /**
   * Ends training after the step in progress, as early stopping does: the run then finishes as usual (final save,
   * evaluation, `dataflex/summary.json` and report) and `result` resolves with status 'stopped'. Checkpoints already
   * written stay whole. Called before the model has loaded, the run ends once it has, having trained nothing.
   */
  stop(): void {
    this.stopper.abort()
  }

  /** Every event from now on, ending with `done` (the `done` alone when the run has already ended). */
  [Symbol.asyncIterator](): AsyncIterator<TrainEvent> {
    const queue = new EventQueue()
    if (this.last !== undefined) {
      queue.push(this.last)
      queue.close()
    } else this.queues.add(queue)
    return {
      next: () => queue.next(),
      return: async () => {
        this.queues.delete(queue)
        queue.close()
        return { value: undefined, done: true }
      },
    }
  }

  private emit(event: TrainEvent): void {
    if (this.last !== undefined) return
    for (const q of this.queues) q.push(event)
    for (const listener of [...(this.listeners.get(event.type) ?? [])]) {
      try {
        listener(event)
      } catch (error) {
        // The run is ending already when an error or done listener throws: nothing is left to end.
        if (this.listenerError !== undefined || event.type === 'error' || event.type === 'done') continue
        this.listenerError = { error }
        this.aborter.abort(error)
      }
    }
  }

  private end(done: DoneEvent): void {
    this.emit(done)
    this.last = done
    for (const q of this.queues) q.close()
    this.queues.clear()
  }
}
