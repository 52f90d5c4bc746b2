/**
 * Checks that LLaMA-Factory would only fail on after seconds of imports (or after a hub request):
 * the model path and the dataset names. Paths resolve against the working directory, as in LLaMA-Factory.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
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
