/**
 * The bad-input corpus (test/fixtures/bad/, one YAML per case, shared data/ and strategies/): `dataflex train` on each
 * case through the CLI, as users run it, from a fresh copy of the corpus. Every case must exit non-zero (2 for bad
 * config or data, 1 for a strategy bug or a run that diverges) with a message naming what is wrong, within its time
 * limit, and leave no half-written output: bad input writes nothing at all, a runtime failure only complete files.
 */
import { execFile } from 'node:child_process'
import { cpSync, existsSync, lstatSync, readdirSync, readFileSync, symlinkSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, resolvePython } from '../src/bridge/index.ts'
import { tempDir } from './temp-dirs.ts'

const CORPUS = join(REPO_ROOT, 'test', 'fixtures', 'bad')
const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')
const HAS_PYTHON = existsSync(resolvePython().executable)

interface Case {
  /** test/fixtures/bad/<name>.yaml */
  name: string
  exit: 1 | 2
  /** The `error [code]:` of the message. */
  code: string
  /** Substrings the message must contain: the key, file or step at fault. */
  mentions: string[]
  /** 'sidecar': fails only once Python has loaded the data or trains; 'python': needs the LLaMA-Factory key list. */
  needs?: 'python' | 'sidecar'
}

const CASES: Case[] = [
  // Refused while the config is read: no Python process (or only the cached key list).
  { name: 'malformed_yaml', exit: 2, code: 'yaml_syntax', mentions: ['malformed_yaml.yaml:7:1'] },
  { name: 'not_a_mapping', exit: 2, code: 'bad_value', mentions: ['not_a_mapping.yaml', 'mapping'] },
  { name: 'wrong_type', exit: 2, code: 'bad_value', mentions: ["'update_step'", "'two'", 'wrong_type.yaml:21'] },
  { name: 'misspelt_train_type', exit: 2, code: 'bad_value', mentions: ["'train_type'", "did you mean 'dynamic_select'?"] },
  { name: 'unknown_key', exit: 2, code: 'unknown_key', mentions: ["'learning_rat'", "did you mean 'learning_rate'?"], needs: 'python' },
  { name: 'missing_model', exit: 2, code: 'model_not_found', mentions: ['model_name_or_path', 'models/tiny-qwen3'] },
  { name: 'unknown_dataset', exit: 2, code: 'dataset_not_found', mentions: ["'goood'", "did you mean 'good'?"] },
  { name: 'missing_data_file', exit: 2, code: 'file_not_found', mentions: ["'missing_file'", 'absent.json'] },
  { name: 'broken_json', exit: 2, code: 'bad_dataset', mentions: ["'broken_json'", 'broken.json:3:35', 'broken_json.yaml:7'] },
  { name: 'broken_jsonl', exit: 2, code: 'bad_dataset', mentions: ["'broken_jsonl'", 'broken.jsonl:2:'] },
  { name: 'empty_file', exit: 2, code: 'bad_dataset', mentions: ["'empty_file'", 'empty.json', 'is empty'] },
  { name: 'output_dir_is_file', exit: 2, code: 'bad_value', mentions: ["output_dir 'data/good.json'", 'existing file'] },
  { name: 'negative_learning_rate', exit: 2, code: 'bad_value', mentions: ["'learning_rate'", '-1', '>= 0'] },
  { name: 'zero_batch_size', exit: 2, code: 'bad_value', mentions: ["'per_device_train_batch_size'", '>= 1'] },
  { name: 'zero_grad_accum', exit: 2, code: 'bad_value', mentions: ["'gradient_accumulation_steps'", '>= 1'] },
  { name: 'negative_epochs', exit: 2, code: 'bad_value', mentions: ["'num_train_epochs'", '-1'] },
  { name: 'zero_epochs', exit: 2, code: 'bad_value', mentions: ["'num_train_epochs'", 'trains nothing'] },
  { name: 'zero_max_steps', exit: 2, code: 'bad_value', mentions: ["'max_steps'", 'positive integer, or -1'] },
  { name: 'zero_cutoff_len', exit: 2, code: 'bad_value', mentions: ["'cutoff_len'", '>= 1'] },
  { name: 'unquoted_no', exit: 2, code: 'bad_value', mentions: ["'save_strategy'", 'unquoted_no.yaml:16', 'unquoted no into false', 'quote it: save_strategy: "no"'] },
  { name: 'missing_components_file', exit: 2, code: 'file_not_found', mentions: ['components_cfg_file', 'no_such_components.yaml'] },
  { name: 'unknown_preset', exit: 2, code: 'bad_value', mentions: ["'lose'", "did you mean 'loss'?"] },
  { name: 'bad_strategy_param', exit: 2, code: 'unknown_key', mentions: ["'temprature'", "did you mean 'temperature'?"] },
  { name: 'missing_strategy_file', exit: 2, code: 'file_not_found', mentions: ['strategies/absent.mjs'] },
  { name: 'strategy_syntax_error', exit: 2, code: 'bad_value', mentions: ['syntax_error.mjs', 'cannot load custom selector'] },
  // Refused by the sidecar once LLaMA-Factory has read and preprocessed the data (before the model loads).
  { name: 'no_rows', exit: 2, code: 'config_error', mentions: ["'no_rows'", 'has no rows'], needs: 'sidecar' },
  { name: 'all_rows_dropped', exit: 2, code: 'config_error', mentions: ["'all_dropped'", 'every row', 'dropped by preprocessing'], needs: 'sidecar' },
  { name: 'missing_column', exit: 2, code: 'config_error', mentions: ["'missing_column'", "no column 'output'"], needs: 'sidecar' },
  { name: 'cutoff_len_1', exit: 2, code: 'config_error', mentions: ['cutoff_len', 'none of the 12 training rows', 'larger cutoff_len'], needs: 'sidecar' },
  // Refused after the model loaded (by the schedule): the output_dir the Trainer created is removed again.
  { name: 'empty_dataloader', exit: 2, code: 'config_error', mentions: ['dataloader is empty', '12 samples, batch 16'], needs: 'sidecar' },
  // Fail while training: the run stops at the faulty step with what it wrote so far complete.
  { name: 'nan_loss', exit: 1, code: 'non_finite_loss', mentions: ['loss is nan at step 2', 'learning_rate'], needs: 'sidecar' },
  { name: 'select_too_many', exit: 1, code: 'too_many_indices', mentions: ['one_too_many', '5 indices, 4 requested', '(returned by select() at ', 'select_too_many.mjs:8:'], needs: 'sidecar' },
  { name: 'weigh_nan', exit: 1, code: 'bad_weights', mentions: ["'nan_weights'", 'NaN', '(returned by weigh() at ', 'weigh_nan.mjs:8:'], needs: 'sidecar' },
  { name: 'mix_wrong_type', exit: 1, code: 'bad_scores', mentions: ['string_proportions', 'got string "uniform"', '(returned by mix() at ', 'mix_wrong_type.mjs:8:'], needs: 'sidecar' },
  { name: 'order_garbage', exit: 1, code: 'bad_index', mentions: ['repeat_first', 'repeats an index', '(returned by order() at ', 'order_garbage.mjs:8:'], needs: 'sidecar' },
]

// Per case, far above what each takes (about 1 s before the sidecar, 10-20 s with it): a hang fails the case.
const CLI_LIMIT_MS = 30_000
const SIDECAR_LIMIT_MS = 150_000

/** At most two sidecars at once: each wants a core. */
const lanes = (() => {
  let free = 2
  const waiting: (() => void)[] = []
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (free === 0) await new Promise<void>((resolve) => waiting.push(resolve))
    else free--
    try {
      return await fn()
    } finally {
      const next = waiting.shift()
      if (next) next()
      else free++
    }
  }
})()

/** Every regular file under `dir` (symlinks, i.e. the model folder, are not followed) with its size and mtime. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>()
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name)
      const st = lstatSync(p)
      if (st.isSymbolicLink()) continue
      if (st.isDirectory()) walk(p)
      else files.set(relative(dir, p), `${st.size} ${st.mtimeMs}`)
    }
  }
  walk(dir)
  return files
}

/** A file a run left is complete: no temp file of an atomic write, JSON that parses, JSON lines ending in a newline. */
function expectComplete(dir: string, file: string): void {
  const text = readFileSync(join(dir, file), 'utf8')
  expect(file, 'a temp file of an interrupted atomic write').not.toMatch(/\.tmp-/)
  if (file.endsWith('.json')) expect(() => JSON.parse(text), file).not.toThrow()
  if (file.endsWith('.jsonl') && text !== '') {
    expect(text.endsWith('\n'), `${file} ends mid-line`).toBe(true)
    for (const line of text.split('\n').filter((l) => l !== '')) expect(() => JSON.parse(line), `${file}: ${line}`).not.toThrow()
  }
}

function train(cwd: string, config: string, timeout: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'train', config], { cwd, timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: string | null }) | null
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr })
    })
  })
}

describe.concurrent('bad inputs: dataflex train exits non-zero, says what is wrong, and leaves no half-written output', () => {
  it('the corpus and the table agree', () => {
    const files = readdirSync(CORPUS).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -'.yaml'.length))
    expect(files.sort()).toEqual(CASES.map((c) => c.name).sort())
  })

  for (const c of CASES) {
    const sidecar = c.needs === 'sidecar'
    it.skipIf(c.needs !== undefined && !HAS_PYTHON)(
      c.name,
      async () => {
        const dir = tempDir(`bad-${c.name}`)
        cpSync(CORPUS, dir, { recursive: true })
        symlinkSync(join(REPO_ROOT, 'models'), join(dir, 'models'))
        const before = snapshot(dir)
        const limit = sidecar ? SIDECAR_LIMIT_MS : CLI_LIMIT_MS
        const started = performance.now()
        const r = await (sidecar ? lanes(() => train(dir, `${c.name}.yaml`, limit)) : train(dir, `${c.name}.yaml`, limit))
        expect(r.signal, `killed after ${Math.round(performance.now() - started)} ms (a hang?)\n${r.stderr.slice(-2000)}`).toBeNull()
        expect(r.code, r.stderr.slice(-3000)).toBe(c.exit)
        const message = r.stderr.slice(r.stderr.indexOf('error ['))
        expect(message).toContain(`error [${c.code}]: `)
        for (const m of c.mentions) expect(message).toContain(m)
        expect(r.stderr).not.toMatch(/^\s+at /m) // no stack without DATAFLEX_DEBUG
        expect(r.stderr).not.toContain('Traceback')
        expect(r.stdout).toBe('')

        const after = snapshot(dir)
        const changed = [...after].filter(([file, stamp]) => before.get(file) !== stamp).map(([file]) => file)
        if (c.exit === 2) {
          expect(changed, 'bad input wrote files').toEqual([])
          expect(existsSync(join(dir, 'out')), 'bad input created output_dir').toBe(false)
        } else {
          // Only the run's own output_dir, with complete files.
          expect(changed.filter((f) => !f.startsWith('out/'))).toEqual([])
          for (const f of changed) expectComplete(dir, f)
        }
        expect([...before.keys()].filter((f) => !after.has(f)), 'files removed').toEqual([])
      },
      sidecar ? 4 * SIDECAR_LIMIT_MS : 2 * CLI_LIMIT_MS,
    )
  }
})
