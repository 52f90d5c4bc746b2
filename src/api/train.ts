/**
 * `train()`: a run from Node, with the config as a YAML path or as an object, validated exactly as
 * `dataflex train` validates a file (config/load.ts). `dataflex train` itself is a client of it (cli/main.ts).
 */
import type { RemoteTarget } from '../bridge/session.ts'
import { loadConfig, loadConfigObject, type ConfigOverrides, type LoadOptions } from '../config/index.ts'
import { RunAbortedError } from '../trainers/errors.ts'
import { runTraining } from '../trainers/run.ts'
import { RunHandle } from './handle.ts'

export interface TrainOptions {
  /** Continue from the last complete checkpoint in output_dir (`dataflex train --resume`). */
  readonly resume?: boolean
  /** Drive the sidecar `dataflex serve` runs on another host; the config's paths are that host's (docs/remote.md). */
  readonly connect?: RemoteTarget
  /** Python interpreter for the sidecar and the key check (default: DATAFLEX_PYTHON, else the checkout's .venv). */
  readonly python?: string
  /**
   * What the config is checked against (DATAFLEX_PYTHON, LLaMA-Factory's launch switches such as NPROC_PER_NODE,
   * ALLOW_EXTRA_ARGS); default process.env. The sidecar inherits process.env.
   */
  readonly env?: NodeJS.ProcessEnv
  /** Aborts the run at once, as Ctrl-C does `dataflex train`: `result` rejects with RunAbortedError. */
  readonly signal?: AbortSignal
}

/**
 * Starts a run and returns its handle at once. `config` is a YAML file (relative to the working directory) or an
 * object with the same keys; `overrides` are `key=value` strings as on the command line, or an object of them
 * (`{ learning_rate: 1e-4, 'components.selectors.x.params.k': 3 }`). Relative paths in the config resolve against
 * the working directory, as LLaMA-Factory resolves them.
 */
export function train(config: string | Readonly<Record<string, unknown>>, overrides: ConfigOverrides = [], options: TrainOptions = {}): RunHandle {
  return new RunHandle(async (run) => {
    const log = (message: string): void => run.emit({ type: 'log', message })
    const loadOptions: LoadOptions = {
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.python === undefined ? {} : { python: options.python }),
      // With --connect the model and datasets live on the sidecar's host.
      ...(options.connect === undefined ? {} : { remotePaths: true }),
      onWarning: (message) => log(`warning: ${message}`),
    }
    const cfg = typeof config === 'string' ? await loadConfig(config, overrides, loadOptions) : await loadConfigObject(config, overrides, loadOptions)
    if (run.signal.aborted) throw new RunAbortedError('training interrupted', { cause: run.signal.reason })
    let totalSteps = 0
    // An abort may surface as whatever the interrupted step threw; the caller learns it as one error type.
    const interrupted = (err: unknown): never => {
      throw run.signal.aborted && !(err instanceof RunAbortedError) ? new RunAbortedError('training interrupted', { cause: err }) : err
    }
    return await runTraining(cfg, {
      resume: options.resume === true,
      ...(options.connect === undefined ? {} : { connect: options.connect }),
      ...(options.python === undefined ? {} : { python: options.python }),
      signal: run.signal,
      stop: run.stop,
      log,
      onProgress: (e) => {
        if (e.totalSteps > 0) totalSteps = e.totalSteps
        run.emit({ type: 'progress', ...e })
      },
      observer: {
        decision: (decision) => run.emit({ type: 'decision', decision }),
        step: (r) =>
          run.emit({
            type: 'step',
            step: r.step,
            totalSteps,
            epoch: r.epoch,
            loss: r.loss,
            gradNorm: r.grad_norm,
            lr: r.lr,
            tokens: r.tokens,
            ...(r.eval_loss === undefined ? {} : { evalLoss: r.eval_loss }),
          }),
        eval: (e) => run.emit({ type: 'eval', ...e }),
        checkpoint: (c) => run.emit({ type: 'checkpoint', ...c }),
      },
    }).catch(interrupted)
  }, options.signal)
}
