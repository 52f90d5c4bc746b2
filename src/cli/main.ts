/**
 * `dataflex train <config.yaml> [key=value ...]`, `dataflex prepare near|tsds …` and `dataflex --version`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad input (config / usage), 130 SIGINT, 143 SIGTERM.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { ConfigError, loadConfig } from '../config/index.ts'
import { registerPrepare } from '../prepare/cli.ts'
import { runTraining } from '../trainers/run.ts'
import { componentDocs, formatComponents } from './components.ts'
import { createProgress } from './progress.ts'
import { printSummary } from './summary.ts'

export const EXIT_OK = 0
export const EXIT_RUNTIME = 1
export const EXIT_BAD_INPUT = 2

const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 }
type StopSignal = keyof typeof SIGNAL_EXIT

/** How long a stopping run may take (sidecar shutdown, a final checkpoint) before the CLI gives up on it. */
const STOP_GRACE_MS = 30_000

interface SignalSource {
  on(event: StopSignal, listener: (signal: StopSignal) => void): unknown
  off(event: StopSignal, listener: (signal: StopSignal) => void): unknown
}

export interface CliIO {
  stdout: { write(chunk: string): boolean }
  stderr: { write(chunk: string): boolean; isTTY?: boolean; columns?: number }
  env: NodeJS.ProcessEnv
  signals: SignalSource
  /** Leaves at once, for a second Ctrl-C or a run that ignores its abort. */
  forceExit: (code: number) => void
}

export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signals: process,
    forceExit: (code) => process.exit(code),
  }
}

function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined
  return typeof version === 'string' ? version : '0.0.0'
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : undefined
}

/** Bad input: a ConfigError, or any error that labels itself 'config_error' (e.g. LLaMA-Factory rejecting a key). */
export function isBadInput(err: unknown): boolean {
  return err instanceof ConfigError || errorCode(err) === 'config_error'
}

/** `error [code]: message` (+ hint); the stack and causes only with DATAFLEX_DEBUG=1. */
export function formatError(err: unknown, debug: boolean): string {
  const message = err instanceof Error ? err.message : String(err)
  const [first = '', ...rest] = message.split('\n')
  const lines = [`error [${errorCode(err) ?? 'runtime'}]: ${first}`]
  const hint = typeof err === 'object' && err !== null ? (err as { hint?: unknown }).hint : undefined
  if (typeof hint === 'string' && hint !== '') lines.push(`  hint: ${hint}`)
  if (debug) {
    if (rest.length > 0) lines.push(...rest)
    let current: unknown = err
    for (let depth = 0; current !== undefined && depth < 8; depth++) {
      if (current instanceof Error) lines.push(depth === 0 ? (current.stack ?? '') : `caused by: ${current.stack ?? current.message}`)
      else if (depth > 0) lines.push(`caused by: ${String(current)}`)
      current = current instanceof Error ? current.cause : undefined
    }
  } else if (rest.some((l) => l.trim() !== '')) {
    lines.push('  (details: run with DATAFLEX_DEBUG=1)')
  }
  return `${lines.join('\n')}\n`
}

async function train(configPath: string, overrides: string[], io: CliIO): Promise<number> {
  const controller = new AbortController()
  let received: StopSignal | undefined
  let graceTimer: NodeJS.Timeout | undefined

  const onSignal = (signal: StopSignal): void => {
    if (received !== undefined) {
      io.stderr.write(`\n${signal} again: exiting without waiting for the run to stop\n`)
      io.forceExit(SIGNAL_EXIT[received])
      return
    }
    received = signal
    io.stderr.write(`\n${signal}: stopping the run (repeat to exit at once)\n`)
    controller.abort(new DOMException(`interrupted by ${signal}`, 'AbortError'))
    graceTimer = setTimeout(() => {
      io.stderr.write(`the run did not stop within ${STOP_GRACE_MS / 1000} s; exiting\n`)
      io.forceExit(SIGNAL_EXIT[signal])
    }, STOP_GRACE_MS)
    graceTimer.unref()
  }
  io.signals.on('SIGINT', onSignal)
  io.signals.on('SIGTERM', onSignal)

  const debug = io.env['DATAFLEX_DEBUG'] === '1'
  const progress = createProgress({ stream: io.stderr, isTTY: io.stderr.isTTY === true })
  try {
    const cfg = await loadConfig(configPath, overrides, {
      env: io.env,
      onWarning: (message) => io.stderr.write(`warning: ${message}\n`),
    })
    if (received !== undefined) return SIGNAL_EXIT[received]
    const summary = await runTraining(cfg, {
      onProgress: (event) => progress.update(event),
      log: (line) => progress.log(line),
      signal: controller.signal,
    })
    progress.finish()
    if (received !== undefined) return SIGNAL_EXIT[received]
    printSummary(summary, io.stdout)
    return EXIT_OK
  } catch (err) {
    progress.abandon()
    // After a signal, the abort is the expected way out; whatever the run threw is not news.
    if (received !== undefined) return SIGNAL_EXIT[received]
    io.stderr.write(formatError(err, debug))
    return isBadInput(err) ? EXIT_BAD_INPUT : EXIT_RUNTIME
  } finally {
    io.signals.off('SIGINT', onSignal)
    io.signals.off('SIGTERM', onSignal)
    if (graceTimer !== undefined) clearTimeout(graceTimer)
  }
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
    .action(async (config: string, overrides: string[]) => {
      exitCode = await train(config, overrides, io)
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
    report: (err) => {
      io.stderr.write(formatError(err, io.env['DATAFLEX_DEBUG'] === '1'))
      return isBadInput(err) ? EXIT_BAD_INPUT : EXIT_RUNTIME
    },
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
