/**
 * RPC client over one ZeroMQ DEALER socket (docs/protocol.md): requests with deadlines, replies matched by
 * id, requests from the sidecar dispatched to handlers, events to listeners, an app-level heartbeat.
 *
 * zeromq.js allows one pending send and one pending receive per socket, so there is exactly one receive
 * loop (dispatching by kind and id) and all sends go through one promise chain.
 */
import { Dealer } from 'zeromq'
import type { z } from 'zod'
import {
  BridgeClosedError,
  type BridgeError,
  ConnectError,
  ProtocolMismatchError,
  RemoteError,
  RequestTimeoutError,
  SendError,
  SidecarHungError,
  WireFormatError,
} from './errors.ts'
import { encodeMessage, resolveArrays, unpackHeader } from './frames.ts'
import { defaultLog, type LogFn } from './log.ts'
import {
  type EventHeader,
  HelloResult,
  PROTOCOL_VERSION,
  PingResult,
  type ReplyHeader,
  type RequestHeader,
  parseHeader,
  peekHeader,
} from './protocol.ts'

export type Body = Record<string, unknown>

export interface HeartbeatOptions {
  /** How often to ping. */
  readonly intervalMs?: number
  /** Consecutive unanswered pings after which the sidecar is declared hung. */
  readonly maxMisses?: number
}

export interface ClientOptions {
  readonly endpoint: string
  /** CURVE keys (z85) for a tcp sidecar started with `--keys` (keys.ts). */
  readonly curve?: { readonly serverKey: string; readonly publicKey: string; readonly secretKey: string }
  /**
   * Remote sidecars: how long connect() waits for the transport handshake before `hello` (a wrong key shows as
   * no answer at all, so it must fail on its own clock). Unset: no separate wait (a local sidecar is up already).
   */
  readonly connectTimeoutMs?: number
  /** Deadline of a request that does not give `timeoutMs`. */
  readonly defaultTimeoutMs?: number
  /** App-level heartbeat, started after the handshake; `false` disables it. */
  readonly heartbeat?: HeartbeatOptions | false
  readonly log?: LogFn
  /** Called when the heartbeat declares the sidecar hung (false) and when it answers again (true). */
  readonly onHealthChange?: (healthy: boolean) => void
}

export interface RequestOptions<T> {
  /** Reply deadline; also sent to the sidecar as `deadline_ms`. Default: the client's `defaultTimeoutMs`. */
  readonly timeoutMs?: number
  /** Validates (and types) the result; a mismatch rejects with WireFormatError `bad_result`. */
  readonly result?: z.ZodType<T>
}

/** What a handler for a sidecar→TypeScript request gets besides its args. */
export interface HandlerContext {
  readonly id: number
  readonly op: string
  /** Absolute deadline (epoch ms) the sidecar gave, if any. */
  readonly deadlineMs: number | undefined
  /** Aborted when the deadline passes or the client closes. */
  readonly signal: AbortSignal
}

export type RequestHandler = (args: Body, ctx: HandlerContext) => Body | void | Promise<Body | void>
export type EventListener = (data: Body, event: string) => void

interface Pending {
  readonly op: string
  readonly resolve: (result: Body) => void
  readonly reject: (err: Error) => void
  readonly timer: NodeJS.Timeout
}

const DEFAULT_TIMEOUT_MS = 60_000
const MAX_TIMER_MS = 0x7fffffff // setTimeout's limit (~24.8 days)
const MAX_ID = 0x7fffffff
const ERROR_CODE_RE = /^[a-z][a-z0-9_]{0,63}$/
/** Consecutive failed handshakes after which connect() gives up (see waitHandshake). */
const HANDSHAKE_FAILURES = 3
/** Ops answered on the sidecar's socket thread: nothing runs to cancel. */
const UNCANCELLABLE = new Set(['ping', 'echo', 'cancel', 'shutdown'])
const CANCEL_TIMEOUT_MS = 5_000

export class BridgeClient {
  private readonly sock: Dealer
  private readonly log: LogFn
  private readonly defaultTimeoutMs: number
  private readonly pending = new Map<number, Pending>()
  private readonly handlers = new Map<string, RequestHandler>()
  private readonly listeners = new Map<string, Set<EventListener>>()
  private readonly handlerAborts = new Set<AbortController>()
  private sendChain: Promise<void> = Promise.resolve()
  private lastId = 0
  private failure: BridgeError | undefined
  private connected = false
  private loopDone: Promise<void> = Promise.resolve()
  private closePromise: Promise<void> | undefined
  // heartbeat
  private heartbeatTimer: NodeJS.Timeout | undefined
  private pingInFlight = false
  private missed = 0
  private healthyValue = true

  constructor(private readonly options: ClientOptions) {
    this.log = options.log ?? defaultLog
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS
    checkTimeout(this.defaultTimeoutMs)
    this.sock = new Dealer({
      linger: 0, // close() and process exit never wait for unsent messages
      sendHighWaterMark: 0, // never block or drop: requests have their own deadlines
      receiveHighWaterMark: 0,
      ...(options.curve === undefined
        ? {}
        : { curveServerKey: options.curve.serverKey, curvePublicKey: options.curve.publicKey, curveSecretKey: options.curve.secretKey }),
    })
  }

  /** False after the heartbeat declared the sidecar hung, until it answers again. */
  get healthy(): boolean {
    return this.healthyValue
  }

  get pendingCount(): number {
    return this.pending.size
  }

  /**
   * Connect, run the `hello` handshake, start the heartbeat. Rejects with ProtocolMismatchError when the
   * sidecar speaks another protocol version.
   */
  async connect(clientName = 'dataflex-ts', helloTimeoutMs = 60_000): Promise<HelloResult> {
    if (this.connected) throw new Error('connect() called twice')
    this.connected = true
    const handshake = this.options.connectTimeoutMs === undefined ? undefined : this.waitHandshake(this.options.connectTimeoutMs)
    this.sock.connect(this.options.endpoint)
    this.loopDone = this.receiveLoop()
    await handshake
    let raw: Body
    try {
      raw = await this.request('hello', { protocol: PROTOCOL_VERSION, client: clientName }, { timeoutMs: helloTimeoutMs })
    } catch (err) {
      if (err instanceof RemoteError && err.code === 'protocol_mismatch') {
        throw new ProtocolMismatchError(PROTOCOL_VERSION, undefined, { cause: err })
      }
      throw err
    }
    if (raw.protocol !== PROTOCOL_VERSION) {
      throw new ProtocolMismatchError(PROTOCOL_VERSION, typeof raw.protocol === 'number' ? raw.protocol : undefined)
    }
    const hello = HelloResult.safeParse(raw)
    if (!hello.success) {
      throw new WireFormatError('bad_result', `malformed hello reply: ${hello.error.message}`, { cause: hello.error })
    }
    this.startHeartbeat()
    return hello.data
  }

  /** Resolves once the ZMTP handshake (CURVE included) succeeds; rejects on an auth failure or after `timeoutMs`. */
  private waitHandshake(timeoutMs: number): Promise<void> {
    const endpoint = this.options.endpoint
    const events = this.sock.events
    return new Promise<void>((resolve, reject) => {
      const ok = (): void => end()
      const authFailed = (): void =>
        end(new ConnectError(`authentication failed at ${endpoint}: the server does not accept this client's key (is client.public in its authorized_clients?)`))
      const protocolFailed = (e: { error: Error }): void => {
        const hint = this.options.curve === undefined ? 'the server expects CURVE keys (pass --keys <dir>)' : 'does the server use --keys?'
        end(new ConnectError(`security handshake with ${endpoint} failed: ${e.error.message}; ${hint}`))
      }
      // A CURVE server that cannot read our greeting (we hold the wrong server.public, or no keys) may just drop
      // the connection; libzmq retries forever. A few such failures in a row are that, not a network blip.
      let otherFailures = 0
      const otherFailed = (e: { error: Error }): void => {
        if (++otherFailures < HANDSHAKE_FAILURES) return
        const hint =
          this.options.curve === undefined
            ? ': the server expects CURVE keys (pass --keys <dir>)'
            : ': wrong server key (server.public), or the server does not use --keys'
        end(new ConnectError(`the security handshake with ${endpoint} failed ${otherFailures} times (${e.error.message})${hint}`))
      }
      const timer = setTimeout(() => {
        end(new ConnectError(`no connection to ${endpoint} within ${timeoutMs} ms: the server is unreachable (is \`dataflex serve\` running there?)`))
      }, timeoutMs)
      // Listeners are detached, not the observer closed: closing it right before the socket makes zeromq.js throw
      // ENOTSOCK from its event loop. The observer ends with the socket.
      const end = (err?: ConnectError): void => {
        clearTimeout(timer)
        events.off('handshake', ok)
        events.off('handshake:error:auth', authFailed)
        events.off('handshake:error:protocol', protocolFailed)
        events.off('handshake:error:other', otherFailed)
        if (err === undefined) resolve()
        else reject(err)
      }
      events.on('handshake', ok)
      events.on('handshake:error:auth', authFailed)
      events.on('handshake:error:protocol', protocolFailed)
      events.on('handshake:error:other', otherFailed)
    })
  }

  /** Call `op` on the sidecar. Typed arrays anywhere in `args` travel as raw frames. */
  request<T = Body>(op: string, args: Body = {}, opts: RequestOptions<T> = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs
    return this.requestFrames(
      op,
      (id) =>
        encodeMessage({ v: PROTOCOL_VERSION, kind: 'req', id, op, args, deadline_ms: Date.now() + timeoutMs }),
      { ...opts, timeoutMs },
    )
  }

  /**
   * Low level: send frames built by `build(id)` as request `id` and await the reply like `request`.
   * For protocol tests (malformed headers) and custom encodings; `op` only names the call in errors.
   */
  requestFrames<T = Body>(op: string, build: (id: number) => Buffer[], opts: RequestOptions<T> = {}): Promise<T> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (!this.connected) return Promise.reject(new Error('request() before connect()'))
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs
    let frames: Buffer[]
    const id = this.nextId()
    try {
      checkTimeout(timeoutMs)
      frames = build(id)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return
        reject(new RequestTimeoutError(op, timeoutMs))
        // Tell the sidecar to stop the op at its next safe point instead of leaving it running (it also stops
        // by itself once the deadline it was sent passes; this covers clocks that disagree).
        if (!UNCANCELLABLE.has(op)) this.request('cancel', { id }, { timeoutMs: CANCEL_TIMEOUT_MS }).catch(() => undefined)
      }, timeoutMs)
      const schema = opts.result
      this.pending.set(id, {
        op,
        timer,
        reject,
        resolve: (result) => {
          if (schema === undefined) return resolve(result as T)
          const parsed = schema.safeParse(result)
          if (parsed.success) resolve(parsed.data)
          else reject(new WireFormatError('bad_result', `${op}: unexpected result: ${parsed.error.message}`, { cause: parsed.error }))
        },
      })
      this.send(frames, (err) => this.settle(id)?.reject(new SendError(op, err)))
    })
  }

  /** Answer requests for `op` from the sidecar. Returns a function that unregisters it. */
  handle(op: string, fn: RequestHandler): () => void {
    if (this.handlers.has(op)) throw new Error(`a handler for '${op}' is already registered`)
    this.handlers.set(op, fn)
    return () => {
      if (this.handlers.get(op) === fn) this.handlers.delete(op)
    }
  }

  /** Listen to sidecar events named `event`. Returns a function that unsubscribes. */
  on(event: string, fn: EventListener): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) this.listeners.set(event, (set = new Set()))
    set.add(fn)
    return () => set.delete(fn)
  }

  /** Reject every pending request with `err` now, and every later one (the sidecar is gone). */
  fail(err: BridgeError): void {
    this.failure ??= err
    this.stopHeartbeat()
    this.rejectAll(err)
    for (const c of this.handlerAborts) c.abort(err)
  }

  /** Reject what is pending with BridgeClosedError and close the socket. Idempotent. */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.fail(new BridgeClosedError())
      this.sock.close()
      await this.loopDone
    })()
    return this.closePromise
  }

  // ------------------------------------------------------------------------------------------- internals

  private nextId(): number {
    do {
      this.lastId = this.lastId >= MAX_ID ? 1 : this.lastId + 1
    } while (this.pending.has(this.lastId))
    return this.lastId
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id)
    if (p === undefined) return undefined
    this.pending.delete(id)
    clearTimeout(p.timer)
    return p
  }

  private rejectAll(err: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(err)
  }

  private send(frames: Buffer[], onError?: (err: unknown) => void): void {
    this.sendChain = this.sendChain
      .then(() => this.sock.send(frames))
      .catch((err: unknown) => {
        if (onError !== undefined) onError(err)
        else if (!this.sock.closed) this.warn(`send failed: ${String(err)}`)
      })
  }

  private warn(message: string): void {
    this.log({ level: 'warn', source: 'bridge', message })
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.sock) {
        try {
          this.onMessage(frames)
        } catch (err) {
          // A bug in dispatch must not stop the loop (every later reply would be lost).
          this.log({ level: 'error', source: 'bridge', message: `dispatch failed: ${String(err)}` })
        }
      }
    } catch (err) {
      if (!this.sock.closed) this.log({ level: 'error', source: 'bridge', message: `receive loop ended: ${String(err)}` })
    }
  }

  private onMessage(frames: Buffer[]): void {
    const [head, ...payloads] = frames
    if (head === undefined) return
    let raw: unknown
    try {
      raw = unpackHeader(head)
    } catch (err) {
      this.warn(`ignored a message from the sidecar: ${(err as Error).message}`)
      return
    }
    const peek = peekHeader(raw)
    if (peek.v !== PROTOCOL_VERSION) {
      const reason = `message has protocol version ${peek.v ?? 'none'}, expected ${PROTOCOL_VERSION}`
      const p = peek.kind === 'res' && peek.id !== undefined ? this.settle(peek.id) : undefined
      if (p !== undefined) {
        p.reject(new ProtocolMismatchError(PROTOCOL_VERSION, peek.v, { cause: remoteErrorOf(raw, p.op) }))
      } else if (peek.kind === 'req' && peek.id !== undefined) {
        this.replyError(peek.id, 'protocol_mismatch', reason)
      } else {
        this.warn(`ignored a message from the sidecar: ${reason}`)
      }
      return
    }
    const parsed = parseHeader(raw)
    if (!parsed.ok) {
      if (peek.kind === 'res' && peek.id !== undefined && this.pending.has(peek.id)) {
        this.settle(peek.id)?.reject(new WireFormatError('bad_header', `malformed reply: ${parsed.reason}`))
      } else if (peek.kind === 'req' && peek.id !== undefined) {
        this.replyError(peek.id, 'bad_header', parsed.reason)
      } else {
        this.warn(`ignored a malformed message from the sidecar: ${parsed.reason}`)
      }
      return
    }
    const h = parsed.header
    if (h.kind === 'res') this.onReply(h, payloads)
    else if (h.kind === 'req') this.onRequest(h, payloads)
    else this.onEvent(h, payloads)
  }

  private onReply(h: ReplyHeader, payloads: Buffer[]): void {
    const p = this.settle(h.id)
    if (p === undefined) {
      if (h.id === 0 && !h.ok) {
        // The sidecar could not read the id of something we sent; it still tells us what was wrong.
        this.warn(`the sidecar rejected a message: ${h.error.code}: ${h.error.message}`)
      } else {
        this.log({ level: 'debug', source: 'bridge', message: `late reply for request ${h.id} ignored` })
      }
      return
    }
    if (!h.ok) {
      if (payloads.length > 0) this.log({ level: 'debug', source: 'bridge', message: 'array frames on an error reply ignored' })
      p.reject(new RemoteError(p.op, h.error))
      return
    }
    let result: Body
    try {
      result = resolveArrays(h.result, payloads) as Body
    } catch (err) {
      p.reject(err as Error)
      return
    }
    p.resolve(result)
  }

  private onEvent(h: EventHeader, payloads: Buffer[]): void {
    const set = this.listeners.get(h.event)
    let data: Body
    try {
      data = resolveArrays(h.data, payloads) as Body
    } catch (err) {
      this.warn(`ignored event '${h.event}': ${(err as Error).message}`)
      return
    }
    if (set === undefined || set.size === 0) {
      this.log({ level: 'debug', source: 'bridge', message: `event '${h.event}' has no listener` })
      return
    }
    for (const fn of set) {
      try {
        fn(data, h.event)
      } catch (err) {
        this.warn(`listener for event '${h.event}' threw: ${String(err)}`)
      }
    }
  }

  private onRequest(h: RequestHeader, payloads: Buffer[]): void {
    const handler = this.handlers.get(h.op)
    if (handler === undefined) {
      const known = [...this.handlers.keys()].sort().join(', ') || 'none'
      this.replyError(h.id, 'unknown_op', `no TypeScript handler for op '${h.op}' (registered: ${known})`)
      return
    }
    if (h.deadline_ms !== undefined && Date.now() > h.deadline_ms) {
      this.replyError(h.id, 'deadline', `op '${h.op}' arrived after its deadline`)
      return
    }
    let args: Body
    try {
      args = resolveArrays(h.args, payloads) as Body
    } catch (err) {
      this.replyError(h.id, 'bad_array', (err as Error).message)
      return
    }
    const abort = new AbortController()
    this.handlerAborts.add(abort)
    let deadlineTimer: NodeJS.Timeout | undefined
    if (h.deadline_ms !== undefined) {
      deadlineTimer = setTimeout(() => abort.abort(new RequestTimeoutError(h.op, h.deadline_ms ?? 0)), Math.max(0, h.deadline_ms - Date.now()))
      deadlineTimer.unref()
    }
    const ctx: HandlerContext = { id: h.id, op: h.op, deadlineMs: h.deadline_ms, signal: abort.signal }
    const finish = (): void => {
      clearTimeout(deadlineTimer)
      this.handlerAborts.delete(abort)
    }
    Promise.resolve()
      .then(() => handler(args, ctx))
      .then(
        (result) => {
          finish()
          let frames: Buffer[]
          try {
            frames = encodeMessage({ v: PROTOCOL_VERSION, kind: 'res', id: h.id, ok: true, result: result ?? {} })
          } catch (err) {
            this.replyError(h.id, 'op_failed', `cannot send the result of '${h.op}': ${(err as Error).message}`)
            return
          }
          this.send(frames)
        },
        (err: unknown) => {
          finish()
          const code = (err as { code?: unknown } | null)?.code
          const e = err instanceof Error ? err : new Error(String(err))
          this.replyError(
            h.id,
            typeof code === 'string' && ERROR_CODE_RE.test(code) ? code : 'op_failed',
            e.message || e.name,
            e.stack,
          )
        },
      )
  }

  private replyError(id: number, code: string, message: string, detail?: string): void {
    if (this.sock.closed) return
    const error = detail === undefined ? { code, message } : { code, message, detail }
    this.send(encodeMessage({ v: PROTOCOL_VERSION, kind: 'res', id, ok: false, error }))
  }

  // ------------------------------------------------------------------------------------------- heartbeat

  private startHeartbeat(): void {
    const hb = this.options.heartbeat
    if (hb === false || this.failure !== undefined) return
    const intervalMs = hb?.intervalMs ?? 2_000
    const maxMisses = hb?.maxMisses ?? 5
    this.heartbeatTimer = setInterval(() => this.beat(intervalMs, maxMisses), intervalMs)
    this.heartbeatTimer.unref() // the heartbeat alone must not keep the process alive
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = undefined
  }

  private beat(intervalMs: number, maxMisses: number): void {
    if (this.pingInFlight) {
      // Let pending I/O run first (setImmediate follows the poll phase), so a reply that is already
      // here but not yet read, because this process was busy, does not count as a miss.
      setImmediate(() => {
        if (!this.pingInFlight || this.heartbeatTimer === undefined) return
        this.missed++
        if (this.missed >= maxMisses && this.healthyValue) {
          this.healthyValue = false
          const err = new SidecarHungError(this.missed, intervalMs)
          this.warn(err.message)
          this.rejectAll(err)
          this.options.onHealthChange?.(false)
        }
      })
      return
    }
    this.pingInFlight = true
    this.request('ping', {}, { timeoutMs: intervalMs * (maxMisses + 1), result: PingResult }).then(
      () => {
        this.pingInFlight = false
        this.missed = 0
        if (!this.healthyValue) {
          this.healthyValue = true
          this.log({ level: 'info', source: 'bridge', message: 'the sidecar answers again' })
          this.options.onHealthChange?.(true)
        }
      },
      () => {
        this.pingInFlight = false // counted by the ticks that saw it in flight
      },
    )
  }
}

function checkTimeout(ms: number): void {
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMER_MS) {
    throw new RangeError(`timeoutMs must be a positive number of milliseconds up to ${MAX_TIMER_MS}, got ${ms}`)
  }
}

/** The error a reply of another protocol version carries, if it looks like one (for `cause`). */
function remoteErrorOf(raw: unknown, op: string): RemoteError | undefined {
  const e = (raw as { error?: { code?: unknown; message?: unknown } }).error
  if (typeof e?.code === 'string' && typeof e.message === 'string') {
    return new RemoteError(op, { code: e.code, message: e.message })
  }
  return undefined
}
