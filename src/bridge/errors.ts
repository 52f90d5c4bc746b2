/**
 * Bridge errors. Every error the bridge raises is a BridgeError with a string `code` (switch on it, not on
 * the message) and, where one exists, the underlying `cause`.
 */
import type { z } from 'zod'
import type { RemoteErrorCode } from './protocol.ts'

export type BridgeErrorCode =
  | 'sidecar_start'
  | 'sidecar_exited'
  | 'sidecar_hung'
  | 'timeout'
  | 'protocol_mismatch'
  | 'bridge_closed'
  | 'send_failed'
  | 'bad_header'
  | 'bad_array'
  | 'bad_result'
  | 'encode'
  | 'bad_args'
  | 'connect_failed'

export class BridgeError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** How a sidecar process ended. Exactly one of `exitCode` / `signal` is set. */
export interface ExitInfo {
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
}

export function describeExit(info: ExitInfo): string {
  return info.signal !== null ? `killed by ${info.signal}` : `exit code ${info.exitCode ?? 'unknown'}`
}

function withTail(message: string, stderrTail: string): string {
  // Only the last lines go in the message; the full tail stays on the error object.
  const lines = stderrTail.trimEnd().split('\n').slice(-12).join('\n')
  return lines.length > 0 ? `${message}\n--- sidecar stderr (last lines) ---\n${lines}` : message
}

/** The sidecar could not be started: spawn failure, early exit, READY timeout. */
export class SidecarStartError extends BridgeError {
  declare readonly code: 'sidecar_start'
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderrTail: string

  constructor(
    message: string,
    details: { exitCode?: number | null; signal?: NodeJS.Signals | null; stderrTail?: string; cause?: unknown } = {},
  ) {
    const stderrTail = details.stderrTail ?? ''
    super('sidecar_start', withTail(message, stderrTail), { cause: details.cause })
    this.exitCode = details.exitCode ?? null
    this.signal = details.signal ?? null
    this.stderrTail = stderrTail
  }
}

/** The sidecar process ended while requests were pending, or a request was made after it ended. */
export class SidecarExitedError extends BridgeError implements ExitInfo {
  declare readonly code: 'sidecar_exited'
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderrTail: string

  constructor(info: ExitInfo & { stderrTail: string }) {
    super('sidecar_exited', withTail(`the Python sidecar exited (${describeExit(info)})`, info.stderrTail))
    this.exitCode = info.exitCode
    this.signal = info.signal
    this.stderrTail = info.stderrTail
  }
}

/** The app-level heartbeat got no answer: the sidecar is alive but not responding (stopped, GIL held, …). */
export class SidecarHungError extends BridgeError {
  declare readonly code: 'sidecar_hung'
  readonly missedPings: number

  constructor(missedPings: number, intervalMs: number) {
    super(
      'sidecar_hung',
      `the Python sidecar stopped responding: ${missedPings} heartbeat pings (every ${intervalMs} ms) went unanswered`,
    )
    this.missedPings = missedPings
  }
}

export class RequestTimeoutError extends BridgeError {
  declare readonly code: 'timeout'
  readonly op: string
  readonly timeoutMs: number

  constructor(op: string, timeoutMs: number) {
    super('timeout', `request '${op}' got no reply within ${timeoutMs} ms`)
    this.op = op
    this.timeoutMs = timeoutMs
  }
}

/** The other side answered with an error reply. `code` is the remote code (e.g. `unknown_op`). */
export class RemoteError extends BridgeError {
  declare readonly code: RemoteErrorCode | (string & {})
  readonly op: string
  /** Python traceback (or other detail) when the remote sent one. */
  readonly detail: string | undefined

  constructor(op: string, error: { code: string; message: string; detail?: string | undefined }) {
    super(error.code, `${op}: ${error.message}`)
    this.op = op
    this.detail = error.detail
  }
}

export class ProtocolMismatchError extends BridgeError {
  declare readonly code: 'protocol_mismatch'
  readonly ours: number
  readonly theirs: number | undefined

  constructor(ours: number, theirs: number | undefined, options?: { cause?: unknown }) {
    super(
      'protocol_mismatch',
      `bridge protocol mismatch: this TypeScript client speaks version ${ours}, the Python sidecar speaks ` +
        `${theirs === undefined ? 'an unknown version' : `version ${theirs}`}. Reinstall the Python bridge ` +
        `from this checkout (pip install -e python_bridge) so both sides match.`,
      options,
    )
    this.ours = ours
    this.theirs = theirs
  }
}

export class BridgeClosedError extends BridgeError {
  declare readonly code: 'bridge_closed'

  constructor(message = 'the bridge is closed', options?: { cause?: unknown }) {
    super('bridge_closed', message, options)
  }
}

/** A message that cannot be encoded, or a received message that is malformed. */
export class WireFormatError extends BridgeError {
  declare readonly code: 'bad_header' | 'bad_array' | 'bad_result' | 'encode'

  constructor(code: 'bad_header' | 'bad_array' | 'bad_result' | 'encode', message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

/** Sending on the socket failed (the request never left this process). */
export class SendError extends BridgeError {
  declare readonly code: 'send_failed'

  constructor(op: string, cause: unknown) {
    super('send_failed', `could not send request '${op}'`, { cause })
  }
}

function issues(error: z.ZodError, root: string): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : root}: ${i.message}`)
    .join('; ')
}

/** Args of a catalog op (ops.ts) that do not match its schema, refused before anything is sent (or handled). */
export class OpArgsError extends BridgeError {
  declare readonly code: 'bad_args'
  readonly op: string

  constructor(op: string, error: z.ZodError) {
    super('bad_args', `${op}: invalid args: ${issues(error, '(args)')}`, { cause: error })
    this.op = op
  }
}

/** A TypeScript handler's result for a catalog op that does not match its schema, refused before the reply. */
export class OpResultError extends BridgeError {
  declare readonly code: 'bad_result'
  readonly op: string

  constructor(op: string, error: z.ZodError) {
    super('bad_result', `${op}: invalid result: ${issues(error, '(result)')}`, { cause: error })
    this.op = op
  }
}

/** A remote sidecar (`--connect`) could not be reached, or refused this client's key. */
export class ConnectError extends BridgeError {
  declare readonly code: 'connect_failed'

  constructor(message: string) {
    super('connect_failed', message)
  }
}
