/**
 * loadConfig on real files in a temp dir. The LLaMA-Factory key list comes from real introspection
 * (DATAFLEX_PYTHON, else the repo's .venv); tests that need it are skipped when no such Python exists.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { resolvePython } from '../src/bridge/python.ts'
import { ConfigError, loadConfig, loadLfArgNames, parsePythonYaml, type LoadOptions } from '../src/config/index.ts'
import { LF_STRING_KEYS } from '../src/config/lf-strings.ts'
import { TrainTypeSchema } from '../src/config/schema.ts'
import { trainerFor } from '../src/trainers/table.ts'
import { tempDir } from './temp-dirs.ts'

const PYTHON = resolvePython().executable
let lfNamesAvailable = false

beforeAll(async () => {
  lfNamesAvailable = (await loadLfArgNames()).ok
}, 90_000)

/** A working directory with a model folder, data/dataset_info.json and its files. */
function workspace(): string {
  const dir = tempDir('config')
  mkdirSync(join(dir, 'models', 'tiny'), { recursive: true })
  writeFileSync(join(dir, 'models', 'tiny', 'config.json'), '{}')
  mkdirSync(join(dir, 'data'))
  writeFileSync(
    join(dir, 'data', 'dataset_info.json'),
    JSON.stringify({
      synth_math: { file_name: 'math.json' },
      synth_text: { file_name: 'text.json' },
      synth_eval: { file_name: 'eval.json' },
      hub_set: { hf_hub_url: 'org/set' },
    }),
  )
  for (const f of ['math.json', 'text.json', 'eval.json']) writeFileSync(join(dir, 'data', f), '[]')
  return dir
}

const BASE = `model_name_or_path: models/tiny
stage: sft
do_train: true
finetuning_type: lora
dataset: synth_math,synth_text
template: qwen
output_dir: out/run
per_device_train_batch_size: 4
learning_rate: 1.0e-3
num_train_epochs: 3.0
`

function writeConfig(dir: string, text: string, name = 'cfg.yaml'): string {
  writeFileSync(join(dir, name), text)
  return name
}

async function load(text: string, overrides: string[] = [], opts: LoadOptions = {}) {
  const dir = workspace()
  const warnings: string[] = []
  const cfg = await loadConfig(writeConfig(dir, text), overrides, {
    cwd: dir,
    onWarning: (w) => warnings.push(w),
    ...opts,
  })
  return { cfg, dir, warnings }
}

async function configError(text: string, overrides: string[] = [], opts: LoadOptions = {}): Promise<ConfigError> {
  try {
    await load(text, overrides, opts)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

describe('loadConfig: valid configs', () => {
  it('splits DataFlex keys from LLaMA-Factory keys and applies defaults', async () => {
    const { cfg, dir } = await load(`${BASE}train_type: static\nwarmup_step: 3\n`)
    expect(cfg.path).toBe(join(dir, 'cfg.yaml'))
    expect(cfg.outputDir).toBe(join(dir, 'out', 'run'))
    expect(cfg.dataflex).toMatchObject({
      train_type: 'static',
      warmup_step: 3,
      update_step: 0,
      update_times: 1,
      train_step: 0,
      static_mix: false,
      freeze_gate: false,
      components_cfg_file: 'configs/components.yaml',
    })
    expect(cfg.lf).toEqual({
      model_name_or_path: 'models/tiny',
      stage: 'sft',
      do_train: true,
      finetuning_type: 'lora',
      dataset: 'synth_math,synth_text',
      template: 'qwen',
      output_dir: 'out/run',
      per_device_train_batch_size: 4,
      learning_rate: 0.001,
      num_train_epochs: 3,
    })
    expect(cfg.lf).not.toHaveProperty('train_type')
  })

  it('accepts a plain LLaMA-Factory YAML (no train_type) as static', async () => {
    const { cfg } = await load(BASE)
    expect(cfg.dataflex.train_type).toBe('static')
  })

  it('parses overrides as OmegaConf does (YAML scalars, dotted keys)', async () => {
    const { cfg } = await load(BASE, [
      'num_train_epochs=2.5',
      'dataset=synth_math,synth_eval',
      'disable_shuffling=true',
      'warmup_step=4',
      'lr_scheduler_kwargs.num_cycles=2',
      'eval_dataset=synth_eval',
      'init_mixture_proportions=[0.25, 0.75]',
    ])
    expect(cfg.lf['num_train_epochs']).toBe(2.5)
    expect(cfg.lf['dataset']).toBe('synth_math,synth_eval')
    expect(cfg.lf['disable_shuffling']).toBe(true)
    expect(cfg.lf['lr_scheduler_kwargs']).toEqual({ num_cycles: 2 })
    expect(cfg.dataflex.warmup_step).toBe(4)
    expect(cfg.dataflex.init_mixture_proportions).toEqual([0.25, 0.75])
  })

  it('reads YAML 1.1 scalars the way PyYAML + OmegaConf do', async () => {
    const { cfg } = await load(`${BASE}plot_loss: yes\nseed: 0x10\nweight_decay: 1e-2\nrun_name: 2024-01-01\n`)
    expect(cfg.lf['plot_loss']).toBe(true)
    expect(cfg.lf['seed']).toBe(16)
    expect(cfg.lf['weight_decay']).toBe(0.01)
    expect(cfg.lf['run_name']).toBe('2024-01-01')
  })

  it('treats null for None-defaulted DataFlex keys as absent', async () => {
    const { cfg } = await load(`${BASE}init_mixture_proportions: null\nmixture_sample_rule: ~\n`)
    expect(cfg.dataflex.init_mixture_proportions).toBeUndefined()
    expect(cfg.dataflex.mixture_sample_rule).toBeUndefined()
  })

  it('defaults output_dir to trainer_output, and writes nothing there', async () => {
    const { cfg, dir } = await load(BASE.replace('output_dir: out/run\n', ''))
    expect(cfg.outputDir).toBe(join(dir, 'trainer_output'))
    expect(existsSync(cfg.outputDir)).toBe(false)
    expect(readdirSync(dir).sort()).toEqual(['cfg.yaml', 'data', 'models'])
  })
})

describe('loadConfig: unknown keys', () => {
  it.skipIf(!existsSync(PYTHON))('rejects a DataFlex-looking typo with a did-you-mean hint', async () => {
    expect(lfNamesAvailable).toBe(true)
    const err = await configError(`${BASE}update_stpe: 2\n`)
    expect(err.code).toBe('unknown_key')
    expect(err.key).toBe('update_stpe')
    expect(err.hint).toContain('update_step')
    expect(err.message).toContain('cfg.yaml:11')
  })

  it.skipIf(!existsSync(PYTHON))('rejects a LLaMA-Factory typo, in a file or an override', async () => {
    const fromFile = await configError(`${BASE}learning_rat: 1.0e-4\n`)
    expect(fromFile.code).toBe('unknown_key')
    expect(fromFile.hint).toContain('learning_rate')
    const fromOverride = await configError(BASE, ['num_train_epoch=2'])
    expect(fromOverride.hint).toContain('num_train_epochs')
    expect(fromOverride.message).toContain("override 'num_train_epoch=2'")
  })

  it.skipIf(!existsSync(PYTHON))('lets ALLOW_EXTRA_ARGS through with a warning, as LLaMA-Factory does', async () => {
    const { warnings } = await load(`${BASE}my_extra: 1\n`, [], { env: { ...process.env, ALLOW_EXTRA_ARGS: '1' } })
    expect(warnings.join('\n')).toContain('my_extra')
  })

  it('skips the check with a warning when Python is unavailable', async () => {
    const { cfg, warnings } = await load(`${BASE}update_stpe: 2\n`, [], { python: join(tmpdir(), 'no-such-python') })
    expect(cfg.lf['update_stpe']).toBe(2)
    expect(warnings.join('\n')).toMatch(/cannot list LLaMA-Factory's arguments/)
  })

  it('rejects an unknown key inside an inline components block', async () => {
    const err = await configError(`${BASE}components:\n  selectors:\n    loss:\n      parms: {focus: high}\n`, [], {
      python: false,
    })
    expect(err.code).toBe('unknown_key')
    expect(err.key).toBe('components.selectors.loss.parms')
    expect(err.hint).toContain('params')
  })

  it('an inline components block takes every kind, and the older reorderers: spelling', async () => {
    const block = `components:\n  mixers:\n    m: {name: custom, params: {path: m.ts}}\n  weighters:\n    w:\n      params:\n  reorderers:\n    saw: {params: {kind: dynamic}}\n`
    const { cfg } = await load(`${BASE}${block}`, [], { python: false })
    expect(cfg.dataflex.components?.mixers).toEqual({ m: { name: 'custom', params: { path: 'm.ts' } } })
    // `params:` left empty reads as no params, as in a components file.
    expect(cfg.dataflex.components?.weighters).toEqual({ w: { params: {} } })
    expect(cfg.dataflex.components?.reorderers).toEqual({ saw: { params: { kind: 'dynamic' } } })
  })

  it('a misspelt section in an inline components block hints the kinds', async () => {
    const err = await configError(`${BASE}components:\n  reorder:\n    saw: {}\n`, [], { python: false })
    expect(err.code).toBe('unknown_key')
    expect(err.key).toBe('components.reorder')
    expect(err.hint).toBe("did you mean 'reorders'?")
  })
})

describe('loadConfig: bad values', () => {
  it('warmup_step: -1', async () => {
    const err = await configError(`${BASE}warmup_step: -1\n`, [], { python: false })
    expect(err.code).toBe('bad_value')
    expect(err.key).toBe('warmup_step')
    expect(err.message).toMatch(/warmup_step.*-1.*integer >= 0/)
  })

  it('train_type: dynamic_selct', async () => {
    const err = await configError(`${BASE}train_type: dynamic_selct\n`, [], { python: false })
    expect(err.code).toBe('bad_value')
    expect(err.key).toBe('train_type')
    expect(err.hint).toBe("did you mean 'dynamic_select'?")
    expect(err.message).toContain('static, dynamic_select, dynamic_mix, dynamic_weight')
  })

  it('wrong types and enums', async () => {
    expect((await configError(`${BASE}static_mix: maybe\n`, [], { python: false })).key).toBe('static_mix')
    expect((await configError(`${BASE}update_times: 1.5\n`, [], { python: false })).key).toBe('update_times')
    const rule = await configError(`${BASE}mixture_sample_rule: stratifed\n`, [], { python: false })
    expect(rule.hint).toContain('stratified')
  })

  it('init_mixture_proportions must match the number of datasets', async () => {
    const err = await configError(`${BASE}init_mixture_proportions: [0.2, 0.3, 0.5]\n`, [], { python: false })
    expect(err.code).toBe('bad_value')
    expect(err.key).toBe('init_mixture_proportions')
  })

  it('override without = is rejected', async () => {
    const err = await configError(BASE, ['do_train'], { python: false })
    expect(err.code).toBe('bad_value')
    expect(err.hint).toContain('key=value')
  })

  it("LLaMA-Factory's launch switches become the run's torchrun launch; a malformed one names its variable", async () => {
    const env = { ...process.env, CUDA_VISIBLE_DEVICES: '' }
    const two = (await load(BASE, [], { python: false, env: { ...env, NPROC_PER_NODE: '2' } })).cfg.launch
    expect(two).toEqual({ nprocPerNode: 2, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: undefined })
    // One process asked for explicitly is what runs.
    expect((await load(BASE, [], { python: false, env: { ...env, NPROC_PER_NODE: '1', FORCE_TORCHRUN: '0' } })).cfg.launch).toBeUndefined()
    const bad = await configError(BASE, [], { python: false, env: { ...env, NPROC_PER_NODE: 'two' } })
    expect([bad.code, bad.key]).toEqual(['bad_value', 'NPROC_PER_NODE'])
    expect((await configError(BASE, [], { python: false, env: { ...env, NNODES: '2', NODE_RANK: '2' } })).key).toBe('NODE_RANK')
  })

  it('every train type has a trainer', async () => {
    for (const type of TrainTypeSchema.options) {
      const { cfg } = await load(`${BASE}train_type: ${type}\ncomponent_name: w\nupdate_step: 1\n`, [], { python: false })
      expect(trainerFor(cfg).trainType).toBe(type)
    }
  })
})

describe('loadConfig: files and paths', () => {
  it('malformed YAML names the file and line', async () => {
    const err = await configError(`${BASE}lora_target: [q_proj, v_proj\nseed: 1\n`, [], { python: false })
    expect(err.code).toBe('yaml_syntax')
    expect(err.message).toMatch(/cfg\.yaml:\d+/)
    expect(err.message).toContain('cfg.yaml')
  })

  it('duplicate keys are a syntax error, as in OmegaConf', async () => {
    const err = await configError(`${BASE}seed: 1\nseed: 2\n`, [], { python: false })
    expect(err.code).toBe('yaml_syntax')
    expect(err.message).toContain('cfg.yaml:12') // the second 'seed'
  })

  it('a missing config file', async () => {
    const dir = workspace()
    await expect(loadConfig('nope.yaml', [], { cwd: dir, python: false })).rejects.toMatchObject({
      code: 'file_not_found',
      message: expect.stringContaining('nope.yaml'),
    })
  })

  it('a missing model path is model_not_found, naming key and path', async () => {
    for (const path of ['models/tny', './models/tiny2', '/definitely/not/here']) {
      const err = await configError(BASE, [`model_name_or_path=${path}`], { python: false })
      expect(err.code).toBe('model_not_found')
      expect(err.key).toBe('model_name_or_path')
      expect(err.message).toContain(path)
    }
  })

  it("with a remote sidecar (remotePaths) the model and datasets are that host's: not looked for here", async () => {
    const overrides = ['model_name_or_path=/only/on/the/gpu/host', 'dataset_dir=/only/on/the/gpu/host/data', 'dataset=whatever']
    expect((await configError(BASE, overrides, { python: false })).code).toBe('model_not_found')
    const { cfg } = await load(BASE, overrides, { python: false, remotePaths: true })
    expect(cfg.lf['model_name_or_path']).toBe('/only/on/the/gpu/host')
  })

  it('a hub id that is not in the local cache is model_not_found (runs never download)', async () => {
    const err = await configError(BASE, ['model_name_or_path=SomeOrg/some-model'], {
      python: false,
      env: { ...process.env, HF_HUB_CACHE: tempDir('hub') },
    })
    expect(err.code).toBe('model_not_found')
  })

  it('a dataset missing from dataset_info.json is dataset_not_found, with did-you-mean', async () => {
    const err = await configError(BASE, ['dataset=synth_math,synth_txt'], { python: false })
    expect(err.code).toBe('dataset_not_found')
    expect(err.message).toContain("'synth_txt'")
    expect(err.message).toContain('dataset_info.json')
    expect(err.hint).toBe("did you mean 'synth_text'?")
    const evalErr = await configError(BASE, ['eval_dataset=nothing_like_it'], { python: false })
    expect(evalErr.code).toBe('dataset_not_found')
    expect(evalErr.key).toBe('eval_dataset')
  })

  it('hub-hosted dataset entries need no local file; a missing local file is reported', async () => {
    await load(BASE, ['dataset=synth_math,hub_set'], { python: false })
    const dir = workspace()
    writeFileSync(join(dir, 'data', 'dataset_info.json'), JSON.stringify({ synth_math: { file_name: 'gone.json' } }))
    await expect(
      loadConfig(writeConfig(dir, BASE.replace('synth_math,synth_text', 'synth_math')), [], { cwd: dir, python: false }),
    ).rejects.toMatchObject({ code: 'file_not_found', message: expect.stringContaining('gone.json') })
  })

  it('a .json / .jsonl data file must be JSON: one document or JSON lines, as the datasets loader reads it', async () => {
    const withMath = async (text: string, file = 'math.json') => {
      const dir = workspace()
      writeFileSync(join(dir, 'data', 'dataset_info.json'), JSON.stringify({ synth_math: { file_name: file } }))
      writeFileSync(join(dir, 'data', file), text)
      return loadConfig(writeConfig(dir, BASE.replace('synth_math,synth_text', 'synth_math')), [], { cwd: dir, python: false })
    }
    const row = '{"instruction": "q", "output": "a"}'
    await withMath(`[\n ${row},\n ${row}\n]\n`)
    await withMath(`${row}\n${row}\n`) // JSON lines in a .json file
    await withMath('\uFEFF{\n "instruction": ["q"],\n "output": ["a"]\n}\n') // one object over lines, with a BOM
    await withMath(`${row}\n\n${row}\n`, 'math.jsonl')
    const bad = async (text: string, file?: string) => (await withMath(text, file).then(() => undefined, (e: unknown) => e)) as ConfigError
    const list = await bad(`[\n ${row},\n {"instruction": "q" "output": "a"}\n]\n`)
    expect(list).toMatchObject({ code: 'bad_dataset', key: 'dataset' })
    expect(list.message).toContain("dataset 'synth_math' (dataset, cfg.yaml:5)")
    expect(list.message).toContain('math.json:3:22: ') // the line and column where a comma was due
    expect((await bad(`${row}\n{"instruction": "q",\n`)).message).toContain('math.json:2:21: ')
    expect((await bad(`${row}\n${row.slice(0, -1)}\n`, 'math.jsonl')).message).toContain('math.jsonl:2:')
    const empty = await bad(' \n')
    expect(empty.code).toBe('bad_dataset')
    expect(empty.message).toContain('is empty')
  })

  it('a dataset_dir without dataset_info.json is file_not_found', async () => {
    const err = await configError(BASE, ['dataset_dir=elsewhere'], { python: false })
    expect(err.code).toBe('file_not_found')
    expect(err.key).toBe('dataset_dir')
  })
})

describe('loadConfig: YAML 1.1 booleans where LLaMA-Factory wants a string', () => {
  // BASE ends on line 10: an added line is line 11.
  const refused: { name: string; yaml?: string; override?: string; key: string; message: RegExp; hint: string }[] = [
    { name: 'save_strategy: no', yaml: 'save_strategy: no', key: 'save_strategy', message: /cfg\.yaml:11\): false, a boolean.*unquoted no into false/, hint: 'quote it: save_strategy: "no"' },
    { name: 'eval_strategy: NO', yaml: 'eval_strategy: NO', key: 'eval_strategy', message: /unquoted NO into false/, hint: 'quote it: eval_strategy: "NO"' },
    { name: 'logging_strategy: off', yaml: 'logging_strategy: off  # a comment', key: 'logging_strategy', message: /unquoted off into false/, hint: 'quote it: logging_strategy: "off"' },
    { name: 'report_to: no', yaml: 'report_to: no', key: 'report_to', message: /unquoted no into false/, hint: 'quote it: report_to: "no"' },
    { name: 'hub_strategy: on', yaml: 'hub_strategy: on', key: 'hub_strategy', message: /unquoted on into true/, hint: 'quote it: hub_strategy: "on"' },
    { name: 'an override save_strategy=no', override: 'save_strategy=no', key: 'save_strategy', message: /override 'save_strategy=no'\): false/, hint: `quote it: 'save_strategy="no"'` },
    { name: 'tool_format: false (a plain boolean)', yaml: 'tool_format: false', key: 'tool_format', message: /false, a boolean, where LLaMA-Factory expects a string$/, hint: 'write a string; quote it if you mean the word: tool_format: "false"' },
    { name: 'resume_from_checkpoint: true', yaml: 'resume_from_checkpoint: true', key: 'resume_from_checkpoint', message: /a boolean/, hint: 'give a checkpoint folder, or run `dataflex train --resume` to continue from the last checkpoint' },
  ]
  for (const c of refused) {
    it(`refuses ${c.name}, naming the key and the quoting`, async () => {
      const err = await configError(`${BASE}${c.yaml ?? ''}\n`, c.override === undefined ? [] : [c.override], { python: false })
      expect(err.code).toBe('bad_value')
      expect(err.key).toBe(c.key)
      expect(err.message).toMatch(c.message)
      expect(err.hint).toBe(c.hint)
    })
  }

  it('takes the quoted words, a boolean for a boolean key, and a boolean under a nested key', async () => {
    const text = `${BASE}save_strategy: "no"\neval_strategy: 'no'\nreport_to: none\nplot_loss: no\nfsdp_config: {xla: no}\n`
    const { cfg } = await load(text, ['logging_strategy="no"'], { python: false })
    expect(cfg.lf).toMatchObject({ save_strategy: 'no', eval_strategy: 'no', report_to: 'none', plot_loss: false, logging_strategy: 'no' })
  })

  it.skipIf(!existsSync(PYTHON))(
    "the key table is every string-typed argument of the installed LLaMA-Factory (fsdp aside: it takes true)",
    () => {
      // Read from the dataclasses' type hints: a key takes a string when its type is str, an enum of strings, a
      // Literal of strings, or a union with one of those and without bool.
      const script = [
        'import contextlib, dataclasses, enum, importlib.util, json, sys, types, typing',
        'if importlib.util.find_spec("torchaudio") is None:',
        '    sys.modules["torchaudio"] = types.ModuleType("torchaudio")',
        'with contextlib.redirect_stdout(sys.stderr):',
        '    from llamafactory.hparams import parser',
        'def stringish(tp):',
        '    origin = typing.get_origin(tp)',
        '    if origin in (typing.Union, types.UnionType):',
        '        args = typing.get_args(tp)',
        '        return bool not in args and any(stringish(a) for a in args)',
        '    if origin is typing.Literal:',
        '        return all(isinstance(a, str) for a in typing.get_args(tp))',
        '    if isinstance(tp, type) and issubclass(tp, enum.Enum):',
        '        return all(isinstance(m.value, str) for m in tp)',
        '    return tp is str',
        'keys = set()',
        'for cls in parser._TRAIN_ARGS:',
        '    hints = typing.get_type_hints(cls)',
        '    keys |= {f.name for f in dataclasses.fields(cls) if f.init and stringish(hints[f.name])}',
        'print(json.dumps(sorted(keys)))',
      ].join('\n')
      const installed = JSON.parse(execFileSync(PYTHON, ['-c', script], { timeout: 90_000, env: { ...process.env, PYTHONPATH: '' } }).toString()) as string[]
      expect(installed).toContain('fsdp')
      expect([...LF_STRING_KEYS].sort()).toEqual(installed.filter((k) => k !== 'fsdp'))
    },
    90_000,
  )
})

describe('LLaMA-Factory argument names', () => {
  it.skipIf(!existsSync(PYTHON))(
    'are introspected once and cached per interpreter and version',
    async () => {
      const cacheDir = tempDir('cache')
      const names = await loadLfArgNames({ cacheDir })
      expect(names.ok).toBe(true)
      if (!names.ok) return
      expect(names.fromCache).toBe(false)
      for (const key of ['model_name_or_path', 'dataset', 'num_train_epochs', 'lora_rank', 'max_new_tokens']) {
        expect(names.names.has(key)).toBe(true)
      }
      const files = readdirSync(cacheDir)
      expect(files).toHaveLength(1)
      expect(files[0]).toMatch(/^lf-arg-names-[0-9a-f]{16}\.json$/)
      const cached = JSON.parse(readFileSync(join(cacheDir, files[0]!), 'utf8')) as { names: string[] }
      expect(cached.names.length).toBe(names.names.size)
    },
    90_000,
  )
})

function hasOmegaConf(): boolean {
  if (!existsSync(PYTHON)) return false
  try {
    execFileSync(PYTHON, ['-c', 'import omegaconf'], { stdio: 'ignore', timeout: 30_000 })
    return true
  } catch {
    return false
  }
}

describe('YAML scalars', () => {
  const SCALARS = [
    'yes', 'No', 'on', 'OFF', 'y', 'n', 'true', '~', 'null', '', '1e-3', '1.0e-3', '1e3', '1.5', '.5', '-.5', '+1',
    '017', '08', '0x1F', '0b101', '1_000', '1:30', '1:30.5', '2024-01-01', '3.0', '1.', 'a,b', '"quoted"',
    '[0.5, 0.5]', '{a: 1}', '-1', '0', '1e+5', '6.02e23', 'qwen', 'none',
  ]

  it.skipIf(!hasOmegaConf())('match OmegaConf.from_dotlist value for value', () => {
    const script = [
      'import json, sys',
      'from omegaconf import OmegaConf',
      "vals = json.load(sys.stdin)",
      "print(json.dumps([OmegaConf.to_container(OmegaConf.from_dotlist(['k=' + v]))['k'] for v in vals]))",
    ].join('\n')
    const expected = JSON.parse(execFileSync(PYTHON, ['-c', script], { input: JSON.stringify(SCALARS) }).toString()) as unknown[]
    expect(SCALARS.map((s) => parsePythonYaml(s).value ?? null)).toEqual(expected)
  })

  it('special floats', () => {
    expect(parsePythonYaml('.inf').value).toBe(Number.POSITIVE_INFINITY)
    expect(parsePythonYaml('-.Inf').value).toBe(Number.NEGATIVE_INFINITY)
    expect(parsePythonYaml('.nan').value).toBeNaN()
  })
})
