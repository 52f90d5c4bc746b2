/**
 * docs/authoring.md end to end: each example strategy (examples/strategies/*.ts) trains the tiny model for a few steps
 * through its example config, as users run it from the repository root; and a strategy file outside the repository
 * (no node_modules) that throws is reported at its .ts file and line by the CLI.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { expectOk, PYTHON, tempDir, tinyConfig, trainArgs, trainCli } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)

interface Decision {
  step: number
  kind: string
  strategy?: string
  count?: number
  proportions?: number[]
  info?: Record<string, unknown>
}

/** An example config from the repository root, into a temp output_dir, with overrides that keep it to a few steps. */
function example(name: string, overrides: string[]) {
  const out = join(tempDir(`example-${name}`), 'out')
  return trainArgs<Decision>(REPO_ROOT, [`examples/strategies/${name}.yaml`, `output_dir=${out}`, ...overrides], out)
}

const BAD = `import { defineSelector } from 'dataflex-ts'
import { z } from 'zod'

export default defineSelector({
  name: 'bad_pick',
  description: 'fails at its first decision',
  params: z.strictObject({}),
  create() {
    return {
      async select() {
        throw new Error('picked nothing on purpose')
      },
    }
  },
})
`

describe.skipIf(!HAS_PYTHON)('the example strategies on the tiny model', () => {
  it('fresh_hard: a warm-up step, then one selection of 2 steps', async () => {
    const r = await example('fresh_hard', ['warmup_step=1', 'update_step=2', 'update_times=1'])
    expectOk(r)
    expect(r.metrics.map((m) => m.step)).toEqual([1, 2, 3])
    const selections = r.decisions.filter((d) => d.kind === 'select')
    expect(selections.map((d) => [d.step, d.strategy, d.count])).toEqual([[1, 'fresh_hard', 16]])
    expect(selections[0]!.info).toMatchObject({ pool: 64, repeats: 0 })
  })

  it('catch_up: one update from the held-out losses of the four domains', async () => {
    const r = await example('catch_up', ['warmup_step=1', 'update_step=2', 'update_times=1'])
    expectOk(r)
    expect(r.metrics.map((m) => m.step)).toEqual([1, 2, 3])
    const mixes = r.decisions.filter((d) => d.kind === 'mix')
    expect(mixes.map((d) => [d.step, d.strategy])).toEqual([[1, 'catch_up']])
    const losses = mixes[0]!.info!['held_out_loss'] as number[]
    expect(losses).toHaveLength(4)
    expect(losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true)
    // floor 0.2 over 4 domains: no proportion below 0.05; the highest held-out loss gets the most.
    const p = mixes[0]!.proportions!
    expect(Math.min(...p)).toBeGreaterThanOrEqual(0.05 - 1e-12)
    expect(p.indexOf(Math.max(...p))).toBe(losses.indexOf(Math.max(...losses)))
  })

  it('outlier_guard: the eval loss measured before the first weighted step, then every micro-batch weighed', async () => {
    const r = await example('outlier_guard', ['max_steps=3', 'warmup_step=1'])
    expectOk(r)
    expect(r.metrics.map((m) => m.step)).toEqual([1, 2, 3])
    const refreshes = r.decisions.filter((d) => d.kind === 'refresh')
    expect(refreshes.map((d) => [d.step, d.strategy])).toEqual([[1, 'outlier_guard']])
    expect(refreshes[0]!.info!['eval_loss']).toBeGreaterThan(0)
    expect(r.decisions.filter((d) => d.kind === 'weight').map((d) => d.step)).toEqual([2, 3])
  })

  it('a strategy outside the repository that throws: exit 1, the error at its .ts line, the stack mapped', async () => {
    const dir = tempDir('bad-strategy')
    writeFileSync(join(dir, 'bad.ts'), BAD)
    const r = await trainCli(
      dir,
      'bad',
      (out) =>
        tinyConfig(out, {
          eval_strategy: 'no',
          eval_dataset: undefined,
          train_type: 'dynamic_select',
          component_name: 'bad',
          warmup_step: 0,
          update_step: 2,
          update_times: 1,
          components: { selectors: { bad: { name: 'custom', params: { path: 'bad.ts' } } } },
        }),
      240_000,
      [],
      { DATAFLEX_DEBUG: '1' },
    )
    expect(r.code).toBe(1)
    const at = `${join(dir, 'bad.ts')}:11:15`
    expect(r.stderr).toContain(`error [user_code]: bad_pick: select() threw at ${at}: picked nothing on purpose`)
    expect(r.stderr).toMatch(new RegExp(`^\\s+at .*\\(${at.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)$`, 'm'))
    expect(r.stderr).not.toMatch(/data:text\/javascript|bundle\.mjs/)
  })
})
