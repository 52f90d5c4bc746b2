/**
 * The domains of a mix run: the datasets of `dataset:` (each one domain, in list order), the executor's report of
 * their rows checked against that list, the held-out eval sets of `mixer_eval_dataset`, and the initial proportions
 * (a list, or a DoReMi run's average-weights file).
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { ConfigError, type LoadedConfig } from '../config/index.ts'
import { Rng } from '../math/rng.ts'
import type { HeldOut } from '../strategies/mixer.ts'
import type { LoadInfo } from './executor.ts'
import { normalized } from './mix-draw.ts'

/** The comma-separated names of a dataset list key. */
export function datasetNames(value: unknown): string[] {
  if (typeof value !== 'string') return Array.isArray(value) ? value.map(String) : []
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

/**
 * `mixer_eval_dataset`: each name is a domain's held-out set, the domain named by removing `_eval` (the Python
 * DataFlex's rule: `code_eval` → `code`). Returns the eval dataset of each domain (undefined: none).
 */
export function mixerEvalSets(cfg: Pick<LoadedConfig, 'dataflex' | 'path'>, domains: readonly string[]): (string | undefined)[] {
  const out: (string | undefined)[] = domains.map(() => undefined)
  for (const name of datasetNames(cfg.dataflex.mixer_eval_dataset)) {
    const domain = name.replace('_eval', '')
    const d = domains.indexOf(domain)
    if (d < 0) {
      throw new ConfigError(
        'bad_value',
        `mixer_eval_dataset '${name}' (${cfg.path}) names no domain: '${domain}' is not in dataset (${domains.join(', ')})`,
        { key: 'mixer_eval_dataset', hint: "name each held-out set after its domain plus '_eval', e.g. facts_eval for facts" },
      )
    }
    if (out[d] !== undefined) {
      throw new ConfigError('bad_value', `mixer_eval_dataset names two held-out sets for domain '${domain}'`, { key: 'mixer_eval_dataset' })
    }
    out[d] = name
  }
  return out
}

/**
 * The executor's domain report, checked against the dataset list: names in order, rows adding up to the training
 * set, and every row's domain where the concatenation puts it. Returns each domain's training indices.
 */
export function domainRows(info: LoadInfo, names: readonly string[]): Int32Array[] {
  const report = info.domains
  if (report === null) throw new Error('the executor loaded no domains (load was not asked for them)')
  if (report.names.join(',') !== names.join(',')) {
    throw new Error(`the executor's domains (${report.names.join(', ')}) differ from dataset (${names.join(', ')})`)
  }
  const total = report.rows.reduce((a, b) => a + b, 0)
  if (total !== info.num_train || report.domain_of_row.length !== info.num_train) {
    throw new Error(`the domains' rows add up to ${total} (${report.domain_of_row.length} labelled) but the training set has ${info.num_train}`)
  }
  const rows: Int32Array[] = []
  let start = 0
  report.rows.forEach((n, d) => {
    const idx = Int32Array.from({ length: n }, (_, j) => start + j)
    for (const i of idx) {
      if (report.domain_of_row[i] !== d) throw new Error(`row ${i} is labelled domain ${report.domain_of_row[i]}, expected ${d} (${names[d]})`)
    }
    rows.push(idx)
    start += n
  })
  return rows
}

/** Where the initial proportions came from, for the run's record. */
export interface InitialProportions {
  values: Float64Array
  /** 'uniform', 'config', or the weights file read. */
  source: string
}

/**
 * `init_mixture_proportions`: a list (one per dataset), a path to a DoReMi `doremi_average_weights.json` (its weights
 * matched to the datasets by name) or to a JSON list; absent: uniform. The path is tried from the working directory,
 * then from the config file's folder.
 */
export function initialProportions(cfg: Pick<LoadedConfig, 'dataflex' | 'path'>, names: readonly string[]): InitialProportions {
  const given = cfg.dataflex.init_mixture_proportions
  const key = 'init_mixture_proportions'
  if (given === undefined) return { values: new Float64Array(names.length).fill(1 / names.length), source: 'uniform' }
  if (Array.isArray(given)) {
    const values = normalized(given)
    if (values === null || values.length !== names.length) {
      throw new ConfigError('bad_value', `${key} must have ${names.length} non-negative entries with a positive sum`, { key })
    }
    return { values, source: 'config' }
  }
  const candidates = [resolve(given), resolve(dirname(cfg.path), given)]
  const file = candidates.find((p) => existsSync(p))
  if (file === undefined) {
    throw new ConfigError('file_not_found', `${key} file not found: ${given} (tried ${candidates.join(', ')})`, {
      key,
      hint: "point it at a DoReMi run's doremi_average_weights.json",
    })
  }
  let data: unknown
  try {
    data = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConfigError('bad_value', `${key}: ${file} is not JSON (${(err as Error).message})`, { key })
  }
  let weights: unknown[]
  if (Array.isArray(data)) weights = data
  else if (typeof data === 'object' && data !== null && Array.isArray((data as Record<string, unknown>)['average_weights'])) {
    const d = data as { average_weights: unknown[]; domain_names?: unknown }
    const fileNames = Array.isArray(d.domain_names) ? d.domain_names.map(String) : undefined
    if (fileNames === undefined) weights = d.average_weights
    else {
      const missing = names.filter((n) => !fileNames.includes(n))
      if (missing.length > 0 || fileNames.length !== names.length) {
        throw new ConfigError(
          'bad_value',
          `${key}: ${file} has weights for ${fileNames.join(', ')}, but dataset lists ${names.join(', ')}`,
          { key, hint: 'use the weights of a run over the same datasets' },
        )
      }
      weights = names.map((n) => d.average_weights[fileNames.indexOf(n)])
    }
  } else {
    throw new ConfigError('bad_value', `${key}: ${file} holds neither a list nor {"average_weights": [...]}`, { key })
  }
  const values = weights.every((w) => typeof w === 'number') ? normalized(weights as number[]) : null
  if (values === null || values.length !== names.length) {
    throw new ConfigError('bad_value', `${key}: ${file} must give ${names.length} non-negative weights with a positive sum`, { key })
  }
  return { values, source: file }
}

/**
 * Rows a mixer evaluates on, per domain: its `mixer_eval_dataset` set when it has one, else `want` rows split off
 * the domain's training rows (seeded, at most half of them), which are then never drawn for training.
 */
export function holdOut(
  want: number,
  rows: readonly Int32Array[],
  evalSets: readonly (string | undefined)[],
  info: Pick<LoadInfo, 'eval_splits'>,
  seed: number,
): { heldOut: HeldOut[]; drawable: Int32Array[] } {
  const heldOut: HeldOut[] = []
  const drawable = [...rows]
  rows.forEach((r, i) => {
    const evalSet = evalSets[i]
    const evalRows = evalSet === undefined ? undefined : info.eval_splits.find((s) => s.name === evalSet)?.rows
    if (evalSet !== undefined && evalRows !== undefined) {
      heldOut.push({ split: `eval:${evalSet}`, indices: Int32Array.from({ length: evalRows }, (_, j) => j) })
      return
    }
    const m = Math.min(want, Math.floor(r.length / 2))
    const perm = Rng.derive(seed, 'mix-heldout', i).permutation(r.length)
    heldOut.push({ split: 'train', indices: Int32Array.from({ length: m }, (_, j) => r[perm[j]!]!).sort() })
    const keep = new Set(Array.from(perm.subarray(m), (j) => r[j]!))
    drawable[i] = r.filter((row) => keep.has(row))
  })
  return { heldOut, drawable }
}
