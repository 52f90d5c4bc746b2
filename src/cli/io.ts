/** What a CLI command reads and writes, as one object so tests can run commands in process. */

export type StopSignal = 'SIGINT' | 'SIGTERM'

export interface SignalSource {
  on(event: StopSignal, listener: (signal: StopSignal) => void): unknown
  off(event: StopSignal, listener: (signal: StopSignal) => void): unknown
}

export interface CliIO {
  stdout: { write(chunk: string): boolean }
  stderr: { write(chunk: string): boolean; isTTY?: boolean; columns?: number }
  env: NodeJS.ProcessEnv
  signals: SignalSource
  /** Leaves at once, for a second Ctrl-C or a command that ignores its abort. */
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
