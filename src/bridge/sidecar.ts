/**
 * Supervision of the Python sidecar process: spawn, READY handshake, stderr tail, exit detection, and
 * stop with escalation (shutdown op → SIGTERM → SIGKILL). No RPC here; see client.ts.
 *
 * States: idle → starting → ready → stopping → exited (any state can jump to exited on a crash).
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { BridgeError, type ExitInfo, SidecarStartError, describeExit } from './errors.ts'
import { LineRing, LineSplitter } from './lines.ts'
import { defaultLog, type LogFn } from './log.ts'
import { resolvePython, sidecarEnv, venvPythonExists } from './python.ts'

export type SidecarState = 'idle' | 'starting' | 'ready' | 'stopping' | 'exited'

export interface SidecarOptions {
  /** Python executable; default: env DATAFLEX_PYTHON, else `<repo>/.venv/bin/python`. */
  readonly python?: string
  /** Python arguments before `-m dataflex_bridge`: e.g. torchrun's (launch.ts torchrunArgs); rank 0 prints READY. */
  readonly launcher?: readonly string[]
  /** false: no READY line comes (a node of a multi-node run without rank 0, whose ranks only follow); start()
   * resolves once the process runs. */
  readonly awaitReady?: boolean
  /** Extra arguments after `-m dataflex_bridge --endpoint <ep>`. */
  readonly args?: readonly string[]
  /** Endpoint to bind instead of a private ipc socket (e.g. `tcp://127.0.0.1:*`). */
  readonly endpoint?: string
  /** Added to (or, when undefined, removed from) the sidecar's environment. */
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly cwd?: string
  /** How long to wait for the READY line. Imports (torch, LLaMA-Factory) take seconds on a slow CPU. */
  readonly readyTimeoutMs?: number
  /** Lines of stderr kept for error messages. */
  readonly stderrLines?: number
  readonly log?: LogFn
}

export interface StopOptions {
  /** How long each step (shutdown op, SIGTERM) gets before the next, harsher one. */
  readonly graceMs?: number
  /** Sends the `shutdown` op; the client provides it. Without it, stop starts at SIGTERM. */
  readonly shutdown?: () => Promise<unknown>
}

export interface StopResult extends ExitInfo {
  /** The harshest step that was needed; `none` when the process had already exited. */
  readonly escalation: 'none' | 'shutdown' | 'sigterm' | 'sigkill'
}

export interface SidecarExit extends ExitInfo {
  readonly stderrTail: string
  /** True when the exit followed stop(); false for a crash. */
  readonly expected: boolean
}

const DEFAULT_READY_TIMEOUT_MS = 120_000
const DEFAULT_GRACE_MS = 2_000
const STDIO_DRAIN_MS = 50
const READY_RE = /^READY (\d+) (\S+)$/
const SUN_PATH_MAX = 100 // sockaddr_un.sun_path is 108 bytes; keep a margin

// Every running sidecar, so a synchronous 'exit' hook can kill them: no orphan outlives this process.
const live = new Set<Sidecar>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const s of live) s.killNow()
  })
}

/** Stop every live sidecar (for a CLI's SIGINT/SIGTERM handler). */
export async function stopAllSidecars(opts: StopOptions = {}): Promise<void> {
  await Promise.allSettled([...live].map((s) => s.stop(opts)))
}

/** What a Bridge needs of the sidecar's process side: a spawned Sidecar, or a remote one (remote.ts). */
export interface SidecarHandle {
  readonly state: SidecarState
  readonly pid: number | undefined
  /** Where it listens. */
  readonly endpoint: string | undefined
  readonly exited: Promise<SidecarExit>
  onExit(fn: (exit: SidecarExit) => void): () => void
  stop(opts?: StopOptions): Promise<StopResult>
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>

export class Sidecar implements SidecarHandle {
  private stateValue: SidecarState = 'idle'
  private child: Child | undefined
  private dir: string | undefined
  private readonly ring: LineRing
  private readonly log: LogFn
  private exitValue: SidecarExit | undefined
  private readonly exitListeners = new Set<(exit: SidecarExit) => void>()
  private readonly exitedPromise: Promise<SidecarExit>
  private resolveExited!: (exit: SidecarExit) => void
  private stopPromise: Promise<StopResult> | undefined
  private pidValue: number | undefined
  private endpointValue: string | undefined

  constructor(private readonly options: SidecarOptions = {}) {
    this.ring = new LineRing(options.stderrLines ?? 200)
    this.log = options.log ?? defaultLog
    this.exitedPromise = new Promise((resolve) => {
      this.resolveExited = resolve
    })
  }

  get state(): SidecarState {
    return this.stateValue
  }

  get pid(): number | undefined {
    return this.pidValue
  }

  /** The endpoint the sidecar bound (from its READY line). */
  get endpoint(): string | undefined {
    return this.endpointValue
  }

  /** Set once the process has exited. */
  get exit(): SidecarExit | undefined {
    return this.exitValue
  }

  /** Resolves when the process has exited (never rejects). */
  get exited(): Promise<SidecarExit> {
    return this.exitedPromise
  }

  /** The last `lines` lines the sidecar wrote to stderr. */
  stderrTail(lines = 40): string {
    return this.ring.tail(lines)
  }

  /** Called once, as soon as the process has exited (crash or stop). Returns an unsubscribe function. */
  onExit(fn: (exit: SidecarExit) => void): () => void {
    if (this.exitValue !== undefined) {
      const exit = this.exitValue
      queueMicrotask(() => fn(exit))
      return () => {}
    }
    this.exitListeners.add(fn)
    return () => this.exitListeners.delete(fn)
  }

  /** Spawn and wait for `READY <pid> <endpoint>`. Rejects with SidecarStartError. */
  start(): Promise<{ pid: number; endpoint: string }> {
    if (this.stateValue !== 'idle') {
      return Promise.reject(new BridgeError('sidecar_start', `start() called in state '${this.stateValue}'`))
    }
    this.stateValue = 'starting'
    const python = resolvePython(this.options.python)
    let endpoint: string
    try {
      endpoint = this.options.endpoint ?? this.makeIpcEndpoint()
    } catch (cause) {
      this.finish({ exitCode: null, signal: null })
      return Promise.reject(new SidecarStartError(`cannot create the sidecar's socket directory: ${String(cause)}`, { cause }))
    }
    const args = [...(this.options.launcher ?? []), '-m', 'dataflex_bridge', '--endpoint', endpoint]
    // The sidecar removes the dir itself too: if this process is SIGKILLed, nobody here can.
    if (this.dir !== undefined) args.push('--cleanup-dir', this.dir)
    args.push(...(this.options.args ?? []))

    return new Promise((resolve, reject) => {
      let settled = false
      const fail = (err: SidecarStartError): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        reject(err)
      }
      const timeoutMs = this.options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS
      const timer = setTimeout(() => {
        fail(new SidecarStartError(`the sidecar printed no READY line within ${timeoutMs} ms`, { stderrTail: this.ring.tail() }))
        this.killNow()
      }, timeoutMs)

      let child: Child
      try {
        // detached: own process group, so a terminal's Ctrl-C reaches only us (we then stop it in order),
        // and signals can go to the whole group (torchrun ranks, dataloader workers).
        child = spawn(python.executable, args, {
          stdio: ['pipe', 'pipe', 'pipe'],
          env: sidecarEnv(process.env, this.options.env),
          cwd: this.options.cwd,
          detached: true,
        })
      } catch (cause) {
        this.finish({ exitCode: null, signal: null })
        fail(new SidecarStartError(`cannot spawn ${python.executable}: ${String(cause)}`, { cause }))
        return
      }
      this.child = child
      live.add(this)
      installExitHook()
      if (this.options.awaitReady === false && child.pid !== undefined) {
        settled = true
        clearTimeout(timer)
        this.pidValue = child.pid
        this.stateValue = 'ready'
        resolve({ pid: child.pid, endpoint })
      }

      child.on('error', (err) => {
        // Spawn failure (ENOENT, EACCES): 'exit' may never follow, so finish here.
        if (this.stateValue === 'starting' && child.pid === undefined) {
          const hint =
            python.source === '.venv' && !venvPythonExists()
              ? ` (no project venv: run \`npm run setup\`, or set DATAFLEX_PYTHON to a Python with dataflex_bridge's deps)`
              : ''
          this.finish({ exitCode: null, signal: null })
          fail(new SidecarStartError(`cannot start ${python.executable} (from ${python.source}): ${err.message}${hint}`, { cause: err }))
        } else {
          this.log({ level: 'warn', source: 'bridge', message: `sidecar process error: ${err.message}` })
        }
      })
      // Nobody writes to stdin (it only signals our death by EOF); ignore EPIPE and the like.
      child.stdin.on('error', () => {})
      child.stdout.on('error', () => {})
      child.stderr.on('error', () => {})

      const stdout = new LineSplitter((line) => {
        const m = this.stateValue === 'starting' ? READY_RE.exec(line) : null
        if (m !== null && !settled) {
          settled = true
          clearTimeout(timer)
          this.pidValue = Number(m[1])
          this.endpointValue = m[2] as string
          this.stateValue = 'ready'
          this.log({ level: 'debug', source: 'bridge', message: `sidecar ready: pid ${this.pidValue} at ${this.endpointValue}` })
          resolve({ pid: this.pidValue, endpoint: this.endpointValue })
          return
        }
        this.log({ level: 'info', source: 'sidecar', stream: 'stdout', message: line })
      })
      const stderr = new LineSplitter((line) => {
        this.ring.push(line)
        this.log({ level: 'info', source: 'sidecar', stream: 'stderr', message: line })
      })
      child.stdout.setEncoding('utf8').on('data', (s: string) => stdout.push(s))
      child.stderr.setEncoding('utf8').on('data', (s: string) => stderr.push(s))

      let closed = false
      child.on('close', () => {
        closed = true
      })
      child.on('exit', (code, signal) => {
        // Give the pipes a moment to deliver the last stderr lines (a traceback), but not long:
        // a grandchild holding the pipe open must not delay crash detection.
        const done = (): void => {
          stdout.flush()
          stderr.flush()
          const info = { exitCode: code, signal }
          fail(
            new SidecarStartError(`the sidecar exited before it was ready (${describeExit(info)})`, {
              ...info,
              stderrTail: this.ring.tail(),
            }),
          )
          this.finish(info)
        }
        if (closed) done()
        else {
          const t = setTimeout(done, STDIO_DRAIN_MS)
          child.once('close', () => {
            clearTimeout(t)
            done()
          })
        }
      })
    })
  }

  /**
   * Stop the process and wait for it to exit: `shutdown()` (if given and the sidecar is ready), then
   * SIGTERM, then SIGKILL, each after `graceMs`. Idempotent: later calls return the same promise.
   */
  stop(opts: StopOptions = {}): Promise<StopResult> {
    this.stopPromise ??= this.doStop(opts.graceMs ?? DEFAULT_GRACE_MS, opts.shutdown)
    return this.stopPromise
  }

  private async doStop(graceMs: number, shutdown: (() => Promise<unknown>) | undefined): Promise<StopResult> {
    if (this.stateValue === 'idle') {
      this.finish({ exitCode: null, signal: null })
    }
    if (this.stateValue === 'exited') {
      const e = this.exitValue as SidecarExit
      return { exitCode: e.exitCode, signal: e.signal, escalation: 'none' }
    }
    const wasReady = this.stateValue === 'ready'
    this.stateValue = 'stopping'
    const result = (escalation: StopResult['escalation'], e: SidecarExit): StopResult => ({
      exitCode: e.exitCode,
      signal: e.signal,
      escalation,
    })
    if (shutdown !== undefined && wasReady) {
      shutdown().catch(() => {}) // its reply may never come: the process exit is what we wait for
      const e = await this.waitExit(graceMs)
      if (e !== undefined) return result('shutdown', e)
    }
    this.signal('SIGTERM')
    const e = await this.waitExit(graceMs)
    if (e !== undefined) return result('sigterm', e)
    this.signal('SIGKILL')
    return result('sigkill', await this.exitedPromise)
  }

  private waitExit(ms: number): Promise<SidecarExit | undefined> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(undefined), ms)
      void this.exitedPromise.then((e) => {
        clearTimeout(t)
        resolve(e)
      })
    })
  }

  /** Send a signal to the sidecar's process group (falls back to the process). Returns false if gone. */
  signal(sig: NodeJS.Signals): boolean {
    const child = this.child
    if (child?.pid === undefined || this.exitValue !== undefined) return false
    try {
      process.kill(-child.pid, sig)
      return true
    } catch {
      try {
        return child.kill(sig)
      } catch {
        return false
      }
    }
  }

  /** Synchronous last resort (process 'exit' hook, READY timeout): SIGKILL and remove the socket dir. */
  killNow(): void {
    this.signal('SIGKILL')
    this.removeDir()
  }

  private makeIpcEndpoint(): string {
    let base = tmpdir()
    // A long TMPDIR would overflow the ipc path limit; /tmp is short and always there on Linux.
    if (`ipc://${join(base, 'dfx-XXXXXX', 's.ipc')}`.length - 'ipc://'.length > SUN_PATH_MAX) base = '/tmp'
    const dir = mkdtempSync(join(base, 'dfx-'))
    chmodSync(dir, 0o700) // only this user can reach the socket
    this.dir = dir
    return `ipc://${join(dir, 's.ipc')}`
  }

  private removeDir(): void {
    if (this.dir === undefined) return
    try {
      rmSync(this.dir, { recursive: true, force: true })
    } catch {
      // best effort: a leftover empty dir in the temp folder is harmless
    }
    this.dir = undefined
  }

  private finish(info: ExitInfo): void {
    if (this.exitValue !== undefined) return
    const expected = this.stateValue === 'stopping'
    // A failed start is reported by start()'s rejection; only a crash of a ready sidecar is news here.
    const crashed = this.stateValue === 'ready'
    this.stateValue = 'exited'
    const exit: SidecarExit = { ...info, stderrTail: this.ring.tail(), expected }
    this.exitValue = exit
    live.delete(this)
    this.removeDir()
    this.child?.stdin.destroy()
    this.child?.stdout.destroy()
    this.child?.stderr.destroy()
    this.log({
      level: crashed ? 'warn' : 'debug',
      source: 'bridge',
      message: `sidecar${this.pidValue === undefined ? '' : ` ${this.pidValue}`} exited (${describeExit(info)})${crashed ? ' unexpectedly' : ''}`,
    })
    this.resolveExited(exit)
    for (const fn of this.exitListeners) {
      try {
        fn(exit)
      } catch (err) {
        this.log({ level: 'error', source: 'bridge', message: `exit listener threw: ${String(err)}` })
      }
    }
    this.exitListeners.clear()
  }
}
