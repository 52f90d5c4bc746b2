/**
 * How a long CLI command (train, prepare) runs: SIGINT / SIGTERM abort it through its AbortSignal; a second signal,
 * or a command that has not stopped STOP_GRACE_MS after the first, exits at once. Every way out is an exit code:
 * 0 done, 1 runtime failure, 2 bad input, 130 SIGINT, 143 SIGTERM.
 */
import type { CliIO, StopSignal } from './io.ts'
import { EXIT_OK, reportError } from './report.ts'

export const SIGNAL_EXIT: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 }

/** How long a stopping command may take (sidecar shutdown, a final checkpoint) before the CLI gives up on it. */
const STOP_GRACE_MS = 30_000

export interface CommandOptions {
  /** What a signal stops, for the messages: 'the run'. */
  readonly what: string
  /** Runs when the command failed or was stopped, before the error is printed (e.g. to end a progress line). */
  readonly onFailure?: () => void
}

/** Runs `command` with the stop signals wired to its abort signal; resolves to the exit code. */
export async function runCommand(io: CliIO, opts: CommandOptions, command: (signal: AbortSignal) => Promise<void>): Promise<number> {
  const controller = new AbortController()
  let received: StopSignal | undefined
  let graceTimer: NodeJS.Timeout | undefined

  const onSignal = (signal: StopSignal): void => {
    if (received !== undefined) {
      io.stderr.write(`\n${signal} again: exiting without waiting for ${opts.what} to stop\n`)
      io.forceExit(SIGNAL_EXIT[received])
      return
    }
    received = signal
    io.stderr.write(`\n${signal}: stopping ${opts.what} (repeat to exit at once)\n`)
    controller.abort(new DOMException(`interrupted by ${signal}`, 'AbortError'))
    graceTimer = setTimeout(() => {
      io.stderr.write(`${opts.what} did not stop within ${STOP_GRACE_MS / 1000} s; exiting\n`)
      io.forceExit(SIGNAL_EXIT[signal])
    }, STOP_GRACE_MS)
    graceTimer.unref()
  }
  io.signals.on('SIGINT', onSignal)
  io.signals.on('SIGTERM', onSignal)
  try {
    await command(controller.signal)
    return received === undefined ? EXIT_OK : SIGNAL_EXIT[received]
  } catch (err) {
    opts.onFailure?.()
    // After a signal, the abort is the expected way out; whatever the command threw is not news.
    if (received !== undefined) return SIGNAL_EXIT[received]
    return reportError(io, err)
  } finally {
    io.signals.off('SIGINT', onSignal)
    io.signals.off('SIGTERM', onSignal)
    if (graceTimer !== undefined) clearTimeout(graceTimer)
  }
}
