/**
 * LLaMA-Factory's own reporting keeps working beside ours: a `dataflex train` of the demo config, shrunk to a few
 * steps, with `report_to: tensorboard` and `plot_loss: true` writes Hugging Face's TensorBoard event file (under its
 * logging_dir, `<output_dir>/runs/<date>_<host>/`) with every logged step, and LLaMA-Factory's loss plots.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, resolvePython } from '../src/bridge/python.ts'
import { tempDir } from './temp-dirs.ts'

const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')
const HAS_PYTHON = existsSync(resolvePython().executable)
const STEPS = 4

/** Every file under `dir`, as paths relative to it. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
}

/** How often `text` occurs in `buf` (TensorBoard's tags are plain bytes inside the serialised events). */
function occurrences(buf: Buffer, text: string): number {
  let n = 0
  for (let at = buf.indexOf(text); at !== -1; at = buf.indexOf(text, at + 1)) n++
  return n
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

describe.skipIf(!HAS_PYTHON)("LLaMA-Factory's reporting in a dataflex run", () => {
  it(
    'report_to: tensorboard writes the event file and plot_loss the loss plots',
    async () => {
      const out = tempDir('lf-report')
      const args = [
        'train',
        'configs/demo.yaml',
        `output_dir=${out}`,
        `max_steps=${STEPS}`,
        'logging_steps=1',
        'eval_steps=2',
        'report_to=tensorboard',
        'plot_loss=true',
      ]
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, timeout: 240_000 }, (err, _stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr })
        })
      })
      expect(r.code, r.stderr.slice(-3000)).toBe(0)

      const all = files(out)
      const events = all.filter((f) => /^runs\/[^/]+\/events\.out\.tfevents\./.test(f))
      expect(events.length, all.join('\n')).toBeGreaterThan(0)
      const logged = events.map((f) => readFileSync(join(out, f))).reduce((n, buf) => n + occurrences(buf, 'train/loss'), 0)
      expect(logged, 'one train/loss scalar per logged step').toBe(STEPS)

      for (const plot of ['training_loss.png', 'training_eval_loss.png']) {
        expect(all).toContain(plot)
        expect(readFileSync(join(out, plot)).subarray(0, 8).equals(PNG_MAGIC), plot).toBe(true)
      }
      // Ours beside them.
      expect(readFileSync(join(out, 'dataflex', 'metrics.jsonl'), 'utf8').trim().split('\n').filter((l) => 'loss' in JSON.parse(l))).toHaveLength(STEPS)
    },
    300_000,
  )
})
