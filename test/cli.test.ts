/**
 * The CLI as users run it (`node bin/dataflex.mjs`, from another directory) for version and bad input, and
 * `main()` in-process with a stand-in runTraining for exit codes, signals and output.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { resolvePython } from '../src/bridge/python.ts'
import type { ProgressEvent } from '../src/trainers/events.ts'
import type { RunOptions, RunSummary } from '../src/trainers/run.ts'
import { tempDir } from './temp-dirs.ts'

const runTraining = vi.hoisted(() => vi.fn<(cfg: unknown, opts: RunOptions) => Promise<RunSummary>>())
vi.mock('../src/trainers/run.ts', () => ({ runTraining }))

const { main } = await import('../src/cli/main.ts')
const { formatError } = await import('../src/cli/report.ts')
const { createProgress, formatProgressLine, formatDuration } = await import('../src/cli/progress.ts')
const { formatSummary } = await import('../src/cli/summary.ts')

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(REPO, 'bin', 'dataflex.mjs')
const HAS_PYTHON = existsSync(resolvePython().executable)

/** A working directory with a model folder, a dataset and an output dir holding a previous checkpoint. */
function workspace(): string {
  const dir = tempDir('cli')
  mkdirSync(join(dir, 'models', 'tiny'), { recursive: true })
  mkdirSync(join(dir, 'data'))
  writeFileSync(join(dir, 'data', 'dataset_info.json'), JSON.stringify({ synth_math: { file_name: 'math.json' } }))
  writeFileSync(join(dir, 'data', 'math.json'), '[]')
  mkdirSync(join(dir, 'out', 'checkpoint-1'), { recursive: true })
  writeFileSync(join(dir, 'out', 'checkpoint-1', 'adapter_model.safetensors'), 'previous run')
  return dir
}

const BASE = `model_name_or_path: models/tiny
stage: sft
do_train: true
dataset: synth_math
template: qwen
output_dir: out
per_device_train_batch_size: 2
`

/** Every file under `dir` with its size, mtime and content, to prove a failed run touched nothing. */
function snapshot(dir: string): string {
  const out: string[] = []
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name)
      const st = statSync(p)
      if (st.isDirectory()) walk(p)
      else out.push(`${p} ${st.size} ${st.mtimeMs} ${readFileSync(p, 'utf8')}`)
    }
  }
  walk(dir)
  return out.join('\n')
}

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env }, timeout: 150_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

describe('dataflex (spawned)', () => {
  it('--version prints the package version from any directory', async () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }
    const r = await cli(['--version'], tmpdir())
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe(pkg.version)
  })

  const cases: { name: string; config: string; args?: string[]; code: string; mentions: string[]; needsPython?: boolean }[] = [
    {
      name: 'unknown DataFlex-looking key',
      config: `${BASE}update_stpe: 2\n`,
      code: 'unknown_key',
      mentions: ['update_stpe', "did you mean 'update_step'?"],
      needsPython: true,
    },
    {
      name: 'unknown key in an override',
      config: BASE,
      args: ['learning_rat=1e-4'],
      code: 'unknown_key',
      mentions: ['learning_rat', 'learning_rate'],
      needsPython: true,
    },
    { name: 'negative warmup_step', config: `${BASE}warmup_step: -1\n`, code: 'bad_value', mentions: ['warmup_step', 'integer >= 0'] },
    {
      name: 'misspelt train_type',
      config: `${BASE}train_type: dynamic_selct\n`,
      code: 'bad_value',
      mentions: ['train_type', "did you mean 'dynamic_select'?"],
    },
    { name: 'malformed YAML', config: `${BASE}lora_target: [q_proj\n`, code: 'yaml_syntax', mentions: ['cfg.yaml:'] },
    {
      name: 'missing model path',
      config: BASE.replace('models/tiny', 'models/tiny-missing'),
      code: 'model_not_found',
      mentions: ['model_name_or_path', 'models/tiny-missing'],
    },
    {
      name: 'dataset not in dataset_info.json',
      config: BASE.replace('dataset: synth_math', 'dataset: synth_maths'),
      code: 'dataset_not_found',
      mentions: ["'synth_maths'", 'dataset_info.json', "did you mean 'synth_math'?"],
    },
    { name: 'misspelt train_type', config: `${BASE}train_type: dynamic_legos\ncomponent_name: w\n`, code: 'bad_value', mentions: ["'dynamic_legos'", "did you mean 'dynamic_lego'?"] },
    { name: 'unknown pipeline', config: `${BASE}train_type: dynamic_lego\ncomponent_name: w\nupdate_step: 2\ncomponents: {pipelines: {p: {params: {stages: [{family: selector, component: loss}]}}}}\n`, code: 'bad_value', mentions: ["unknown component_name 'w'", 'available pipelines: p'] },
    { name: 'override without =', config: BASE, args: ['do_train'], code: 'bad_value', mentions: ["'do_train'"] },
  ]

  describe.concurrent('bad input exits 2, says what is wrong, and writes nothing', () => {
    for (const c of cases) {
      it.skipIf(c.needsPython === true && !HAS_PYTHON)(c.name, async () => {
        const dir = workspace()
        writeFileSync(join(dir, 'cfg.yaml'), c.config)
        const before = snapshot(dir)
        const r = await cli(['train', 'cfg.yaml', ...(c.args ?? [])], dir)
        expect(r.code, r.stderr).toBe(2)
        expect(r.stderr).toContain(`error [${c.code}]: `)
        for (const m of c.mentions) expect(r.stderr).toContain(m)
        expect(r.stderr).not.toMatch(/^\s+at /m) // no stack without DATAFLEX_DEBUG
        expect(r.stdout).toBe('')
        expect(snapshot(dir)).toBe(before)
      })
    }

    it('a missing config file', async () => {
      const dir = workspace()
      const r = await cli(['train', 'absent.yaml'], dir)
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('error [file_not_found]: config file not found: absent.yaml')
    })

    it('usage errors', async () => {
      const dir = workspace()
      const missing = await cli(['train'], dir)
      expect(missing.code).toBe(2)
      expect(missing.stderr).toContain("error [usage]: missing required argument 'config'")
      const unknown = await cli(['trian'], dir)
      expect(unknown.code).toBe(2)
      expect(unknown.stderr).toContain('error [usage]:')
    })

    it('DATAFLEX_DEBUG=1 adds the stack', async () => {
      const dir = workspace()
      writeFileSync(join(dir, 'cfg.yaml'), `${BASE}warmup_step: -1\n`)
      const r = await cli(['train', 'cfg.yaml'], dir, { DATAFLEX_DEBUG: '1' })
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/^\s+at /m)
    })
  })
})

class FakeStream {
  text = ''
  isTTY = false
  columns: number | undefined = undefined
  write(chunk: string): boolean {
    this.text += chunk
    return true
  }
}

function fakeIO(env: NodeJS.ProcessEnv = {}) {
  const signals = new EventEmitter()
  const forced: number[] = []
  const io = {
    stdout: new FakeStream(),
    stderr: new FakeStream(),
    env: { ...process.env, ...env },
    signals,
    forceExit: (code: number) => void forced.push(code),
  }
  return { io, signals, forced }
}

/** A config whose pre-checks pass without Python. */
function validConfig(): string {
  const dir = workspace()
  writeFileSync(join(dir, 'cfg.yaml'), BASE.replace('models/tiny', join(dir, 'models', 'tiny')).replace('output_dir: out', `output_dir: ${join(dir, 'out')}\ndataset_dir: ${join(dir, 'data')}`))
  return join(dir, 'cfg.yaml')
}

const SUMMARY: RunSummary = { steps: 12, trainLoss: 1.23456, evalLoss: null, outputDir: '/runs/x', wallSeconds: 75 }

describe('main() in process', () => {
  afterEach(() => runTraining.mockReset())
  const env = { DATAFLEX_PYTHON: join(tmpdir(), 'no-such-python') } // skip the key check: no Python needed

  it('runs training, reports progress on stderr and the summary on stdout', async () => {
    runTraining.mockImplementation(async (_cfg, opts) => {
      for (let step = 1; step <= 4; step++) opts.onProgress?.({ step, totalSteps: 4, phase: 'training', loss: 2 / step, lr: 1e-3 })
      opts.log?.('saved checkpoint-4')
      return SUMMARY
    })
    const { io } = fakeIO(env)
    expect(await main(['train', validConfig(), 'num_train_epochs=2'], io)).toBe(0)
    const [cfg] = runTraining.mock.calls[0]!
    expect(cfg).toMatchObject({ lf: { num_train_epochs: 2 }, dataflex: { train_type: 'static' } })
    expect(io.stdout.text).toBe(formatSummary(SUMMARY))
    expect(io.stderr.text).toContain('[4/4] ████████████████████ 100% loss 0.500 lr 1.0e-3 phase training')
    expect(io.stderr.text).toContain('saved checkpoint-4')
  })

  it('a runtime failure exits 1; a run-time config_error exits 2', async () => {
    runTraining.mockRejectedValueOnce(Object.assign(new Error('sidecar crashed\nTraceback ...'), { code: 'sidecar_crashed' }))
    const a = fakeIO(env)
    expect(await main(['train', validConfig()], a.io)).toBe(1)
    expect(a.io.stderr.text).toContain('error [sidecar_crashed]: sidecar crashed')
    expect(a.io.stderr.text).toContain('DATAFLEX_DEBUG=1')
    expect(a.io.stderr.text).not.toContain('Traceback')

    runTraining.mockRejectedValueOnce(
      Object.assign(new Error("LLaMA-Factory rejected key 'fp32'"), { code: 'config_error', hint: 'remove it' }),
    )
    const b = fakeIO(env)
    expect(await main(['train', validConfig()], b.io)).toBe(2)
    expect(b.io.stderr.text).toContain("error [config_error]: LLaMA-Factory rejected key 'fp32'\n  hint: remove it\n")
  })

  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${signal} aborts the run through its signal and exits ${code}`, async () => {
      let seen: AbortSignal | undefined
      runTraining.mockImplementation(
        (_cfg, opts) =>
          new Promise((_resolve, reject) => {
            seen = opts.signal
            opts.signal?.addEventListener('abort', () => reject(opts.signal?.reason), { once: true })
          }),
      )
      const { io, signals, forced } = fakeIO(env)
      const exit = main(['train', validConfig()], io)
      await vi.waitFor(() => expect(seen).toBeDefined())
      signals.emit(signal, signal)
      expect(await exit).toBe(code)
      expect(seen?.aborted).toBe(true)
      expect(forced).toEqual([])
      expect(signals.listenerCount('SIGINT') + signals.listenerCount('SIGTERM')).toBe(0)
      expect(io.stderr.text).toContain(`${signal}: stopping the run`)
      expect(io.stderr.text).not.toContain('error [')
    })
  }

  it('a second signal exits at once', async () => {
    runTraining.mockImplementation(() => new Promise<RunSummary>(() => undefined)) // ignores its abort
    const { io, signals, forced } = fakeIO(env)
    void main(['train', validConfig()], io)
    await vi.waitFor(() => expect(runTraining).toHaveBeenCalled())
    signals.emit('SIGINT', 'SIGINT')
    signals.emit('SIGINT', 'SIGINT')
    expect(forced).toEqual([130])
  })

  it('a run that ignores its abort is left 30 s after the signal, with the signal\'s code', async () => {
    runTraining.mockImplementation(() => new Promise<RunSummary>(() => undefined))
    const { io, signals, forced } = fakeIO(env)
    void main(['train', validConfig()], io)
    await vi.waitFor(() => expect(runTraining).toHaveBeenCalled())
    vi.useFakeTimers()
    try {
      signals.emit('SIGTERM', 'SIGTERM')
      vi.advanceTimersByTime(29_999)
      expect(forced).toEqual([])
      vi.advanceTimersByTime(1)
      expect(forced).toEqual([143])
      expect(io.stderr.text).toContain('the run did not stop within 30 s; exiting')
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('progress and summary', () => {
  const event = (step: number, extra: Partial<ProgressEvent> = {}): ProgressEvent => ({
    step,
    totalSteps: 20,
    phase: 'training',
    ...extra,
  })

  it('formats the line', () => {
    expect(formatProgressLine(event(9, { loss: 1.23449, lr: 0.0012 }), 32, 6)).toBe(
      '[9/20] ███░░░ 45% loss 1.234 lr 1.2e-3 phase training ETA 0:32',
    )
    expect(formatProgressLine({ step: 0, totalSteps: 0, phase: 'loading' }, null)).toBe('phase loading')
    expect(formatDuration(3725)).toBe('1:02:05')
  })

  it('prints a plain line every 5% and at the end when not a TTY', () => {
    const stream = new FakeStream()
    let t = 0
    const p = createProgress({ stream, isTTY: false, now: () => t })
    for (let s = 0; s <= 20; s++) {
      t += 1000
      p.update(event(s))
    }
    p.finish()
    const lines = stream.text.trim().split('\n')
    expect(lines).toHaveLength(21) // 0%, 5%, …, 100%: one per step at 20 steps
    expect(lines[20]).toMatch(/^\[20\/20\] .* 100% phase training ETA 0:00$/)
    expect(lines[10]).toContain('ETA 0:10')

    const long = new FakeStream()
    const q = createProgress({ stream: long, isTTY: false })
    for (let s = 1; s <= 1000; s++) q.update({ step: s, totalSteps: 1000, phase: 'training' })
    q.finish()
    expect(long.text.trim().split('\n')).toHaveLength(21)
  })

  it('redraws in place on a TTY and keeps log lines readable', () => {
    const stream = new FakeStream()
    let t = 0
    const p = createProgress({ stream, isTTY: true, now: () => t })
    p.update(event(1))
    t += 500
    p.log('hello')
    t += 500
    p.update(event(2))
    p.finish()
    expect(stream.text.startsWith('\r\x1b[2K[1/20]')).toBe(true)
    expect(stream.text).toContain('\r\x1b[2Khello\n\r\x1b[2K[1/20]')
    expect(stream.text.endsWith('\n')).toBe(true)
    expect(stream.text.split('\n')).toHaveLength(3) // the log line, the final bar, and nothing else
  })

  it('summarises', () => {
    expect(formatSummary(SUMMARY)).toBe(
      'done: 12 steps in 1:15\n  final train loss  1.2346\n  final eval loss   n/a\n  output            /runs/x\n',
    )
  })

  it('formats errors on one line with an optional hint', () => {
    const err = Object.assign(new Error('bad'), { code: 'bad_value', hint: 'fix it' })
    expect(formatError(err, false)).toBe('error [bad_value]: bad\n  hint: fix it\n')
    expect(formatError(new Error('boom'), false)).toBe('error [runtime]: boom\n')
  })
})
