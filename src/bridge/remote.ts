/**
 * The process side of a bridge to a sidecar on another host (`dataflex train --connect`): nothing to spawn or
 * signal, so stopping is the `shutdown` op alone (the sidecar then exits and `dataflex serve` starts a fresh one for
 * the next run). Liveness comes from the client's heartbeat, as for a local sidecar.
 */
import type { SidecarExit, SidecarHandle, StopOptions, StopResult } from './sidecar.ts'

export class RemoteSidecar implements SidecarHandle {
  private exitValue: SidecarExit | undefined
  private readonly listeners = new Set<(exit: SidecarExit) => void>()
  private resolveExited!: (exit: SidecarExit) => void
  readonly exited: Promise<SidecarExit> = new Promise((resolve) => {
    this.resolveExited = resolve
  })
  private stopPromise: Promise<StopResult> | undefined

  /** `endpoint`: where it listens (`tcp://host:port`); `pid`: its process id there, from `hello`. */
  constructor(
    readonly endpoint: string,
    readonly pid: number | undefined,
  ) {}

  get state(): 'ready' | 'exited' {
    return this.exitValue === undefined ? 'ready' : 'exited'
  }

  onExit(fn: (exit: SidecarExit) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /** Sends `shutdown` (if given) and waits up to `graceMs` for its reply; the remote process is not ours to kill. */
  stop(opts: StopOptions = {}): Promise<StopResult> {
    this.stopPromise ??= (async () => {
      let escalation: StopResult['escalation'] = 'none'
      if (opts.shutdown !== undefined) {
        escalation = 'shutdown'
        await opts.shutdown().catch(() => {}) // a gone or busy sidecar: nothing more we can do from here
      }
      const exit: SidecarExit = { exitCode: null, signal: null, stderrTail: '', expected: true }
      this.exitValue = exit
      this.resolveExited(exit)
      for (const fn of this.listeners) fn(exit)
      this.listeners.clear()
      return { exitCode: null, signal: null, escalation }
    })()
    return this.stopPromise
  }
}
