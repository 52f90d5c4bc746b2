import type { RunSummary } from '../trainers/run.ts'
import { formatDuration } from './progress.ts'

function loss(value: number | null): string {
  return value === null || !Number.isFinite(value) ? 'n/a' : value.toFixed(4)
}

/** The few lines printed when a run ends: what was trained, how it ended, where it went. */
export function formatSummary(summary: RunSummary): string {
  return [
    `done: ${summary.steps} steps in ${formatDuration(summary.wallSeconds)}`,
    `  final train loss  ${loss(summary.trainLoss)}`,
    `  final eval loss   ${loss(summary.evalLoss)}`,
    `  output            ${summary.outputDir}`,
    '',
  ].join('\n')
}

export function printSummary(summary: RunSummary, stream: { write(chunk: string): boolean }): void {
  stream.write(formatSummary(summary))
}
