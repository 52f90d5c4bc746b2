/**
 * `dataflex train <config.yaml> [key=value ...] [--connect tcp://host:port --keys dir]`, `dataflex serve`,
 * `dataflex keys <dir>`, `dataflex prepare near|tsds …`, `dataflex doctor`, `dataflex report <output_dir>` and `dataflex --version`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad input (config / usage), 130 SIGINT, 143 SIGTERM.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { train as startTraining } from '../api/train.ts'
import { KeysError } from '../bridge/index.ts'
import { registerPrepare } from '../prepare/cli.ts'
import { registerReport } from '../report/cli.ts'
import { componentDocs, formatComponents } from './components.ts'
import { registerDoctor } from './doctor.ts'
import { processIO, type CliIO } from './io.ts'
import { runCommand } from './lifecycle.ts'
import { createProgress } from './progress.ts'
import { EXIT_BAD_INPUT, EXIT_OK } from './report.ts'
import { checkEndpoint, registerRemote } from './serve.ts'
import { printSummary } from './summary.ts'

function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined
  return typeof version === 'string' ? version : '0.0.0'
}

interface TrainOptions {
  readonly connect?: string
  readonly keys?: string
  readonly resume?: boolean
}

/** `dataflex train`: a client of the Node API's train(), its progress bar and summary driven by the run's events. */
function train(configPath: string, overrides: string[], options: TrainOptions, io: CliIO): Promise<number> {
  const progress = createProgress({ stream: io.stderr, isTTY: io.stderr.isTTY === true })
  return runCommand(io, { what: 'the run', onFailure: () => progress.abandon() }, async (signal) => {
    if (options.keys !== undefined && options.connect === undefined) {
      throw new KeysError('--keys is for --connect (the sidecar on another host); `dataflex serve` takes its own --keys')
    }
    if (options.connect !== undefined) checkEndpoint(options.connect, '--connect')
    const run = startTraining(configPath, overrides, {
      env: io.env,
      resume: options.resume === true,
      ...(options.connect === undefined ? {} : { connect: { endpoint: options.connect, keysDir: options.keys } }),
      signal,
    })
    run.on('progress', (event) => progress.update(event))
    run.on('log', (event) => progress.log(event.message))
    const summary = await run.result
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
    .option('--connect <endpoint>', 'drive the sidecar `dataflex serve` runs at tcp://<host>:<port> (config paths are that host\'s)')
    .option('--keys <dir>', 'CURVE key folder for --connect (from `dataflex keys <dir>`)')
    .action(async (config: string, overrides: string[], options: TrainOptions) => {
      exitCode = await train(config, overrides, options, io)
    })

  program
    .command('components')
    .description('list the registered selectors, mixers, weighters and reorders with their params')
    .option('--json', 'print a JSON array of {kind, name, description, params} instead of a table')
    .action((options: { json?: boolean }) => {
      io.stdout.write(options.json ? JSON.stringify(componentDocs(), null, 2) + '\n' : formatComponents())
    })

  registerRemote(program, {
    io,
    done: (code) => {
      exitCode = code
    },
  })

  registerDoctor(program, {
    io,
    done: (code) => {
      exitCode = code
    },
  })

  registerPrepare(program, {
    io,
    done: (code) => {
      exitCode = code
    },
  })

  registerReport(program, {
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
