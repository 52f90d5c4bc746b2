/**
 * `dataflex train --resume`: a run stopped after a checkpoint and resumed trains and decides exactly as an
 * uninterrupted one (the same metrics lines, losses within 1e-5, the same decision lines), for every train type; a run
 * killed for real (SIGKILL to the sidecar, and separately to the TypeScript process) at a random step resumes the
 * same way; and a resume with nothing to resume from is a config error.
 */
import { spawn } from 'node:child_process'
import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { expectAllClose } from './close.ts'
import { alive, childrenOf } from './procs.ts'
import { PYTHON, stable, tempDir, tinyConfig, writeConfig } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)
const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')
const COMPONENTS = join(REPO_ROOT, 'configs', 'components.yaml')
const LIMIT = 600_000

/** 32 rows, B_g = 8 (micro-batch 4, GA 2), LoRA dropout on (the RNG must resume too), a checkpoint every 3 steps. */
function config(out: string, extra: Record<string, unknown>): Record<string, unknown> {
  return tinyConfig(out, {
    eval_strategy: 'no',
    eval_dataset: undefined,
    max_samples: 16,
    save_steps: 3,
    components_cfg_file: COMPONENTS,
    ...extra,
  })
}

const SCHEDULE = { warmup_step: 2, update_step: 2, update_times: 3 }
const TYPES: Record<string, Record<string, unknown>> = {
  static: {},
  select: { train_type: 'dynamic_select', component_name: 'loss', ...SCHEDULE },
  mix: { train_type: 'dynamic_mix', component_name: 'doremi', ...SCHEDULE },
  weight: { train_type: 'dynamic_weight', component_name: 'loss', warmup_step: 2 },
  reorder: { train_type: 'dynamic_reorder', component_name: 'dynamic_saw', ...SCHEDULE },
  lego: {
    train_type: 'dynamic_lego',
    component_name: 'p',
    ...SCHEDULE,
    components: {
      pipelines: {
        p: {
          params: {
            stages: [
              { family: 'selector', component: 'loss', mode: 'filter', warmup_step: 2, every: 4 },
              { family: 'mixer', component: 'doremi', every: 2 },
              { family: 'reorder', component: 'dynamic_saw' },
              { family: 'weighter', component: 'loss', warmup_step: 3 },
            ],
          },
        },
      },
    },
  },
}

interface Cli {
  code: number | null
  stderr: string
}

function train(cfg: string, args: string[] = [], onStart?: (pid: number, out: () => string) => void, env: Record<string, string> = {}): Promise<Cli> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'train', cfg, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    onStart?.(child.pid!, () => stderr)
    child.on('exit', (code) => resolve({ code, stderr }))
  })
}

const lines = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)

/** The resumed run wrote what the uninterrupted one did: metrics (losses within 1e-5), decisions, final weights. */
function expectSameRun(resumed: string, whole: string): void {
  const m = lines(join(resumed, 'dataflex', 'metrics.jsonl'))
  const w = lines(join(whole, 'dataflex', 'metrics.jsonl'))
  expect(m.map((r) => r['step'])).toEqual(w.map((r) => r['step']))
  expectAllClose(
    m.map((r) => r['loss'] as number),
    w.map((r) => r['loss'] as number),
    { rel: 1e-5 },
    'per-step loss',
  )
  expect(lines(join(resumed, 'dataflex', 'decisions.jsonl')).map(stable)).toEqual(lines(join(whole, 'dataflex', 'decisions.jsonl')).map(stable))
}

const checkpoints = (out: string): number[] =>
  readdirSync(out)
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((x) => x !== null)
    .map((x) => Number(x[1]))
    .sort((a, b) => a - b)

/** Resolves once `file` has a line with step ≥ `step` (or the process ended). */
async function untilStep(file: string, step: number, exited: () => boolean): Promise<void> {
  for (;;) {
    if (existsSync(file) && lines(file).some((r) => (r['step'] as number) >= step)) return
    if (exited()) throw new Error(`the run ended before step ${step}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe.skipIf(!HAS_PYTHON).concurrent('dataflex train --resume', () => {
  for (const [name, extra] of Object.entries(TYPES)) {
    it(`${name}: stopped after a mid-run checkpoint, resumed, equals the uninterrupted run`, async () => {
      const dir = tempDir(`resume-${name}`)
      const whole = join(dir, 'whole')
      const first = await train(writeConfig(dir, 'whole.yaml', config(whole, extra)))
      expect(first.code, first.stderr).toBe(0)
      const saved = checkpoints(whole)
      expect(saved.length).toBeGreaterThanOrEqual(2)
      // The run "stopped" right after its first checkpoint: every later one removed (the logs keep later lines, and
      // the resume cuts them back).
      const cut = join(dir, 'cut')
      cpSync(whole, cut, { recursive: true })
      for (const s of saved.slice(1)) rmSync(join(cut, `checkpoint-${s}`), { recursive: true })
      const r = await train(writeConfig(dir, 'cut.yaml', config(cut, extra)), ['--resume'])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain(`resuming after step ${saved[0]}`)
      expectSameRun(cut, whole)
    }, LIMIT)
  }

  for (const victim of ['sidecar', 'typescript'] as const) {
    it(`SIGKILL to the ${victim} at a random step: no process left, and --resume finishes the run exactly`, async () => {
      const dir = tempDir(`resume-kill-${victim}`)
      const extra = victim === 'sidecar' ? TYPES['lego']! : TYPES['mix']!
      const whole = join(dir, 'whole')
      expect((await train(writeConfig(dir, 'whole.yaml', config(whole, extra)))).code).toBe(0)
      const total = lines(join(whole, 'dataflex', 'metrics.jsonl')).length
      // A step after the first checkpoint (3) and before the end.
      const at = 4 + Math.floor(Math.random() * (total - 5))
      const out = join(dir, 'killed')
      const cfg = writeConfig(dir, 'killed.yaml', config(out, extra))
      let sidecars: number[] = []
      let node = 0
      const t0 = { ms: 0 }
      const killed = await train(cfg, [], (pid) => {
        node = pid
        let done = false
        void (async () => {
          await untilStep(join(out, 'dataflex', 'metrics.jsonl'), at, () => done)
          sidecars = childrenOf(pid)
          t0.ms = Date.now()
          if (victim === 'sidecar') for (const p of sidecars) process.kill(p, 'SIGKILL')
          else process.kill(pid, 'SIGKILL')
        })().catch(() => (done = true))
      })
      const tookMs = Date.now() - t0.ms
      expect(sidecars.length, `sidecars of ${node}`).toBeGreaterThan(0)
      if (victim === 'sidecar') {
        // Reported, not hung: exit 1 within seconds, naming what died.
        expect(killed.code).toBe(1)
        expect(tookMs).toBeLessThan(5_000)
        expect(killed.stderr).toMatch(/sidecar/i)
      } else expect(killed.code).toBeNull()
      // No sidecar outlives its run.
      const until = Date.now() + 10_000
      while (sidecars.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 100))
      expect(sidecars.filter(alive)).toEqual([])
      const r = await train(cfg, ['--resume'])
      expect(r.code, r.stderr).toBe(0)
      expectSameRun(out, whole)
    }, LIMIT)
  }

  it('two ranks (NPROC_PER_NODE=2, dropout on): a lego run stopped after a checkpoint resumes on both ranks exactly', async () => {
    const dir = tempDir('resume-ranks')
    const two = { NPROC_PER_NODE: '2' }
    const extra = { ...TYPES['lego']!, per_device_train_batch_size: 2 }
    const whole = join(dir, 'whole')
    const first = await train(writeConfig(dir, 'whole.yaml', config(whole, extra)), [], undefined, two)
    expect(first.code, first.stderr).toBe(0)
    const saved = checkpoints(whole)
    expect(readdirSync(join(whole, `checkpoint-${saved[0]}`))).toEqual(expect.arrayContaining(['rng_state_0.pth', 'rng_state_1.pth']))
    const cut = join(dir, 'cut')
    cpSync(whole, cut, { recursive: true })
    for (const s of saved.slice(1)) rmSync(join(cut, `checkpoint-${s}`), { recursive: true })
    const r = await train(writeConfig(dir, 'cut.yaml', config(cut, extra)), ['--resume'], undefined, two)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain(`resuming after step ${saved[0]}`)
    expectSameRun(cut, whole)
  }, LIMIT)

  it('--resume with no complete checkpoint is a config error naming output_dir', async () => {
    const dir = tempDir('resume-none')
    const r = await train(writeConfig(dir, 'none.yaml', config(join(dir, 'none'), {})), ['--resume'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--resume: no complete checkpoint in .*none/)
  })
})
