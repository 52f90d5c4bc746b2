/**
 * Checks that LLaMA-Factory would only fail on after seconds of imports (or after a hub request):
 * the model path and the dataset names. Paths resolve against the working directory, as in LLaMA-Factory.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { LaunchSwitchError, torchrunFromEnv, visibleGpuCount, type TorchrunLaunch } from '../bridge/launch.ts'
import { ConfigError } from './errors.ts'
import { splitNames } from './schema.ts'
import { didYouMean } from './suggest.ts'

export interface PrecheckContext {
  cwd: string
  env: NodeJS.ProcessEnv
  /** "cfg.yaml:12" or "override 'k=v'": where a key was set, for messages. */
  where: (key: string) => string
  warn: (message: string) => void
}

const HUB_ID = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)?$/

function truthyEnv(value: string | undefined): boolean {
  return value !== undefined && ['1', 'true', 'yes', 'on'].includes(value.toLowerCase())
}

function hubCacheDir(env: NodeJS.ProcessEnv): string {
  if (env['HF_HUB_CACHE']) return env['HF_HUB_CACHE']
  const hfHome = env['HF_HOME'] || join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'huggingface')
  return join(hfHome, 'hub')
}

export function checkModel(lf: Record<string, unknown>, ctx: PrecheckContext): void {
  const key = 'model_name_or_path'
  const value = lf[key]
  if (value === undefined || value === null) {
    throw new ConfigError('bad_value', `missing required key '${key}'`, {
      key,
      hint: 'set it to a local model directory',
    })
  }
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError('bad_value', `'${key}' (${ctx.where(key)}) must be a path or model id`, { key })
  }
  const path = resolve(ctx.cwd, value)
  if (existsSync(path)) return

  const notFound = (hint: string): ConfigError =>
    new ConfigError('model_not_found', `model not found: ${key} '${value}' (${ctx.where(key)}) does not exist at ${path}`, {
      key,
      hint,
    })
  if (value.startsWith('~')) throw notFound(`LLaMA-Factory does not expand '~'; use an absolute path`)
  if (!HUB_ID.test(value) || isAbsolute(value) || value.startsWith('.')) {
    throw notFound('check the path (relative paths resolve against the current directory)')
  }
  // `org/name` could be a hub id or a relative path; an existing first segment means a local path was meant.
  const [first] = value.split('/')
  if (value.includes('/') && first !== undefined && existsSync(resolve(ctx.cwd, first))) {
    throw notFound(`'${first}' exists here but has no '${value.slice(first.length + 1)}'`)
  }
  if (lf['use_modelscope_hub'] === true || lf['use_openmind_hub'] === true) return // other hubs, other caches
  if (truthyEnv(ctx.env['USE_MODELSCOPE_HUB']) || truthyEnv(ctx.env['USE_OPENMIND_HUB'])) return
  // Runs are offline (the sidecar sets HF_HUB_OFFLINE), so a hub id must already be in the local cache.
  if (existsSync(join(hubCacheDir(ctx.env), `models--${value.replaceAll('/', '--')}`))) return
  throw notFound('not a local directory and not in the Hugging Face cache (runs never download models)')
}

function readDatasetInfo(dir: string, names: string[], ctx: PrecheckContext): Record<string, unknown> {
  const file = join(dir, 'dataset_info.json')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError('file_not_found', `cannot read ${file} (needed for dataset ${names.join(', ')})`, {
      key: 'dataset_dir',
      hint: `dataset_dir (${ctx.where('dataset_dir')}) must be a folder containing dataset_info.json`,
      cause: err,
    })
  }
  let info: unknown
  try {
    info = JSON.parse(text)
  } catch (err) {
    throw new ConfigError('bad_value', `${file} is not valid JSON: ${(err as Error).message}`, {
      key: 'dataset_dir',
      cause: err,
    })
  }
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    throw new ConfigError('bad_value', `${file} must be a JSON object of dataset entries`, { key: 'dataset_dir' })
  }
  return info as Record<string, unknown>
}

/** Every `dataset` / `eval_dataset` / `mixer_eval_dataset` name must be defined in dataset_info.json. */
export function checkDatasets(
  lf: Record<string, unknown>,
  extra: { mixer_eval_dataset: string | undefined },
  ctx: PrecheckContext,
): void {
  const lists: [string, unknown][] = [
    ['dataset', lf['dataset']],
    ['eval_dataset', lf['eval_dataset']],
    ['mixer_eval_dataset', extra.mixer_eval_dataset],
  ]
  const wanted: [string, string][] = []
  for (const [key, value] of lists) {
    if (value === undefined || value === null) continue
    const names = splitNames(value)
    if (names === undefined) {
      throw new ConfigError('bad_value', `'${key}' (${ctx.where(key)}) must be a comma-separated list of dataset names`, {
        key,
      })
    }
    for (const name of names) wanted.push([key, name])
  }
  if (wanted.length === 0) return

  const datasetDir = lf['dataset_dir'] ?? 'data'
  if (typeof datasetDir !== 'string') return // a dict (inline dataset_info) is an API-only form; LF checks it
  if (datasetDir === 'ONLINE' || datasetDir.startsWith('REMOTE:')) return // hub-hosted: nothing local to check
  const dir = resolve(ctx.cwd, datasetDir)
  const info = readDatasetInfo(
    dir,
    wanted.map(([, n]) => n),
    ctx,
  )
  const file = join(dir, 'dataset_info.json')
  for (const [key, name] of wanted) {
    const entry = info[name]
    if (entry === undefined) {
      throw new ConfigError('dataset_not_found', `dataset '${name}' (${key}, ${ctx.where(key)}) is not defined in ${file}`, {
        key,
        hint: didYouMean(name, Object.keys(info)) ?? `add an entry for '${name}' to ${file}`,
      })
    }
    if (typeof entry !== 'object' || entry === null) continue
    const e = entry as Record<string, unknown>
    const remote = ['hf_hub_url', 'ms_hub_url', 'om_hub_url', 'script_url', 'cloud_file_name'].some((k) => k in e)
    const fileName = e['file_name']
    if (!remote && typeof fileName === 'string') {
      const path = join(dir, fileName)
      if (!existsSync(path) || !(statSync(path).isFile() || statSync(path).isDirectory())) {
        throw new ConfigError('file_not_found', `data file for dataset '${name}' not found: ${path}`, {
          key,
          hint: `fix "file_name" of '${name}' in ${file}`,
        })
      }
      if (statSync(path).isFile()) checkJsonData(path, name, `${key}, ${ctx.where(key)}`, key)
    }
  }
}

// Larger files are left to the sidecar: parsing them twice would cost seconds on every run.
const JSON_CHECK_MAX_BYTES = 64 * 1024 * 1024

/** 1-based line and column of a character offset. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset)
  const line = before.split('\n').length
  return { line, col: offset - before.lastIndexOf('\n') }
}

/** The offset V8 names in a JSON.parse error ("... at position 53"), if any. */
function jsonErrorOffset(err: unknown): number | undefined {
  const m = /position (\d+)/.exec((err as Error).message)
  return m ? Number(m[1]) : undefined
}

/**
 * A `.json` / `.jsonl` data file must be non-empty JSON: the `datasets` loader otherwise fails after the sidecar's
 * imports with "An error occurred while generating the dataset", naming no file. Like that loader, a `.json` file may
 * hold one JSON document or JSON lines.
 */
function checkJsonData(path: string, name: string, where: string, key: string): void {
  const lower = path.toLowerCase()
  if (!lower.endsWith('.json') && !lower.endsWith('.jsonl')) return
  if (statSync(path).size > JSON_CHECK_MAX_BYTES) return
  const text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '') // a byte-order mark is no syntax error
  const bad = (at: string, why: string): ConfigError =>
    new ConfigError('bad_dataset', `data file of dataset '${name}' (${where}) is not valid JSON: ${path}${at}: ${why}`, {
      key,
      hint: 'fix the file (a JSON list of rows, or one JSON object per line)',
    })
  if (text.trim() === '') {
    throw new ConfigError('bad_dataset', `data file of dataset '${name}' (${where}) is empty: ${path}`, {
      key,
      hint: 'give it rows (a JSON list of rows, or one JSON object per line)',
    })
  }
  let docError: unknown
  try {
    JSON.parse(text)
    return
  } catch (err) {
    docError = err
  }
  const message = (err: unknown): string => (err as Error).message.replace(/ in JSON at position \d+.*$/, '')
  const lines = text.split('\n')
  const parses = (line: string): boolean => {
    try {
      JSON.parse(line)
      return true
    } catch {
      return false
    }
  }
  // One document (a list of rows, or an object spread over lines): report where it breaks.
  if (!lower.endsWith('.jsonl') && !parses(lines.find((l) => l.trim() !== '') ?? '')) {
    const at = jsonErrorOffset(docError)
    const pos = at === undefined ? undefined : lineCol(text, at)
    throw bad(pos ? `:${pos.line}:${pos.col}` : '', message(docError))
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line.trim() === '') continue
    try {
      JSON.parse(line)
    } catch (err) {
      const at = jsonErrorOffset(err)
      throw bad(`:${i + 1}${at === undefined ? '' : `:${at + 1}`}`, message(err))
    }
  }
}

/** `init_mixture_proportions` has one entry per training dataset (asserted by DataFlex's mixture manager). */
export function checkProportions(
  lf: Record<string, unknown>,
  proportions: number[] | string | undefined,
  ctx: PrecheckContext,
): void {
  // A file of weights is read (and its domain names matched) by the mix trainer before the model loads.
  if (proportions === undefined || typeof proportions === 'string') return
  const names = splitNames(lf['dataset'])
  if (names === undefined || names.length === proportions.length) return
  throw new ConfigError(
    'bad_value',
    `init_mixture_proportions (${ctx.where('init_mixture_proportions')}) has ${proportions.length} entries but dataset lists ${names.length}`,
    { key: 'init_mixture_proportions', hint: 'give one proportion per dataset, in the order of `dataset`' },
  )
}

/** A number as Hugging Face's argument parser reads it: YAML 1.1 leaves `5e-5` a string, which it converts. */
function numeric(value: unknown): number | undefined {
  if (typeof value === 'number') return value
  if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value)
  return undefined
}

interface NumberRule {
  integer: boolean
  ok: (v: number) => boolean
  expected: string
}

/**
 * Values Hugging Face / LLaMA-Factory accept silently and then fail on after the model has loaded (a negative learning
 * rate in the optimizer), refuse late with an unhelpful message (a zero batch size), or train on wrongly (max_steps 0
 * trains one step).
 */
const TRAINING_NUMBERS: Record<string, NumberRule> = {
  learning_rate: { integer: false, ok: (v) => v >= 0, expected: 'a number >= 0' },
  per_device_train_batch_size: { integer: true, ok: (v) => v >= 1, expected: 'an integer >= 1' },
  per_device_eval_batch_size: { integer: true, ok: (v) => v >= 1, expected: 'an integer >= 1' },
  gradient_accumulation_steps: { integer: true, ok: (v) => v >= 1, expected: 'an integer >= 1' },
  num_train_epochs: { integer: false, ok: (v) => v >= 0, expected: 'a number >= 0' },
  max_steps: { integer: true, ok: (v) => v === -1 || v >= 1, expected: 'a positive integer, or -1 (train num_train_epochs)' },
  cutoff_len: { integer: true, ok: (v) => v >= 1, expected: 'an integer >= 1' },
  max_samples: { integer: true, ok: (v) => v >= 1, expected: 'an integer >= 1' },
  warmup_steps: { integer: true, ok: (v) => v >= 0, expected: 'an integer >= 0' },
  warmup_ratio: { integer: false, ok: (v) => v >= 0 && v <= 1, expected: 'a number in [0, 1]' },
  weight_decay: { integer: false, ok: (v) => v >= 0, expected: 'a number >= 0' },
}

/** The obviously invalid training numbers, refused before the sidecar loads a model. */
export function checkTrainingNumbers(lf: Record<string, unknown>, ctx: PrecheckContext): void {
  for (const [key, rule] of Object.entries(TRAINING_NUMBERS)) {
    const raw = lf[key]
    if (raw === undefined || raw === null) continue
    const v = numeric(raw)
    if (v === undefined || !Number.isFinite(v) || (rule.integer && !Number.isInteger(v)) || !rule.ok(v)) {
      throw new ConfigError('bad_value', `bad value for '${key}' (${ctx.where(key)}): ${JSON.stringify(raw)}; expected ${rule.expected}`, { key })
    }
  }
  // Hugging Face trains num_train_epochs only when max_steps is unset; 0 epochs then plans no step at all.
  const maxSteps = numeric(lf['max_steps']) ?? -1
  if (maxSteps <= 0 && lf['num_train_epochs'] !== undefined && numeric(lf['num_train_epochs']) === 0) {
    throw new ConfigError('bad_value', `bad value for 'num_train_epochs' (${ctx.where('num_train_epochs')}): 0 trains nothing`, {
      key: 'num_train_epochs',
      hint: 'set num_train_epochs > 0, or max_steps',
    })
  }
}

/** output_dir must be a folder or not exist yet (Hugging Face's makedirs fails on a file with "[Errno 17] File exists"). */
export function checkOutputDir(path: string, shown: string, ctx: PrecheckContext): void {
  if (!existsSync(path) || statSync(path).isDirectory()) return
  throw new ConfigError('bad_value', `output_dir '${shown}' (${ctx.where('output_dir')}) is an existing file, not a folder: ${path}`, {
    key: 'output_dir',
    hint: 'choose a new output_dir, or remove the file',
  })
}

/**
 * LLaMA-Factory's launcher switches for several processes. Runs are one process for now: a switch the user sets is
 * refused rather than ignored (the run would silently use one process).
 */
/** LLaMA-Factory's launch switches (FORCE_TORCHRUN, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR/PORT, or several
 * visible GPUs): the torchrun launch they ask for, or undefined for one process; a malformed one is a config error. */
export function checkLaunchSwitches(ctx: Pick<PrecheckContext, 'env'>): TorchrunLaunch | undefined {
  try {
    return torchrunFromEnv(ctx.env, () => visibleGpuCount(ctx.env))
  } catch (err) {
    if (!(err instanceof LaunchSwitchError)) throw err
    throw new ConfigError('bad_value', err.message, { key: err.variable, hint: 'LLaMA-Factory\'s launch switches: see docs/ranks.md' })
  }
}
