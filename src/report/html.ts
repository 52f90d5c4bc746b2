/**
 * The report page: one self-contained HTML file. uPlot's script and stylesheet are read from node_modules and the
 * page script (page.ts) is compiled, once per process, and all three are inlined with the report's data as JSON:
 * the file opens from disk with no network (its Content-Security-Policy allows nothing else).
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename } from 'node:path'
import { sections, type PageData } from './charts.ts'
import type { RunReport } from './data.ts'

export interface PageAssets {
  uplotJs: string
  uplotCss: string
  pageJs: string
}

let assets: PageAssets | undefined

/**
 * uPlot's minified build and the compiled page script. Paths resolve from this module, which sits two folders below
 * the repository root both as a source file and inside the CLI bundle (dist/cli/main.mjs).
 */
export function pageAssets(): PageAssets {
  if (assets !== undefined) return assets
  const require = createRequire(import.meta.url)
  const read = (spec: string): string => readFileSync(require.resolve(spec), 'utf8')
  // esbuild (a dependency already, for the CLI bundle) is loaded only when a report is first written.
  const esbuild = require('esbuild') as typeof import('esbuild')
  const source = readFileSync(new URL('../../src/report/page.ts', import.meta.url), 'utf8')
  const pageJs = esbuild.transformSync(source, { loader: 'ts', format: 'iife', target: 'es2020', sourcefile: 'page.ts' }).code
  // uPlot is MIT-licensed: every copy carries its license, so each report does.
  const license = `/*! uPlot license:\n${read('uplot/LICENSE').replace(/\*\//g, '* /')}*/\n`
  assets = { uplotJs: license + read('uplot/dist/uPlot.iife.min.js'), uplotCss: read('uplot/dist/uPlot.min.css'), pageJs }
  return assets
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
/** Text safe inside a <script> element: nothing in it can close the element. */
const scriptText = (s: string): string => s.replace(/<\/(script)/gi, '<\\/$1')

function fmt(v: string | number | boolean | null): string {
  if (typeof v === 'number' && !Number.isInteger(v)) return String(Number(v.toPrecision(6)))
  return String(v)
}

/** The page's data: the overview rows and the sections with their charts. */
export function pageData(r: RunReport, outputDir: string, writtenAt: Date): PageData {
  const last = r.steps.at(-1)
  const lastEval = r.steps.filter((p) => p.evalLoss !== null).at(-1)
  const overview: [string, string][] = [
    ['output_dir', outputDir],
    ['train_type', r.trainType],
    ...(r.component === null ? [] : [['component', r.component] as [string, string]]),
    ['status', r.summary === null ? `in progress (${last?.step ?? 0} steps logged)` : 'finished'],
    ...(last === undefined ? [] : [['last train loss', `${fmt(last.loss)} (step ${last.step})`] as [string, string]]),
    ...(lastEval === undefined ? [] : [['last eval loss', `${fmt(lastEval.evalLoss)} (step ${lastEval.step})`] as [string, string]]),
    ...(r.domains === null ? [] : [['domains', r.domains.join(', ')] as [string, string]]),
    ...(r.domainsUnavailable === null ? [] : [['domains', `selections not counted per dataset: ${r.domainsUnavailable}`] as [string, string]]),
    ...Object.entries(r.summary ?? {})
      .filter(([k, v]) => v !== null && !['train_type', 'component'].includes(k))
      .map(([k, v]): [string, string] => [k, fmt(v)]),
  ]
  return {
    title: `DataFlex run report: ${basename(outputDir)}`,
    outputDir,
    writtenAt: writtenAt.toISOString(),
    finished: r.summary !== null,
    overview,
    sections: sections(r),
    problems: r.problems,
  }
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 16px; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 18px; margin: 28px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub, .note { color: #555; margin: 4px 0 12px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; }
td { padding: 2px 16px 2px 0; vertical-align: top; }
td:first-child { color: #555; }
.chart { background: #fff; border: 1px solid #e4e4e4; border-radius: 4px; margin: 10px 0; padding: 6px 0; min-height: 120px; }
.problems { color: #a33; }
`

/** The whole page: data as JSON, uPlot and the page script inline. */
export function renderPage(data: PageData, a: PageAssets): string {
  const nav = data.sections.map((s) => `<a href="#${s.id}">${escapeHtml(s.title)}</a>`).join('')
  const rows = data.overview.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join('\n')
  const body = data.sections
    .map(
      (s) =>
        `<section id="${s.id}" data-section="${s.id}">\n<h2>${escapeHtml(s.title)}</h2>\n<p class="note">${escapeHtml(s.note)}</p>\n` +
        s.charts.map((c) => `<div class="chart" data-chart="${c.id}"></div>`).join('\n') +
        '\n</section>',
    )
    .join('\n')
  const problems =
    data.problems.length === 0
      ? ''
      : `<section id="problems"><h2>Not shown</h2><ul class="problems">${data.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul></section>`
  // JSON in a script element: `<` escaped so no string in the data can end the element.
  const json = JSON.stringify(data).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(data.title)}</title>
<style>${a.uplotCss}${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(data.title)}</h1>
<p class="sub">Written ${escapeHtml(data.writtenAt)}${data.finished ? '' : ', while the run was in progress'}.</p>
<nav><a href="#overview">Run</a>${nav}</nav>
</header>
<main>
<section id="overview"><h2>Run</h2><table>
${rows}
</table></section>
${body}
${problems}
</main>
<script type="application/json" id="report-data">${json}</script>
<script>${scriptText(a.uplotJs)}</script>
<script>${scriptText(a.pageJs)}</script>
</body>
</html>
`
}
