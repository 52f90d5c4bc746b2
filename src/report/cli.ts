/** `dataflex report <output_dir>`: (re)writes `<output_dir>/dataflex/report.html` from a run's logs. */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import type { CliIO } from '../cli/io.ts'
import { EXIT_OK, reportError } from '../cli/report.ts'
import { ConfigError } from '../config/errors.ts'
import { hasRunLogs, writeRunReport } from './write.ts'

export interface ReportCliContext {
  readonly io: CliIO
  /** Receives the command's exit code. */
  readonly done: (code: number) => void
}

export function registerReport(program: Command, ctx: ReportCliContext): void {
  program
    .command('report')
    .description("write <output_dir>/dataflex/report.html (charts of the run's logs; one file, opens offline)")
    .argument('<output_dir>', "a run's output_dir (its dataflex/ folder holds the logs)")
    .action((outputDir: string) => {
      ctx.done(reportCommand(outputDir, ctx.io))
    })
}

function reportCommand(outputDir: string, io: CliIO): number {
  try {
    if (!hasRunLogs(outputDir)) {
      const why = existsSync(outputDir) ? `${outputDir} has no DataFlex run logs` : `${outputDir} does not exist`
      throw new ConfigError('file_not_found', `${why} (looked for ${join(outputDir, 'dataflex', 'metrics.jsonl')} and decisions.jsonl)`, {
        hint: "pass the output_dir of a run made with 'dataflex train'",
      })
    }
    io.stdout.write(`wrote ${writeRunReport(outputDir)}\n`)
    return EXIT_OK
  } catch (err) {
    return reportError(io, err)
  }
}
