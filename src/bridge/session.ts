/**
 * One sidecar for the length of a command (`train`, `prepare`): started with deadlines that allow for a model
 * load, stopped at once when the command's AbortSignal fires, and closed on every way out.
 */
import { connectBridge, startBridge, type Bridge } from './index.ts'
import type { LogEntry } from './log.ts'

/** READY and hello deadlines: the sidecar imports torch and LLaMA-Factory before it answers. */
const START_TIMEOUT_MS = 120_000
/** Per-step grace of the stop an abort starts (shutdown op, SIGTERM, SIGKILL): short, someone is waiting. */
const ABORT_GRACE_MS = 1_500
/**
 * Per-step grace of the normal stop of a torchrun launch: after the shutdown op, torchrun's agent on node 0 waits in
 * its exit barrier until every node's ranks have ended, and it hosts the store those ranks use until then. Stopping it
 * sooner (SIGTERM after 2 s) could fail another node's ranks on their way out.
 */
const TORCHRUN_STOP_GRACE_MS = 30_000

export interface SidecarSessionOptions {
  /** Python interpreter (default: DATAFLEX_PYTHON, else the repo's .venv). */
  readonly python?: string
  /** Python arguments before `-m dataflex_bridge` (torchrun's, launch.ts). */
  readonly launcher?: readonly string[]
  /** Drive the sidecar `dataflex serve` runs there instead of spawning one (docs/remote.md). */
  readonly connect?: RemoteTarget
  readonly signal?: AbortSignal
  /** Lines for the user: bridge warnings and errors, and with DATAFLEX_VERBOSE the sidecar's own output. */
  readonly log?: (line: string) => void
  /** Every line the sidecar writes (e.g. for a sidecar.log). */
  readonly onSidecarLine?: (line: string) => void
  /** The caller's error for "stopped by the signal"; whatever `body` threw on the way out becomes its cause. */
  readonly aborted: (cause: unknown) => Error
}

/** A sidecar that `dataflex serve` runs: its endpoint and the client's key folder. */
export interface RemoteTarget {
  readonly endpoint: string
  readonly keysDir?: string
}

/** Starts a sidecar (or connects to a remote one), runs `body` with it, and stops it however `body` ends. */
export async function withSidecar<T>(opts: SidecarSessionOptions, body: (bridge: Bridge) => Promise<T>): Promise<T> {
  const onLog = (e: LogEntry): void => {
    if (e.source === 'sidecar') {
      opts.onSidecarLine?.(e.message)
      if (process.env['DATAFLEX_VERBOSE']) opts.log?.(e.message)
    } else if (e.level === 'warn' || e.level === 'error') {
      opts.log?.(`bridge ${e.level}: ${e.message}`)
    }
  }
  const bridge =
    opts.connect === undefined
      ? await startBridge({
          python: opts.python,
          launcher: opts.launcher,
          log: onLog,
          readyTimeoutMs: START_TIMEOUT_MS,
          helloTimeoutMs: START_TIMEOUT_MS,
          ...(opts.launcher === undefined ? {} : { stopGraceMs: TORCHRUN_STOP_GRACE_MS }),
        })
      : await connectBridge({ ...opts.connect, log: onLog, helloTimeoutMs: START_TIMEOUT_MS })
  const abort = (): void => void bridge.close({ graceMs: ABORT_GRACE_MS })
  opts.signal?.addEventListener('abort', abort, { once: true })
  try {
    // A signal that came while the sidecar started would otherwise go unseen until the body next checks.
    opts.signal?.throwIfAborted()
    return await body(bridge)
  } catch (err) {
    if (opts.signal?.aborted) throw opts.aborted(err)
    throw err
  } finally {
    opts.signal?.removeEventListener('abort', abort)
    await bridge.close()
  }
}
