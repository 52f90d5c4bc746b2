/**
 * `<output_dir>/dataflex/report.html`: read the run's artefacts, build the report, write it atomically. The trainers
 * call it at every checkpoint and at the end of the run; `dataflex report <output_dir>` calls it on demand.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../util/atomic.ts'
import { runReport, type RunFiles } from './data.ts'
import { pageAssets, pageData, renderPage } from './html.ts'

export const REPORT_FILE = 'report.html'
const LOGS = ['metrics.jsonl', 'decisions.jsonl']
const SETTINGS = ['select', 'mix', 'weight', 'reorder', 'lego']
const SELECTIONS = join('dataflex', 'selections')

/** Whether `outputDir` holds a DataFlex run's logs (`dataflex/metrics.jsonl` or `dataflex/decisions.jsonl`). */
export function hasRunLogs(outputDir: string): boolean {
  return LOGS.some((name) => existsSync(join(outputDir, 'dataflex', name)))
}

/** A JSON file's value; a file that is missing is undefined, one that does not parse is named in `problems`. */
function readJson(path: string, shown: string, problems: string[]): unknown {
  if (!existsSync(path)) return undefined
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown
  } catch (err) {
    problems.push(`${shown}: ${(err as Error).message}`)
    return undefined
  }
}

/** The files a report reads, from a run's output_dir (and what could not be read). */
export function readRunFiles(outputDir: string): { files: RunFiles; problems: string[] } {
  const dir = join(outputDir, 'dataflex')
  const problems: string[] = []
  const text = (name: string): string => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8') : '')
  const settings: Record<string, unknown> = {}
  for (const name of SETTINGS) {
    const v = readJson(join(dir, `${name}.json`), `dataflex/${name}.json`, problems)
    if (v !== undefined) settings[name] = v
  }
  const scoreFiles: Record<string, unknown> = {}
  const selections = join(outputDir, SELECTIONS)
  if (existsSync(selections)) {
    for (const name of readdirSync(selections).filter((n) => n.endsWith('.json'))) {
      // Keyed as decision lines name them: relative to output_dir, with forward slashes.
      const rel = `dataflex/selections/${name}`
      const v = readJson(join(selections, name), rel, problems)
      if (v !== undefined) scoreFiles[rel] = v
    }
  }
  return {
    files: { decisions: text('decisions.jsonl'), metrics: text('metrics.jsonl'), summary: readJson(join(dir, 'summary.json'), 'dataflex/summary.json', problems), settings, scoreFiles },
    problems,
  }
}

/** Builds the report of the run in `outputDir` and writes it (temp file + rename); returns its path. */
export function writeRunReport(outputDir: string, now = new Date()): string {
  const { files, problems } = readRunFiles(outputDir)
  const report = runReport(files)
  const html = renderPage(pageData({ ...report, problems: [...problems, ...report.problems] }, outputDir, now), pageAssets())
  const path = join(outputDir, 'dataflex', REPORT_FILE)
  writeFileAtomic(path, html)
  return path
}
