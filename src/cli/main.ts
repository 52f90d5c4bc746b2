/**
 * `dataflex train <config.yaml> [key=value ...]`, `dataflex prepare near|tsds …` and `dataflex --version`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad input (config / usage), 130 SIGINT, 143 SIGTERM.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { loadConfig } from '../config/index.ts'
import { registerPrepare } from '../prepare/cli.ts'
import { runTraining } from '../trainers/run.ts'
import { componentDocs, formatComponents } from './components.ts'
import { processIO, type CliIO } from './io.ts'
import { runCommand } from './lifecycle.ts'
import { createProgress } from './progress.ts'
import { EXIT_BAD_INPUT, EXIT_OK } from './report.ts'
import { printSummary } from './summary.ts'

function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined
  return typeof version === 'string' ? version : '0.0.0'
}

function train(configPath: string, overrides: string[], io: CliIO, resume: boolean): Promise<number> {
  const progress = createProgress({ stream: io.stderr, isTTY: io.stderr.isTTY === true })
  return runCommand(io, { what: 'the run', onFailure: () => progress.abandon() }, async (signal) => {
    const cfg = await loadConfig(configPath, overrides, {
      env: io.env,
      onWarning: (message) => io.stderr.write(`warning: ${message}\n`),
    })
    if (signal.aborted) return
    const summary = await runTraining(cfg, {
      resume,
      onProgress: (event) => progress.update(event),
      log: (line) => progress.log(line),
      signal,
    })
    progress.finish()
    if (!signal.aborted) printSummary(summary, io.stdout)
  })
}

/** Runs the CLI on `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  let exitCode = EXIT_OK
  const program = new Command()
    .name('dataflex')
    .description('Data-centric dynamic training for LLMs: TypeScript decisions, LLaMA-Factory execution')
    .version(packageVersion(), '-v, --version', 'print the version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      outputError: () => undefined, // reported below in our own format
    })

  program
    .command('train')
    .description('train with a LLaMA-Factory YAML plus DataFlex keys')
    .argument('<config>', 'YAML config file')
    .argument('[overrides...]', 'key=value overrides, as llamafactory-cli takes them')
    .option('--resume', "continue from the last complete checkpoint in output_dir (model, optimizer, RNG, schedule and every strategy's state)")
    .action(async (config: string, overrides: string[], options: { resume?: boolean }) => {
      exitCode = await train(config, overrides, io, options.resume === true)
    })

  program
    .command('components')
    .description('list the registered selectors, mixers, weighters and reorders with their params')
    .option('--json', 'print a JSON array of {kind, name, description, params} instead of a table')
    .action((options: { json?: boolean }) => {
      io.stdout.write(options.json ? JSON.stringify(componentDocs(), null, 2) + '\n' : formatComponents())
    })

  registerPrepare(program, {
    io,
    done: (code) => {
      exitCode = code
    },
  })

  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err
    if (err.exitCode === 0) return EXIT_OK // --help, --version
    if (err.code !== 'commander.help') {
      io.stderr.write(`error [usage]: ${err.message.replace(/^error: /, '')}\n  hint: run 'dataflex --help'\n`)
    }
    return EXIT_BAD_INPUT
  }
  return exitCode
}
