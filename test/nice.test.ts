/**
 * NICE end to end through `dataflex train`: on-policy generation from the training model, a local reward model
 * (a tiny sequence-classification head built here), projected REINFORCE validation gradients, Adam-preconditioned
 * train gradients, mean cosine, top-k — and the same seed gives the same decision.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { runPython, tempDir, tinyConfig, writeConfig } from './support.ts'

const run = promisify(execFile)
let dir = ''
let rewardModel = ''

beforeAll(async () => {
  dir = tempDir('nice')
  rewardModel = join(dir, 'reward')
  await runPython(['-m', 'dataflex_bridge.tools.make_tiny_model', '--out', rewardModel, '--data', 'data/demo', '--head', 'seqcls'])
}, 180_000)

function niceConfig(out: string): string {
  return writeConfig(
    dir,
    `${out}.yaml`,
    tinyConfig(join(dir, out), {
      eval_dataset: 'arith_eval',
      eval_strategy: 'no',
      save_strategy: 'no',
      train_type: 'dynamic_select',
      component_name: 'nice_tiny',
      warmup_step: 1,
      update_step: 2,
      update_times: 1,
      num_train_epochs: 1,
      components: {
        selectors: {
          nice_tiny: {
            name: 'nice',
            params: { reward_model_path: rewardModel, mc_samples: 2, max_new_tokens: 6, proj_dim: 256, gradient_type: 'adam' },
          },
        },
      },
    }),
  )
}

function selection(out: string): { indices: number[]; info: Record<string, unknown> } {
  const lines = readFileSync(join(dir, out, 'dataflex', 'decisions.jsonl'), 'utf8').trim().split('\n')
  const d = lines.map((l) => JSON.parse(l) as { kind: string; indices: number[]; info: Record<string, unknown> }).find((x) => x.kind === 'select')
  if (!d) throw new Error('no select decision logged')
  return d
}

describe('nice selector', () => {
  it('selects with a local reward model, deterministically', async () => {
    for (const out of ['a', 'b']) {
      await run(process.execPath, ['bin/dataflex.mjs', 'train', niceConfig(out)], { cwd: REPO_ROOT, timeout: 500_000 })
    }
    const a = selection('a')
    const b = selection('b')
    expect(a.indices.length).toBe(2 * 4 * 2) // update_step × per-device batch × GA
    expect(new Set(a.indices).size).toBe(a.indices.length)
    expect(b.indices).toEqual(a.indices)
    expect(JSON.stringify(a.info)).toMatch(/reward/)
  }, 600_000)
})
