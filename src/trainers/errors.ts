/** A run ended by its AbortSignal (Ctrl-C, SIGTERM, a caller's abort): the sidecar was stopped, not waited for. */
export class RunAbortedError extends Error {
  override readonly name = 'RunAbortedError'
  readonly code = 'aborted'
}
