/** Shared fixtures for the integration tests: the repo's Python, the tiny local model, temp run folders. */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { stringify } from 'yaml'
import { REPO_ROOT, resolvePython, sidecarEnv } from '../src/bridge/index.ts'
import { ConfigError } from '../src/config/errors.ts'
import type { CliIO } from '../src/cli/io.ts'
import type { LoadedConfig } from '../src/config/load.ts'
import { DataflexConfigSchema } from '../src/config/schema.ts'

export const PYTHON = resolvePython().executable
export const TINY_MODEL = join(REPO_ROOT, 'models', 'tiny-qwen2')
/** Its mixture-of-experts twin (Qwen2-MoE, same tokenizer): router_loads' test model. */
export const TINY_MOE_MODEL = join(REPO_ROOT, 'models', 'tiny-qwen2-moe')
export const DEMO_DATA = join(REPO_ROOT, 'data', 'demo')

export { tempDir } from './temp-dirs.ts'

/** A small but complete LoRA SFT config on the tiny model (GA, warmup + cosine, clipping, dropout, eval). */
export function tinyConfig(outputDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_name_or_path: TINY_MODEL,
    stage: 'sft',
    do_train: true,
    finetuning_type: 'lora',
    lora_rank: 4,
    lora_alpha: 8,
    lora_target: 'all',
    lora_dropout: 0.1,
    disable_gradient_checkpointing: true,
    dataset_dir: DEMO_DATA,
    dataset: 'arith_clean,facts',
    template: 'qwen',
    cutoff_len: 128,
    max_samples: 26,
    overwrite_cache: true,
    preprocessing_num_workers: 1,
    dataloader_num_workers: 0,
    output_dir: outputDir,
    logging_steps: 1,
    save_steps: 8,
    overwrite_output_dir: true,
    report_to: 'none',
    plot_loss: false,
    per_device_train_batch_size: 4,
    gradient_accumulation_steps: 2,
    learning_rate: 5.0e-3,
    num_train_epochs: 3.0,
    lr_scheduler_type: 'cosine',
    warmup_ratio: 0.1,
    max_grad_norm: 0.5,
    bf16: false,
    seed: 42,
    eval_dataset: 'demo_eval',
    eval_strategy: 'steps',
    eval_steps: 5,
    per_device_eval_batch_size: 8,
    ...extra,
  }
}

export function writeConfig(dir: string, name: string, cfg: Record<string, unknown>): string {
  const path = join(dir, name)
  // Quote strings: YAML 1.1 readers (LLaMA-Factory's OmegaConf, ours) take a bare `no` for false.
  writeFileSync(path, stringify(cfg, { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' }))
  return path
}

/** Run a Python script with the sidecar's environment (bridge on PYTHONPATH, offline Hugging Face). */
export async function runPython(args: string[], timeoutMs = 300_000): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(PYTHON, args, {
    cwd: REPO_ROOT,
    env: sidecarEnv(process.env),
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  })
}

/** A LoadedConfig as loadConfig would give it, for resolving presets without the LLaMA-Factory key check. */
export function fakeConfig(dir: string, dataflex: Record<string, unknown>): LoadedConfig {
  return {
    path: join(dir, 'cfg.yaml'),
    dataflex: DataflexConfigSchema.parse({ train_type: 'dynamic_select', update_step: 1, ...dataflex }),
    lf: {},
    outputDir: join(dir, 'out'),
  }
}

/** The ConfigError `p` rejects with (anything else fails the test). */
export async function configError(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

/** A `dataflex train` run through the CLI as users type it, with what it wrote. */
export interface TrainRun<D = Record<string, unknown>> {
  code: number
  stdout: string
  stderr: string
  out: string
  decisions: D[]
  metrics: { step: number; loss: number; epoch: number; grad_norm: number | null }[]
}

const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')

/** Writes `<dir>/<name>.yaml` from `config(outputDir)` and runs `dataflex train` on it from `dir`. */
export async function trainCli<D = Record<string, unknown>>(
  dir: string,
  name: string,
  config: (out: string) => Record<string, unknown>,
  timeoutMs = 240_000,
  /** After the config: e.g. `--connect tcp://127.0.0.1:5555`. */
  extraArgs: readonly string[] = [],
  /** Added to the environment (e.g. NPROC_PER_NODE). */
  env: Readonly<Record<string, string>> = {},
): Promise<TrainRun<D>> {
  const out = join(dir, `${name}-out`)
  const cfg = writeConfig(dir, `${name}.yaml`, config(out))
  return trainArgs<D>(dir, [cfg, ...extraArgs], out, timeoutMs, env)
}

/** `dataflex train <args>` from `cwd`, and what the run wrote into `out` (its output_dir). */
export async function trainArgs<D = Record<string, unknown>>(
  cwd: string,
  args: readonly string[],
  out: string,
  timeoutMs = 240_000,
  env: Readonly<Record<string, string>> = {},
): Promise<TrainRun<D>> {
  let code = 0
  let stdout = ''
  let stderr = ''
  try {
    const r = await promisify(execFile)(process.execPath, [BIN, 'train', ...args], { cwd, timeout: timeoutMs, maxBuffer: 16 << 20, env: { ...process.env, ...env } })
    stdout = r.stdout
    stderr = r.stderr
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    code = typeof e.code === 'number' ? e.code : 1
    stdout = e.stdout ?? ''
    stderr = e.stderr ?? ''
  }
  const lines = (file: string): unknown[] =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as unknown)
      : []
  return {
    code,
    stdout,
    stderr,
    out,
    decisions: lines(join(out, 'dataflex', 'decisions.jsonl')) as D[],
    metrics: lines(join(out, 'dataflex', 'metrics.jsonl')) as TrainRun['metrics'],
  }
}

/** A decision without its wall-clock fields: what must be identical run after run. */
export function stable(d: object): Record<string, unknown> {
  const { time: _t, timings: _ms, ...rest } = d as Record<string, unknown>
  return rest
}

export function expectOk(r: Pick<TrainRun, 'code' | 'stderr'>): void {
  if (r.code !== 0) throw new Error(`dataflex train exited ${r.code}:\n${r.stderr.slice(-4000)}`)
}

/** A CliIO for running the CLI in-process: no environment, no signals, its stdout and stderr captured. */
export function capturedIO(): { io: CliIO; out: () => string; err: () => string } {
  let out = ''
  let err = ''
  const io: CliIO = {
    stdout: { write: (s: string) => ((out += s), true) },
    stderr: { write: (s: string) => ((err += s), true) },
    env: {},
    signals: { on: () => undefined, off: () => undefined },
    forceExit: () => undefined,
  }
  return { io, out: () => out, err: () => err }
}
