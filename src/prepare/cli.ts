/**
 * The `prepare` subcommand: `dataflex prepare near|tsds <config.yaml> [key=value ...] --out <file.npy> ...`.
 * It runs under the same lifecycle as `train` (cli/lifecycle.ts), so signals, exit codes and messages match.
 */
import type { Command } from 'commander'
import type { CliIO } from '../cli/io.ts'
import { runCommand } from '../cli/lifecycle.ts'
import { parsePrepareOptions, runPrepare, type PrepareCliOptions } from './index.ts'

export interface PrepareCliContext {
  readonly io: CliIO
  /** Receives the command's exit code. */
  readonly done: (code: number) => void
}

export function registerPrepare(program: Command, ctx: PrepareCliContext): void {
  program
    .command('prepare')
    .description("offline half of the near / tsds selectors: k-NN of the eval queries in the run's train pool")
    .argument('<method>', 'near (top_indices.npy, int32 M×K) or tsds (tsds_probs.npy, float64 N)')
    .argument('<config>', 'the training YAML (the same file the run uses, so indices align)')
    .argument('[overrides...]', 'key=value overrides, as for train')
    .option('--out <file>', 'the .npy to write (atomically), plus <file>.json with params and hashes')
    .option('--queries <source>', "'eval' (the config's eval set) or a dataset name from dataset_info.json", 'eval')
    .option('--embed-model <dir>', "a separate local model to embed with (default: the run's model)")
    .option('--k <n>', 'neighbours per query, capped at the pool size (near 1000, tsds 5000)')
    .option('--batch-size <n>', "embedding batch size (default: the run's per_device_eval_batch_size)")
    .option('--kde-k <n>', 'tsds: neighbours in the density estimate (default 1000, capped)')
    .option('--sigma <x>', 'tsds: kernel bandwidth; 0 disables the density (default 0.75)')
    .option('--alpha <x>', 'tsds: transport/diversity trade-off in [0, 1] (default 0.6)')
    .option('--c <x>', 'tsds: cost scale C > 0 (default 5.0)')
    .action(async (method: string, config: string, overrides: string[], options: PrepareCliOptions) => {
      ctx.done(await prepareCommand(method, config, overrides, options, ctx.io))
    })
}

function prepareCommand(
  method: string,
  config: string,
  overrides: string[],
  options: PrepareCliOptions,
  io: CliIO,
): Promise<number> {
  return runCommand(io, { what: 'prepare' }, async (signal) => {
    const settings = parsePrepareOptions(method, config, overrides, options)
    const summary = await runPrepare(settings, {
      env: io.env,
      signal,
      log: (line) => void io.stderr.write(`${line}\n`),
      onWarning: (message) => void io.stderr.write(`warning: ${message}\n`),
    })
    if (signal.aborted) return
    const stats = Object.entries(summary.stats)
      .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(4) : v}`)
      .join(' ')
    io.stdout.write(
      `wrote ${summary.out} (${summary.dtype}, shape [${summary.shape.join(', ')}]) and ${summary.meta} in ` +
        `${summary.seconds.toFixed(1)} s${stats ? `\n  ${stats}` : ''}\n`,
    )
  })
}
