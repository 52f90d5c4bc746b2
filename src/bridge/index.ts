/**
 * The bridge facade: `startBridge()` spawns the Python sidecar, connects, shakes hands, and returns a
 * Bridge to call ops on, answer the sidecar's requests, listen to its events and close it.
 *
 * The executor's ops are called through the op catalog's typed client (ops.ts), not `request`:
 *
 * ```ts
 * const bridge = await startBridge()
 * const ops = new OpClient(bridge) // import { OpClient } from './ops.ts'
 * const info = await ops.call('load', { config: { model_name_or_path: 'models/tiny-qwen2', ... } })
 * const { losses } = await ops.call('losses', { indices: Int32Array.of(0, 1, 2) }) // split defaults to 'train'
 * bridge.on('step', (d) => console.log(d.step, d.loss)) // train_steps emits one event per optimizer step
 * await bridge.close()
 * ```
 *
 * `request` stays for the built-in ops (ping, echo, …) and test ops; `handle(op, fn)` answers the sidecar's
 * `ctx.request` calls.
 */
import { BridgeClient, type Body, type EventListener, type HeartbeatOptions, type RequestHandler, type RequestOptions } from './client.ts'
import { BridgeClosedError, SidecarExitedError } from './errors.ts'
import type { LogFn } from './log.ts'
import type { HelloResult } from './protocol.ts'
import { checkPlainTcp, loadClientKeys } from './keys.ts'
import { RemoteSidecar } from './remote.ts'
import { Sidecar, type SidecarExit, type SidecarHandle, type SidecarOptions, type StopResult } from './sidecar.ts'

export interface BridgeOptions extends SidecarOptions {
  /** Sent in `hello`, shows up in the sidecar's log. */
  readonly clientName?: string
  /** Deadline of the handshake (the sidecar probes the device by importing torch: seconds). */
  readonly helloTimeoutMs?: number
  /** Default deadline of a request. */
  readonly requestTimeoutMs?: number
  /** App-level heartbeat; `false` disables it. Default: ping every 2 s, hung after 5 misses. */
  readonly heartbeat?: HeartbeatOptions | false
  /** Per-step grace of close(): shutdown op, then SIGTERM, then SIGKILL. */
  readonly stopGraceMs?: number
  /** The sidecar's frame size limit (`--max-frame-bytes`). */
  readonly maxFrameBytes?: number
  readonly onHealthChange?: (healthy: boolean) => void
  readonly log?: LogFn
}

export class Bridge<S extends SidecarHandle = SidecarHandle> {
  private closing = false
  private closePromise: Promise<StopResult> | undefined

  /** Use startBridge() or connectBridge(). */
  constructor(
    /** The supervised process (state, pid, stderr tail), or a remote sidecar's stand-in. */
    readonly sidecar: S,
    private readonly client: BridgeClient,
    /** The handshake: protocol, pid, library versions, device, world size, available ops. */
    readonly info: HelloResult,
    private readonly stopGraceMs: number,
  ) {
    sidecar.onExit((exit) => {
      const exited = new SidecarExitedError(exit)
      client.fail(this.closing ? new BridgeClosedError('the bridge was closed', { cause: exited }) : exited)
    })
  }

  get pid(): number {
    return this.info.pid
  }

  /** False while the heartbeat considers the sidecar hung. */
  get healthy(): boolean {
    return this.client.healthy
  }

  /** Resolves when the sidecar process has exited (crash or close). */
  get exited(): Promise<SidecarExit> {
    return this.sidecar.exited
  }

  /** Call an op on the sidecar; typed arrays (and NdArray) anywhere in `args` travel as raw frames. */
  request<T = Body>(op: string, args: Body = {}, opts: RequestOptions<T> = {}): Promise<T> {
    if (this.closing) return Promise.reject(new BridgeClosedError())
    return this.client.request(op, args, opts)
  }

  /** Low level (protocol tests, custom encodings): send the frames `build(id)` returns as request `id`. */
  requestFrames<T = Body>(op: string, build: (id: number) => Buffer[], opts: RequestOptions<T> = {}): Promise<T> {
    if (this.closing) return Promise.reject(new BridgeClosedError())
    return this.client.requestFrames(op, build, opts)
  }

  /** Answer the sidecar's `ctx.request(op, …)` calls. Returns an unregister function. */
  handle(op: string, fn: RequestHandler): () => void {
    return this.client.handle(op, fn)
  }

  /** Listen to the sidecar's `ctx.emit(event, …)`. Returns an unsubscribe function. */
  on(event: string, fn: EventListener): () => void {
    return this.client.on(event, fn)
  }

  /**
   * Stop the sidecar (shutdown op → SIGTERM → SIGKILL, `graceMs` each) and close the socket. Pending
   * requests reject with BridgeClosedError. Idempotent.
   */
  close(opts: { graceMs?: number } = {}): Promise<StopResult> {
    this.closePromise ??= (async () => {
      this.closing = true
      const graceMs = opts.graceMs ?? this.stopGraceMs
      try {
        return await this.sidecar.stop({
          graceMs,
          shutdown: () => this.client.request('shutdown', {}, { timeoutMs: graceMs }),
        })
      } finally {
        await this.client.close()
      }
    })()
    return this.closePromise
  }
}

/** Spawn the sidecar, connect, and complete the `hello` handshake. */
export async function startBridge(opts: BridgeOptions = {}): Promise<Bridge<Sidecar>> {
  const args = [...(opts.args ?? [])]
  if (opts.maxFrameBytes !== undefined) args.push('--max-frame-bytes', String(opts.maxFrameBytes))
  const sidecar = new Sidecar({ ...opts, args })
  const { endpoint } = await sidecar.start()
  const client = new BridgeClient({
    endpoint,
    defaultTimeoutMs: opts.requestTimeoutMs,
    heartbeat: opts.heartbeat,
    log: opts.log,
    onHealthChange: opts.onHealthChange,
  })
  // Until the Bridge exists, a crash during the handshake must still fail it at once.
  const unsubscribe = sidecar.onExit((exit) => client.fail(new SidecarExitedError(exit)))
  let info: HelloResult
  try {
    info = await client.connect(opts.clientName, opts.helloTimeoutMs)
  } catch (err) {
    await sidecar.stop({ graceMs: 1_000 })
    await client.close()
    throw err
  } finally {
    unsubscribe()
  }
  return new Bridge(sidecar, client, info, opts.stopGraceMs ?? 2_000)
}

export interface ConnectOptions extends Pick<BridgeOptions, 'clientName' | 'helloTimeoutMs' | 'requestTimeoutMs' | 'heartbeat' | 'stopGraceMs' | 'onHealthChange' | 'log'> {
  /** Where `dataflex serve` listens: `tcp://host:port`. */
  readonly endpoint: string
  /** The CURVE key folder (`dataflex keys <dir>`); required unless the sidecar is on loopback without keys. */
  readonly keysDir?: string
  /** How long to wait for the connection before `hello` (a server between runs restarts its sidecar: seconds). */
  readonly connectTimeoutMs?: number
}

/** Connect to a sidecar that `dataflex serve` runs (possibly on another host) and complete the handshake. */
export async function connectBridge(opts: ConnectOptions): Promise<Bridge<RemoteSidecar>> {
  checkPlainTcp(opts.endpoint, opts.keysDir !== undefined, 'connect to')
  const curve = opts.keysDir === undefined ? undefined : loadClientKeys(opts.keysDir)
  const client = new BridgeClient({
    endpoint: opts.endpoint,
    curve,
    connectTimeoutMs: opts.connectTimeoutMs ?? 30_000,
    defaultTimeoutMs: opts.requestTimeoutMs,
    heartbeat: opts.heartbeat,
    log: opts.log,
    onHealthChange: opts.onHealthChange,
  })
  let info: HelloResult
  try {
    info = await client.connect(opts.clientName, opts.helloTimeoutMs)
  } catch (err) {
    await client.close()
    throw err
  }
  return new Bridge(new RemoteSidecar(opts.endpoint, info.pid), client, info, opts.stopGraceMs ?? 2_000)
}

export { BridgeClient } from './client.ts'
export type { Body, ClientOptions, EventListener, HandlerContext, HeartbeatOptions, RequestHandler, RequestOptions } from './client.ts'
export * from './errors.ts'
export { DTYPES, NdArray, decodeMessage, dtypeOf, encodeMessage, type DType, type WireArray } from './frames.ts'
export type { LogEntry, LogFn, LogLevel } from './log.ts'
export { HelloResult, PROTOCOL_VERSION, REMOTE_ERROR_CODES, type RemoteErrorCode } from './protocol.ts'
export { PYTHON_BRIDGE_DIR, REPO_ROOT, resolvePython, sidecarEnv } from './python.ts'
export { KeysError, checkPlainTcp, checkServerKeys, generateKeys, loadClientKeys, type ClientKeys } from './keys.ts'
export { RemoteSidecar } from './remote.ts'
export { Sidecar, stopAllSidecars, type SidecarExit, type SidecarHandle, type SidecarOptions, type SidecarState, type StopOptions, type StopResult } from './sidecar.ts'
