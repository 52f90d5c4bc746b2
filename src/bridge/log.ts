/** The bridge's logging hook: one callback receives bridge diagnostics and the sidecar's output lines. */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export interface LogEntry {
  readonly level: LogLevel
  /** `bridge`: this process's diagnostics. `sidecar`: a line the Python process wrote. */
  readonly source: 'bridge' | 'sidecar'
  /** For `sidecar` lines: which stream. */
  readonly stream?: 'stdout' | 'stderr'
  readonly message: string
}

export type LogFn = (entry: LogEntry) => void

/** Default: warnings and errors to stderr; sidecar output is not echoed (it stays in the stderr ring). */
export const defaultLog: LogFn = (entry) => {
  if (entry.source === 'bridge' && (entry.level === 'warn' || entry.level === 'error')) {
    process.stderr.write(`[dataflex bridge] ${entry.level}: ${entry.message}\n`)
  }
}
