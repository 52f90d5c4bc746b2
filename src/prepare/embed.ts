/**
 * The sidecar half of `dataflex prepare`: load the SAME training config (so row i of the embedded pool is row i
 * of the preprocessed train set the selector will index: DataFlex embedded the raw JSON and drifted whenever
 * LLaMA-Factory dropped or reordered an example), then embed the train pool and the queries with the
 * `embeddings` op (mask-mean of the last hidden layer, L2-normalised).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Bridge } from '../bridge/index.ts'
import type { OpClient } from '../bridge/ops.ts'
import { withSidecar } from '../bridge/session.ts'
import { ConfigError } from '../config/errors.ts'
import type { LoadedConfig } from '../config/index.ts'
import { Executor, type LoadInfo } from '../trainers/executor.ts'
import type { Rows } from './knn.ts'

export class PrepareError extends Error {
  override readonly name = 'PrepareError'
  constructor(
    readonly code: 'bad_model_output' | 'aborted',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

export interface EmbedRequest {
  /** 'eval' or a dataset name. */
  readonly queries: string
  readonly embedModel: string | undefined
  readonly batchSize: number | undefined
  readonly signal?: AbortSignal
  readonly log: (line: string) => void
  readonly python?: string
}

export interface Embedded {
  readonly train: Rows
  readonly queries: Rows
  readonly info: LoadInfo
  readonly seconds: { load: number; train: number; queries: number }
}

/** The run's LLaMA-Factory args with what prepare must change, and nothing that affects the train rows. */
export function sidecarConfig(cfg: LoadedConfig, queries: string, scratch: string): Record<string, unknown> {
  const lf: Record<string, unknown> = { ...cfg.lf, output_dir: scratch, overwrite_output_dir: true, report_to: 'none' }
  if (queries !== 'eval') {
    const valSize = Number(lf['val_size'] ?? 0)
    if (valSize > 0) {
      // LLaMA-Factory refuses eval_dataset next to val_size, and dropping val_size would change the train rows.
      throw new ConfigError('bad_value', `--queries ${queries} cannot be used with val_size (${valSize}) in the config`, {
        key: '--queries',
        hint: 'val_size splits the train set; use --queries eval to take that split as the queries',
      })
    }
    lf['eval_dataset'] = queries
    lf['eval_on_each_dataset'] = false
  }
  return lf
}

/** Rows of the embeddings op, in chunks of about 16M floats (64 MiB) per reply. */
async function embedSplit(ops: OpClient, split: 'train' | 'eval', n: number, req: EmbedRequest): Promise<Rows> {
  let data: Float32Array | undefined
  let cols = 0
  let chunk = 512
  for (let start = 0; start < n; start += chunk) {
    req.signal?.throwIfAborted()
    const count = Math.min(chunk, n - start)
    const indices = Int32Array.from({ length: count }, (_, i) => start + i)
    const { embeddings: arr } = await ops.call('embeddings', {
      split,
      indices,
      layer: -1,
      pooling: 'mask_mean',
      normalize: true,
      model: req.embedModel,
      batch_size: req.batchSize,
    })
    if (arr.shape[0] !== count) {
      throw new PrepareError('bad_model_output', `embeddings returned shape [${arr.shape.join(', ')}] for ${count} rows`)
    }
    if (data === undefined) {
      cols = arr.shape[1]!
      data = new Float32Array(n * cols)
      chunk = Math.max(1, Math.floor(2 ** 24 / Math.max(1, cols)))
    }
    data.set(arr.data, start * cols)
    req.log(`  ${split}: ${Math.min(start + count, n)}/${n}`)
  }
  return { data: data ?? new Float32Array(0), rows: n, cols }
}

export async function embedPoolAndQueries(cfg: LoadedConfig, req: EmbedRequest): Promise<Embedded> {
  // LLaMA-Factory wants an output_dir; prepare writes nothing there.
  const scratch = mkdtempSync(join(tmpdir(), 'dataflex-prepare-'))
  try {
    const lf = sidecarConfig(cfg, req.queries, scratch)
    const aborted = (cause: unknown): Error => new PrepareError('aborted', 'prepare interrupted', { cause })
    return await withSidecar({ python: req.python, signal: req.signal, log: req.log, aborted }, (bridge) => embedAll(bridge, lf, req))
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

async function embedAll(bridge: Bridge, lf: Record<string, unknown>, req: EmbedRequest): Promise<Embedded> {
  const t0 = performance.now()
  const exec = new Executor(bridge)
  const info = await exec.load(lf)
  const t1 = performance.now()
  if (info.num_eval === 0) {
    throw new ConfigError('bad_value', 'no queries: the config has no eval set', {
      key: '--queries',
      hint: 'set eval_dataset (or val_size) in the config, or pass --queries <dataset name>',
    })
  }
  req.log(`loaded: ${info.num_train} train rows, ${info.num_eval} query rows (${((t1 - t0) / 1000).toFixed(1)} s)`)
  const train = await embedSplit(exec.ops, 'train', info.num_train, req)
  const t2 = performance.now()
  const queries = await embedSplit(exec.ops, 'eval', info.num_eval, req)
  const t3 = performance.now()
  if (queries.cols !== train.cols) {
    throw new PrepareError('bad_model_output', `query embeddings have ${queries.cols} columns, train ${train.cols}`)
  }
  return { train, queries, info, seconds: { load: (t1 - t0) / 1000, train: (t2 - t1) / 1000, queries: (t3 - t2) / 1000 } }
}
