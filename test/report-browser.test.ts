/**
 * The run report in a real headless browser: one tiny training per trainer family (static, select, mix, weight,
 * reorder) through the CLI, then each run's `dataflex/report.html` opened from disk in Debian's chromium, driven by
 * playwright-core. Every chart the page declares must be drawn by uPlot with its data (series colours on its
 * canvas), with no console error, no page error and no request leaving file://.
 *
 * Chromium is /usr/bin/chromium (scripts/setup.mjs installs it). Without it the tests skip, saying so, except under
 * CI=true, where its absence is a failure. UPDATE_SCREENSHOTS=1 saves docs/img/report-<family>.png.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium, type BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { REPORT_FILE } from '../src/report/write.ts'
import { expectOk, PYTHON, tempDir, tinyConfig, trainCli } from './support.ts'

const CHROMIUM = '/usr/bin/chromium'
const HAS_CHROMIUM = existsSync(CHROMIUM)
const IN_CI = process.env['CI'] === 'true'
const SCREENSHOTS = process.env['UPDATE_SCREENSHOTS'] === '1'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** Fewest steps that still give each family's charts: two selections, three mix updates, weighed steps. */
const quiet = { eval_strategy: 'no', eval_dataset: undefined, save_strategy: 'no' }
const FAMILIES = {
  // Checkpoints at steps 3 and 6, evaluation at 3 and 6: the report is written at each checkpoint and at the end.
  static: { config: (out: string) => tinyConfig(out, { max_steps: 6, save_steps: 3, eval_steps: 3 }), charts: ['loss', 'lr', 'grad-norm'] },
  select: {
    config: (out: string) =>
      tinyConfig(out, { ...quiet, train_type: 'dynamic_select', component_name: 'loss', components: { selectors: { loss: { params: {} } } }, warmup_step: 1, update_step: 2, update_times: 2, train_step: 5 }),
    // Two datasets (tinyConfig's): the selections are counted per dataset.
    charts: ['loss', 'lr', 'grad-norm', 'selected-rows', 'selection-overlap', 'selected-domains', 'selection-scores', 'selection-histogram', 'phase-totals', 'decision-times'],
  },
  mix: {
    config: (out: string) =>
      tinyConfig(out, {
        ...quiet,
        dataset: 'arith_clean,arith_noisy,string_ops,facts',
        max_samples: 16,
        train_type: 'dynamic_mix',
        component_name: 'odm',
        components: { mixers: { odm: { name: 'odm', params: { warmup_steps: 0 } } } },
        warmup_step: 1,
        update_step: 1,
        update_times: 3,
      }),
    charts: ['loss', 'lr', 'grad-norm', 'proportions', 'domain-loss', 'phase-totals', 'decision-times'],
  },
  weight: {
    config: (out: string) =>
      tinyConfig(out, { ...quiet, max_steps: 5, train_type: 'dynamic_weight', component_name: 'loss', components: { weighters: { loss: { name: 'loss', params: { strategy: 'quadratic' } } } }, warmup_step: 2, log_weights: true }),
    charts: ['loss', 'lr', 'grad-norm', 'weights', 'ess', 'weight-histogram', 'phase-totals', 'decision-times'],
  },
  reorder: {
    config: (out: string) =>
      tinyConfig(out, {
        ...quiet,
        train_type: 'dynamic_reorder',
        component_name: 'saw',
        components: { reorders: { saw: { params: { kind: 'dynamic', pattern: 'saw', pattern_params: { num_sections: 2, folding_ratio: 0.1, layers: 2 }, score_source: 'model_loss' } } } },
        warmup_step: 1,
        update_step: 2,
        update_times: 2,
        train_step: 5,
      }),
    charts: ['loss', 'lr', 'grad-norm', 'order-tenths', 'order-scores', 'phase-totals', 'decision-times'],
  },
  // Every stage family at once: a filter, the mixer, the ordering and the weights.
  lego: {
    config: (out: string) =>
      tinyConfig(out, {
        ...quiet,
        dataset: 'arith_clean,arith_noisy,string_ops,facts',
        max_samples: 16,
        max_steps: 6,
        log_weights: true,
        train_type: 'dynamic_lego',
        component_name: 'all',
        components: {
          selectors: { loss: { params: {} } },
          mixers: { odm: { name: 'odm', params: { warmup_steps: 0 } } },
          reorders: { dynamic_saw: { params: { kind: 'dynamic', pattern: 'saw', pattern_params: { num_sections: 2, folding_ratio: 0.1, layers: 2 }, score_source: 'model_loss' } } },
          weighters: { loss: { name: 'loss', params: { strategy: 'quadratic' } } },
          pipelines: {
            all: {
              params: {
                stages: [
                  { family: 'selector', component: 'loss', mode: 'filter', keep_ratio: 0.75, every: 2 },
                  { family: 'mixer', component: 'odm', every: 2 },
                  { family: 'reorder', component: 'dynamic_saw', every: 2 },
                  { family: 'weighter', component: 'loss', warmup_step: 2 },
                ],
                score_batch_size: 8,
              },
            },
          },
        },
        warmup_step: 1,
        update_step: 2,
        update_times: 2,
      }),
    charts: ['loss', 'lr', 'grad-norm', 'selected-rows', 'selected-domains', 'proportions', 'weights', 'ess', 'order-tenths', 'phase-totals', 'decision-times'],
  },
} as const
type Family = keyof typeof FAMILIES

interface ChartCheck {
  id: string
  section: string
  canvases: number
  /** Canvas pixels in a series colour (axes and grid are grey): drawn data, not just the frame. */
  seriesPixels: number
}

/** Every chart element of the page: its canvases and how many pixels carry a series colour. */
function inspect(): { charts: ChartCheck[]; drawn: { id: string; values: number }[]; errors: string[]; sections: Record<string, number> } {
  const state = window.dataflexReport!
  const colours = state.palette.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)))
  const charts = [...document.querySelectorAll<HTMLElement>('[data-chart]')].map((el) => {
    const canvas = el.querySelector('canvas')
    let seriesPixels = 0
    if (canvas !== null && canvas.width > 0 && canvas.height > 0) {
      const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3]! > 0 && colours.some(([r, g, b]) => Math.abs(px[i]! - r!) < 10 && Math.abs(px[i + 1]! - g!) < 10 && Math.abs(px[i + 2]! - b!) < 10)) seriesPixels++
      }
    }
    return { id: el.dataset['chart']!, section: el.closest('section')!.id, canvases: el.querySelectorAll('canvas').length, seriesPixels }
  })
  const sections = Object.fromEntries([...document.querySelectorAll<HTMLElement>('section[data-section]')].map((s) => [s.id, s.querySelectorAll('canvas').length]))
  return { charts, drawn: state.charts.map((c) => ({ id: c.id, values: c.values })), errors: state.errors, sections }
}

describe('run report in a headless browser', () => {
  if (!HAS_CHROMIUM && IN_CI) {
    it('needs chromium under CI', () => {
      throw new Error(`${CHROMIUM} is missing: scripts/setup.mjs installs it with apt-get (as root or via sudo -n); its output says why it could not`)
    })
    return
  }
  const skip = !HAS_CHROMIUM ? `${CHROMIUM} not found (sudo apt-get install chromium)` : !existsSync(PYTHON) ? `no Python sidecar at ${PYTHON}` : ''
  if (skip !== '') console.warn(`report-browser: skipped: ${skip}`)

  describe.skipIf(skip !== '')(`every family's report renders${skip === '' ? '' : ` (skipped: ${skip})`}`, () => {
    const outs = {} as Record<Family, string>
    let checkpointReport = false
    let context: BrowserContext

    beforeAll(async () => {
      const dir = tempDir('report-browser')
      const started = performance.now()
      // The static run saves at step 3 of 6: a report written then (still in progress) must appear before the final one.
      const staticReport = join(dir, 'static-out', 'dataflex', REPORT_FILE)
      const poll = setInterval(() => {
        if (existsSync(staticReport) && readFileSync(staticReport, 'utf8').includes('while the run was in progress')) checkpointReport = true
      }, 100)
      try {
        await Promise.all(
          (Object.keys(FAMILIES) as Family[]).map(async (family) => {
            const r = await trainCli(dir, family, FAMILIES[family].config)
            expectOk(r)
            outs[family] = r.out
          }),
        )
      } finally {
        clearInterval(poll)
      }
      console.log(`report-browser: ${Object.keys(FAMILIES).length} trainings in ${((performance.now() - started) / 1000).toFixed(1)} s`)
      context = await chromium.launchPersistentContext(tempDir('chromium-profile'), { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1100, height: 900 } })
    }, 300_000)

    afterAll(async () => {
      await context?.close()
    })

    it('the static run wrote a report at its checkpoint, before the end', () => {
      expect(checkpointReport).toBe(true)
    })

    for (const family of Object.keys(FAMILIES) as Family[]) {
      it(`${family}: every chart drawn with data, no console or page errors, no network`, async () => {
        const page = await context.newPage()
        const problems: string[] = []
        const requests: string[] = []
        page.on('console', (m) => {
          if (m.type() === 'error') problems.push(`console: ${m.text()}`)
        })
        page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
        page.on('request', (req) => requests.push(req.url()))
        await page.route('**', (route) => (route.request().url().startsWith('file:') ? route.continue() : route.abort()))
        const url = pathToFileURL(join(outs[family], 'dataflex', REPORT_FILE)).href
        await page.goto(url)
        await page.waitForFunction(() => window.dataflexReport !== undefined)
        const seen = await page.evaluate(inspect)

        expect(problems).toEqual([])
        expect(requests).toEqual([url])
        expect(seen.errors).toEqual([])
        const ids = seen.charts.map((c) => c.id)
        expect(ids).toEqual(expect.arrayContaining([...FAMILIES[family].charts]))
        // Every chart on the page was drawn: a canvas, the library's record of finite values, the series on the canvas.
        expect(seen.drawn.map((d) => d.id).sort()).toEqual([...ids].sort())
        for (const c of seen.charts) {
          expect(c.canvases, c.id).toBeGreaterThan(0)
          expect(c.seriesPixels, c.id).toBeGreaterThan(0)
          expect(seen.drawn.find((d) => d.id === c.id)!.values, c.id).toBeGreaterThan(0)
        }
        for (const [section, canvases] of Object.entries(seen.sections)) expect(canvases, section).toBeGreaterThan(0)
        if (SCREENSHOTS) {
          mkdirSync(join(REPO_ROOT, 'docs', 'img'), { recursive: true })
          await page.screenshot({ path: join(REPO_ROOT, 'docs', 'img', `report-${family}.png`), fullPage: true })
        }
        await page.close()
      })
    }
  })
})
