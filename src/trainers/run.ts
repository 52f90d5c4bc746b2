/**
 * `dataflex train`: load the run in the sidecar, plan it in TypeScript, execute the plan step by step.
 *
 * This module owns the run's lifetime (sidecar, run log, abort); the trainer of the train_type (table.ts) prepares
 * before the sidecar starts, then plans and walks the run over driver.ts.
 */
import { appendFileSync, existsSync, rmdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { SidecarExitedError } from '../bridge/errors.ts'
import { masterPort, torchrunArgs, type TorchrunLaunch } from '../bridge/launch.ts'
import { Sidecar } from '../bridge/sidecar.ts'
import { type RemoteTarget, withSidecar } from '../bridge/session.ts'
import { isBadInput } from '../config/errors.ts'
import { ConfigError, type LoadedConfig } from '../config/index.ts'
import { attributeToUserCode } from '../strategies/user-files.ts'
import { TrainDriver } from './driver.ts'
import type { ProgressEvent } from './events.ts'
import { RunAbortedError } from './errors.ts'
import { Executor } from './executor.ts'
import { lastCompleteCheckpoint, readCheckpointState, STATE_FILE } from './resume.ts'
import { RunLog, type RunObserver } from './runlog.ts'
import { trainerFor } from './table.ts'

export interface RunSummary {
  steps: number
  trainLoss: number | null
  evalLoss: number | null
  outputDir: string
  wallSeconds: number
}

export interface RunOptions {
  onProgress?: (e: ProgressEvent) => void
  log?: (line: string) => void
  /** Told of every decision, step, evaluation and checkpoint as the run records it (runlog.ts). */
  observer?: RunObserver
  /** Aborts the run at once (Ctrl-C): the sidecar is stopped, and the run rejects with RunAbortedError. */
  signal?: AbortSignal
  /**
   * Ends training after the step in progress, and the run finishes as after early stopping (final save, summary,
   * report). Before the sidecar starts, nothing is run: a summary of 0 steps.
   */
  stop?: AbortSignal
  /** Python interpreter for the sidecar (default: DATAFLEX_PYTHON, else the repo's .venv). */
  python?: string
  /** Continue from the last complete checkpoint in output_dir (`dataflex train --resume`). */
  resume?: boolean
  /** Drive a sidecar that `dataflex serve` runs instead of spawning one; the config's paths are that host's. */
  connect?: RemoteTarget
}

export async function runTraining(cfg: LoadedConfig, opts: RunOptions = {}): Promise<RunSummary> {
  const started = performance.now()
  if (cfg.launch !== undefined && cfg.launch.nodeRank > 0) return await followNode(cfg, cfg.launch, opts)
  if (opts.resume) {
    const checkpoint = lastCompleteCheckpoint(cfg.outputDir)
    if (checkpoint === undefined) {
      throw new ConfigError('bad_value', `--resume: no complete checkpoint in ${cfg.outputDir} (a checkpoint-<step> folder with trainer_state.json and ${STATE_FILE})`, {
        key: 'output_dir',
        hint: 'a run writes checkpoints with save_steps / save_strategy; without one, start afresh',
      })
    }
    // LLaMA-Factory's own key: the sidecar restores its half from it, and reports it back.
    cfg = { ...cfg, lf: { ...cfg.lf, resume_from_checkpoint: checkpoint, overwrite_output_dir: false } }
  }
  const progress = opts.onProgress ?? (() => {})
  opts.signal?.throwIfAborted()
  const log = opts.log ?? (() => {})
  const trainer = trainerFor(cfg)
  const prepared = await trainer.prepare(cfg, log)
  progress({ step: 0, totalSteps: 0, phase: 'loading' })

  // Sidecar output goes to <output_dir>/dataflex/sidecar.log once the run log opens (training began, or a runtime
  // failure is to be diagnosed); until then it is buffered so that bad input creates no files in the output dir.
  const sidecarLines: string[] = []
  let sidecarLog: string | undefined
  const onSidecarLine = (line: string): void => {
    if (sidecarLog) appendFileSync(sidecarLog, line + '\n')
    else sidecarLines.push(line)
  }
  const runlog = new RunLog(
    cfg.outputDir,
    (dir) => {
      sidecarLog = join(dir, 'sidecar.log')
      appendFileSync(sidecarLog, sidecarLines.join('\n') + (sidecarLines.length ? '\n' : ''))
      sidecarLines.length = 0
    },
    opts.observer,
  )
  const aborted = (cause: unknown): Error => new RunAbortedError('training interrupted', { cause })
  if (cfg.launch !== undefined && opts.connect !== undefined) {
    throw new ConfigError('bad_value', 'torchrun switches (FORCE_TORCHRUN, NPROC_PER_NODE, NNODES) apply to a sidecar this command starts, not to one reached with --connect', {
      key: 'NPROC_PER_NODE',
      hint: 'set them where `dataflex serve` runs; it launches its sidecar under torchrun',
    })
  }
  if (opts.stop?.aborted) return { steps: 0, trainLoss: null, evalLoss: null, outputDir: cfg.outputDir, wallSeconds: (performance.now() - started) / 1000 }
  const launcher = cfg.launch === undefined ? undefined : torchrunArgs(cfg.launch, await masterPort(cfg.launch))
  // Hugging Face's Trainer creates output_dir when it is built; bad input found after that (e.g. by the schedule)
  // removes it again if this run created it and it is still empty.
  const outputDirExisted = existsSync(cfg.outputDir)
  try {
    return await withSidecar({ python: opts.python, launcher, connect: opts.connect, signal: opts.signal, log: opts.log, onSidecarLine, aborted }, async (bridge) => {
      const exec = new Executor(bridge)
      // freeze_gate is a load-time switch for every train_type (a key the user sets is never ignored).
      const info = await exec.load(cfg.lf, { freeze_gate: cfg.dataflex.freeze_gate, ...trainer.loadExtras?.(cfg, prepared) })
      opts.signal?.throwIfAborted()
      const resume = info.resume_from_checkpoint === null ? undefined : readCheckpointState(resolve(info.resume_from_checkpoint))
      if (resume !== undefined) {
        log(`resuming after step ${resume.step} from ${resume.checkpoint}`)
        runlog.resume(resume.logs)
      }

      const driver = new TrainDriver(exec, bridge, info, runlog, progress, log)
      const stop = (): void => driver.requestStop()
      if (opts.stop?.aborted) stop()
      else opts.stop?.addEventListener('abort', stop, { once: true })
      try {
        const summary = await trainer.train(driver, cfg, prepared, { log, signal: opts.signal, ...(resume === undefined ? {} : { resume }) })
        return { ...summary, outputDir: cfg.outputDir, wallSeconds: (performance.now() - started) / 1000 }
      } catch (err) {
        // A runtime failure keeps the sidecar's output for diagnosis; bad input leaves output_dir untouched.
        if (!isBadInput(err) && !opts.signal?.aborted) runlog.open()
        throw attributeToUserCode(err)
      } finally {
        opts.stop?.removeEventListener('abort', stop)
      }
    })
  } catch (err) {
    if (isBadInput(err) && !outputDirExisted) removeIfEmpty(cfg.outputDir)
    throw err
  }
}

/**
 * A node other than node 0 of a multi-node run: its ranks only follow rank 0 (on node 0, where this command's twin
 * decides, logs and writes). This command supervises them, as llamafactory-cli does on every node, and ends with them.
 */
async function followNode(cfg: LoadedConfig, launch: TorchrunLaunch, opts: RunOptions): Promise<RunSummary> {
  const started = performance.now()
  const log = opts.log ?? (() => {})
  log(`node ${launch.nodeRank} of ${launch.nnodes}: ${launch.nprocPerNode} rank(s) following node 0 at ${launch.masterAddr}:${launch.masterPort}`)
  const sidecar = new Sidecar({
    python: opts.python,
    launcher: torchrunArgs(launch, await masterPort(launch)),
    awaitReady: false,
    log: (e) => {
      if (e.source === 'sidecar' && process.env['DATAFLEX_VERBOSE']) log(e.message)
    },
  })
  const stop = (): void => void sidecar.stop({ graceMs: 1_500 })
  opts.signal?.addEventListener('abort', stop, { once: true })
  try {
    await sidecar.start()
    const exit = await sidecar.exited
    if (opts.signal?.aborted) throw new RunAbortedError('training interrupted')
    if (exit.exitCode !== 0) throw new SidecarExitedError(exit)
  } finally {
    opts.signal?.removeEventListener('abort', stop)
    await sidecar.stop()
  }
  return { steps: 0, trainLoss: null, evalLoss: null, outputDir: cfg.outputDir, wallSeconds: (performance.now() - started) / 1000 }
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir)
  } catch {
    // not empty, or already gone: left as it is
  }
}
