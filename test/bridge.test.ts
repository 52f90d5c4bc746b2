/**
 * Bridge tests against a real Python sidecar (no mocks). Needs DATAFLEX_PYTHON or <repo>/.venv.
 * The sidecar runs with --test-ops (echo_worker, call_back, emit, fail, exit, sink, source) and
 * --no-executor (the training ops are not needed here and would slow every start).
 */
import { spawn } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { Packr } from 'msgpackr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Bridge,
  BridgeClosedError,
  type BridgeOptions,
  type LogEntry,
  NdArray,
  PROTOCOL_VERSION,
  ProtocolMismatchError,
  RemoteError,
  RequestTimeoutError,
  Sidecar,
  SidecarExitedError,
  SidecarHungError,
  SidecarStartError,
  WireFormatError,
  type WireArray,
  encodeMessage,
  startBridge,
} from '../src/bridge/index.ts'

const TEST_ARGS = ['--test-ops', '--no-executor']
const packr = new Packr({ useRecords: false })

function start(opts: BridgeOptions = {}): Promise<Bridge> {
  return startBridge({ ...opts, args: [...TEST_ARGS, ...(opts.args ?? [])] })
}

function capture(): { logs: LogEntry[]; log: (e: LogEntry) => void } {
  const logs: LogEntry[] = []
  return { logs, log: (e) => logs.push(e) }
}

/** 'gone' once the process no longer exists (a zombie counts as not running, but is reported). */
function procState(pid: number): 'gone' | 'zombie' | 'running' {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return /^State:\s+Z/m.test(status) ? 'zombie' : 'running'
  } catch {
    return 'gone'
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function waitBusy(bridge: Bridge, op: string | null): Promise<void> {
  await waitFor(async () => (await bridge.request<{ busy: string | null }>('ping')).busy === op, 10_000, `busy=${op}`)
}

function bytes(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
}

function expectBitExact(got: unknown, want: WireArray): void {
  expect(got).toBeInstanceOf(want.constructor)
  const g = got as WireArray
  expect(g.length).toBe(want.length)
  expect(bytes(g).equals(bytes(want))).toBe(true)
}

type Ctor = { new (n: number): WireArray; BYTES_PER_ELEMENT: number }
const CTORS: ReadonlyArray<[string, Ctor]> = [
  ['float32', Float32Array],
  ['float64', Float64Array],
  ['int32', Int32Array],
  ['int64', BigInt64Array],
  ['uint8', Uint8Array],
]
const FOUR_MIB = 4 * 1024 * 1024

/** Random bits (so floats include NaN payloads, infinities, denormals) plus explicit special values. */
function randomArray(ctor: Ctor, n: number): WireArray {
  const a = new ctor(n)
  randomFillSync(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
  if (a instanceof Float32Array) {
    const special = [NaN, -0, Infinity, -Infinity, 1.4e-45, 1e-40, -1e-39, 3.4028234663852886e38]
    a.set(special.slice(0, n))
    if (n > 12) new Uint32Array(a.buffer, a.byteOffset, n).set([0x7fc00001, 0xffc12345, 0x7f800001, 0x00000001], 8)
  } else if (a instanceof Float64Array) {
    a.set([NaN, -0, Infinity, -Infinity, 5e-324, 2.2250738585072e-309].slice(0, n))
  }
  return a
}

// ---------------------------------------------------------------------------------------------------

describe('bridge: one shared sidecar', () => {
  let bridge: Bridge
  const { logs, log } = capture()

  beforeAll(async () => {
    bridge = await start({ log })
  })
  afterAll(async () => {
    await bridge?.close()
  })

  it('handshakes: protocol, versions, device, world size, ops', () => {
    const info = bridge.info
    expect(info.protocol).toBe(PROTOCOL_VERSION)
    expect(info.pid).toBe(bridge.sidecar.pid)
    expect(info.versions.python).toMatch(/^3\.\d+/)
    expect(info.versions.bridge).toMatch(/^\d+\.\d+/)
    expect(typeof info.device).toBe('string')
    expect(info.device.length).toBeGreaterThan(0)
    expect(info.world_size).toBeGreaterThanOrEqual(1)
    expect(info.ops).toEqual(expect.arrayContaining(['hello', 'ping', 'echo', 'sleep', 'shutdown', 'call_back']))
    expect(info.executor.status).toBe('disabled')
    expect(bridge.sidecar.state).toBe('ready')
  })

  for (const [name, ctor] of CTORS) {
    it(`round-trips ${name} bit-exactly: empty, 1 element, 4 MiB`, async () => {
      const arrays = { empty: new ctor(0), one: randomArray(ctor, 1), big: randomArray(ctor, FOUR_MIB / ctor.BYTES_PER_ELEMENT) }
      const back = await bridge.request('echo', arrays)
      expectBitExact(back.empty, arrays.empty)
      expectBitExact(back.one, arrays.one)
      expectBitExact(back.big, arrays.big)
    })
  }

  it('round-trips arrays through the worker thread too', async () => {
    const a = randomArray(Float32Array, 100_000)
    const back = await bridge.request('echo_worker', { a, nested: { list: [a, 1] } })
    expectBitExact(back.a, a)
    expectBitExact((back.nested as { list: unknown[] }).list[0], a)
  })

  it('keeps the shape of multi-dimensional arrays (NdArray)', async () => {
    const m = new NdArray(Float64Array.from({ length: 12 }, (_, i) => i / 3), [3, 4])
    const t = new NdArray(Int32Array.from({ length: 24 }, (_, i) => i - 12), [2, 3, 4])
    const scalar = new NdArray(new Float32Array([2.5]), [])
    const empty2d = new NdArray(new Int32Array(0), [0, 5])
    const back = await bridge.request('echo', { m, t, scalar, empty2d })
    for (const [got, want] of [
      [back.m, m],
      [back.t, t],
      [back.scalar, scalar],
      [back.empty2d, empty2d],
    ] as const) {
      expect(got).toBeInstanceOf(NdArray)
      expect((got as NdArray).shape).toEqual(want.shape)
      expectBitExact((got as NdArray).data, want.data)
    }
  })

  it('round-trips plain values: nested maps, lists, big integers, unicode, NaN', async () => {
    const args = {
      s: 'héllo ✓ 中文',
      n: [0, -1, 1.5, 2 ** 31, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER, NaN, Infinity],
      big: 2n ** 62n,
      flags: [true, false, null],
      deep: { a: { b: { c: [1, [2, [3]]] } } },
      gone: undefined,
    }
    const back = await bridge.request('echo', args)
    const { gone: _gone, ...expected } = args
    expect(back).toEqual(expected)
    expect('gone' in back).toBe(false)
  })

  it('refuses to encode what the wire does not carry, before sending', async () => {
    await expect(bridge.request('echo', { x: new Int16Array(3) })).rejects.toBeInstanceOf(WireFormatError)
    await expect(bridge.request('echo', { d: new Date() })).rejects.toMatchObject({ code: 'encode' })
    await expect(bridge.request('echo', { $nd: 1 })).rejects.toMatchObject({ code: 'encode' })
    expect(() => new NdArray(new Float32Array(5), [2, 3])).toThrow(WireFormatError)
  })

  describe('malformed requests get error replies and the sidecar keeps answering', () => {
    const raw = (header: Record<string, unknown>, ...frames: Buffer[]) => (id: number) => [
      packr.pack({ v: PROTOCOL_VERSION, kind: 'req', id, op: 'echo', args: {}, ...header }),
      ...frames,
    ]
    const cases: ReadonlyArray<[string, (id: number) => Buffer[], string]> = [
      ['op is not a string', raw({ op: 42 }), 'bad_header'],
      ['args is not a map', raw({ args: [1, 2] }), 'bad_header'],
      ['kind is unknown', raw({ kind: 'request' }), 'bad_header'],
      ['deadline_ms is negative', raw({ deadline_ms: -5 }), 'bad_header'],
      ['another protocol version', raw({ v: PROTOCOL_VERSION + 1 }), 'protocol_mismatch'],
      ['unknown op', raw({ op: 'no_such_op' }), 'unknown_op'],
      ['unknown dtype', raw({ args: { x: { $nd: 0, dtype: 'float16', shape: [2] } } }, Buffer.alloc(4)), 'bad_array'],
      ['frame size mismatch', raw({ args: { x: { $nd: 0, dtype: 'float32', shape: [3] } } }, Buffer.alloc(8)), 'bad_array'],
      ['missing frame', raw({ args: { x: { $nd: 1, dtype: 'uint8', shape: [1] } } }, Buffer.alloc(1)), 'bad_array'],
      ['reference but no frames', raw({ args: { x: { $nd: 0, dtype: 'uint8', shape: [1] } } }), 'bad_array'],
      ['unreferenced frame', raw({ args: {} }, Buffer.alloc(16)), 'bad_array'],
      ['extra key in array ref', raw({ args: { x: { $nd: 0, dtype: 'uint8', shape: [1], y: 1 } } }, Buffer.alloc(1)), 'bad_array'],
      ['negative shape', raw({ args: { x: { $nd: 0, dtype: 'uint8', shape: [-1] } } }, Buffer.alloc(1)), 'bad_array'],
      ['deadline already passed', (id) => raw({ deadline_ms: Date.now() - 1_000 })(id), 'deadline'],
    ]
    for (const [what, build, code] of cases) {
      it(`${what} → ${code}`, async () => {
        const err = await bridge.requestFrames(what, build, { timeoutMs: 10_000 }).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(RemoteError)
        expect(err).toMatchObject({ code })
        expect((err as RemoteError).message.length).toBeGreaterThan(10)
        expect(await bridge.request('ping')).toEqual({ busy: null })
      })
    }

    it('a header that is not msgpack is answered with an id-0 error (logged), then business as usual', async () => {
      const before = logs.length
      const p = bridge.requestFrames('garbage', () => [Buffer.from([0xc1, 0xc1])], { timeoutMs: 1_500 })
      await expect(p).rejects.toBeInstanceOf(RequestTimeoutError) // no id to answer: it times out here
      const warned = logs.slice(before).some((e) => e.level === 'warn' && /bad_header/.test(e.message))
      expect(warned).toBe(true)
      expect(await bridge.request('echo', { ok: 1 })).toEqual({ ok: 1 })
    })
  })

  it('turns handler exceptions into error replies with the code and a traceback', async () => {
    const e1 = await bridge.request('fail', { message: 'boom' }).catch((e: unknown) => e)
    expect(e1).toBeInstanceOf(RemoteError)
    expect(e1).toMatchObject({ code: 'op_failed', op: 'fail' })
    expect((e1 as RemoteError).message).toContain('boom')
    expect((e1 as RemoteError).detail).toContain('Traceback')
    expect((e1 as RemoteError).detail).toContain('ValueError')
    await expect(bridge.request('fail', { code: 'config_error', message: 'bad key' })).rejects.toMatchObject({
      code: 'config_error',
    })
    // sys.exit inside an op (argument parsers do that) must not end the sidecar
    await expect(bridge.request('fail', { exit: 2 })).rejects.toMatchObject({ code: 'op_failed' })
    expect(await bridge.request('ping')).toEqual({ busy: null })
  })

  it('runs one heavy op at a time: a second one is busy, ping and echo still answer', async () => {
    const slow = bridge.request('sleep', { seconds: 1.5 })
    await waitBusy(bridge, 'sleep')
    await expect(bridge.request('sleep', { seconds: 0 })).rejects.toMatchObject({ code: 'busy' })
    expect(await bridge.request('echo', { during: true })).toEqual({ during: true })
    await expect(slow).resolves.toEqual({})
    expect(await bridge.request('ping')).toEqual({ busy: null })
  })

  it('rejects a request that outlives its deadline with RequestTimeoutError', async () => {
    const t0 = Date.now()
    const err = await bridge.request('sleep', { seconds: 3 }, { timeoutMs: 300 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RequestTimeoutError)
    expect(err).toMatchObject({ code: 'timeout', op: 'sleep', timeoutMs: 300 })
    expect(Date.now() - t0).toBeLessThan(2_500) // well before the sleep could have answered
    await waitBusy(bridge, null) // the late reply is dropped quietly
  })

  it('validates results with a zod schema when asked', async () => {
    const { z } = await import('zod')
    const ok = await bridge.request('echo', { n: 3 }, { result: z.object({ n: z.number() }) })
    expect(ok.n).toBe(3)
    await expect(bridge.request('echo', { n: 'x' }, { result: z.object({ n: z.number() }) })).rejects.toMatchObject({
      code: 'bad_result',
    })
  })

  describe('calls from Python into TypeScript handlers', () => {
    it('answers with values and arrays', async () => {
      const offAdd = bridge.handle('add', ({ a, b }) => ({ sum: (a as number) + (b as number) }))
      const offScale = bridge.handle('scale', async ({ x }) => {
        await new Promise((r) => setTimeout(r, 5))
        return { y: (x as Float32Array).map((v) => v * 2) }
      })
      try {
        expect(await bridge.request('call_back', { op: 'add', args: { a: 2, b: 3 } })).toEqual({ answer: { sum: 5 } })
        const x = Float32Array.from({ length: 10_000 }, (_, i) => i)
        const { answer } = await bridge.request<{ answer: { y: Float32Array } }>('call_back', { op: 'scale', args: { x } })
        expect(answer.y).toBeInstanceOf(Float32Array)
        expect(answer.y[9_999]).toBe(19_998)
      } finally {
        offAdd()
        offScale()
      }
    })

    it('a TS handler can call back into Python while Python waits on it', async () => {
      const off = bridge.handle('nested', async ({ v }) => bridge.request('echo', { v: (v as number) + 1 }))
      try {
        expect(await bridge.request('call_back', { op: 'nested', args: { v: 41 } })).toEqual({ answer: { v: 42 } })
      } finally {
        off()
      }
    })

    it('a TS handler error reaches Python as an error reply, with its code', async () => {
      const off = bridge.handle('explode', () => {
        throw Object.assign(new Error('no such strategy: lss'), { code: 'config_error' })
      })
      try {
        const err = await bridge.request('call_back', { op: 'explode' }).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(RemoteError)
        expect(err).toMatchObject({ code: 'config_error' })
        expect((err as RemoteError).message).toContain('no such strategy: lss')
      } finally {
        off()
      }
    })

    it('an op without a TS handler is unknown_op in Python', async () => {
      await expect(bridge.request('call_back', { op: 'not_registered' })).rejects.toMatchObject({ code: 'unknown_op' })
    })

    it('Python stops waiting at its timeout; the TS handler sees the abort signal', async () => {
      let aborted = false
      const off = bridge.handle('slow', async (_args, ctx) => {
        expect(ctx.deadlineMs).toBeGreaterThan(Date.now() - 1_000)
        await new Promise((r) => setTimeout(r, 1_200))
        aborted = ctx.signal.aborted
        return {}
      })
      try {
        await expect(bridge.request('call_back', { op: 'slow', timeout_s: 0.3 })).rejects.toMatchObject({ code: 'deadline' })
        await waitFor(() => aborted, 5_000, 'the handler to see its abort signal')
      } finally {
        off()
      }
    })
  })

  it('delivers events in order, with arrays, before the reply', async () => {
    const seen: Array<{ i: number; array: Float64Array }> = []
    const off = bridge.on('progress', (data) => seen.push(data as { i: number; array: Float64Array }))
    try {
      const array = Float64Array.from([1.5, -2, 3])
      const result = await bridge.request('emit', { event: 'progress', count: 5, array })
      expect(result).toEqual({ count: 5 })
      expect(seen.map((d) => d.i)).toEqual([0, 1, 2, 3, 4])
      expectBitExact(seen[4]?.array, array)
    } finally {
      off()
    }
  })
})

// ---------------------------------------------------------------------------------------------------

describe('bridge: frame size limit', () => {
  let bridge: Bridge
  beforeAll(async () => {
    bridge = await start({ maxFrameBytes: 4096, log: () => {} })
  })
  afterAll(async () => {
    await bridge?.close()
  })

  it('answers an oversized incoming frame with frame_too_large and keeps going', async () => {
    expect(bridge.info.max_frame_bytes).toBe(4096)
    await expect(bridge.request('echo', { x: new Float32Array(2048) })).rejects.toMatchObject({ code: 'frame_too_large' })
    const small = await bridge.request('echo', { x: new Float32Array(1024) })
    expect((small.x as Float32Array).length).toBe(1024)
  })

  it('refuses to send an oversized result frame', async () => {
    await expect(bridge.request('source', { n: 2048 })).rejects.toMatchObject({ code: 'frame_too_large' })
    expect(await bridge.request('ping')).toEqual({ busy: null })
  })
})

// ---------------------------------------------------------------------------------------------------

describe('bridge: supervision', () => {
  it('fails fast with SidecarStartError for a missing Python', async () => {
    const t0 = Date.now()
    const err = await start({ python: '/nonexistent/python3' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SidecarStartError)
    expect((err as Error).message).toContain('/nonexistent/python3')
    expect(Date.now() - t0).toBeLessThan(5_000)
  })

  it('fails fast with the stderr tail when the sidecar dies before READY', async () => {
    const err = await start({ args: ['--no-such-flag'] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SidecarStartError)
    expect(err).toMatchObject({ exitCode: 2 })
    expect((err as SidecarStartError).stderrTail).toContain('unrecognized arguments')
  })

  it('gives up on a sidecar that is not READY in time, and kills it', async () => {
    const s = new Sidecar({ args: TEST_ARGS, readyTimeoutMs: 30, log: () => {} })
    await expect(s.start()).rejects.toThrow(/no READY line within 30 ms/)
    const exit = await s.exited
    expect(exit.signal).toBe('SIGKILL')
    expect(s.state).toBe('exited')
  })

  it('rejects a pending request within 5 s when the sidecar is SIGKILLed, and leaves no process', async () => {
    const bridge = await start({ log: () => {} })
    const pid = bridge.pid
    const sleeping = bridge.request('sleep', { seconds: 30 }, { timeoutMs: 60_000 })
    await waitBusy(bridge, 'sleep')
    const t0 = Date.now()
    process.kill(pid, 'SIGKILL')
    const err = await sleeping.catch((e: unknown) => e)
    const elapsed = Date.now() - t0
    expect(err).toBeInstanceOf(SidecarExitedError)
    expect(err).toMatchObject({ code: 'sidecar_exited', signal: 'SIGKILL', exitCode: null })
    expect(elapsed).toBeLessThan(5_000)
    await waitFor(() => procState(pid) === 'gone', 5_000, `pid ${pid} to disappear`)
    expect(existsSync(dirname((bridge.sidecar.endpoint ?? '').replace(/^ipc:\/\//, '')))).toBe(false)
    // later requests fail at once, and close() still resolves
    await expect(bridge.request('ping')).rejects.toBeInstanceOf(SidecarExitedError)
    expect((await bridge.close()).escalation).toBe('none')
  })

  it('reports a crash with its exit code and stderr tail', async () => {
    const bridge = await start({ log: () => {} })
    const err = await bridge.request('exit', { code: 3 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SidecarExitedError)
    expect(err).toMatchObject({ exitCode: 3, signal: null })
    expect((err as SidecarExitedError).stderrTail).toContain('exiting with code 3')
    await bridge.close()
    await waitFor(() => procState(bridge.pid) === 'gone', 5_000, 'the crashed sidecar to be reaped')
  })

  it('detects a hung (SIGSTOPped) sidecar by heartbeat and by deadline, and sees it recover', async () => {
    const health: boolean[] = []
    const bridge = await start({
      heartbeat: { intervalMs: 200, maxMisses: 3 },
      onHealthChange: (h) => health.push(h),
      log: () => {},
    })
    const pid = bridge.pid
    try {
      process.kill(pid, 'SIGSTOP')
      const t0 = Date.now()
      const err = await bridge.request('echo', {}, { timeoutMs: 60_000 }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(SidecarHungError)
      expect((err as Error).message).toMatch(/stopped responding/)
      expect(Date.now() - t0).toBeLessThan(5_000)
      expect(bridge.healthy).toBe(false)
      expect(health).toEqual([false])

      await expect(bridge.request('echo', {}, { timeoutMs: 400 })).rejects.toBeInstanceOf(RequestTimeoutError)

      process.kill(pid, 'SIGCONT')
      await waitFor(() => bridge.healthy, 10_000, 'the heartbeat to see the sidecar again')
      expect(health).toEqual([false, true])
      expect(await bridge.request('echo', { back: 1 })).toEqual({ back: 1 })

      // stop() on a frozen sidecar: shutdown and SIGTERM go unanswered, SIGKILL ends it
      process.kill(pid, 'SIGSTOP')
      const stopped = await bridge.close({ graceMs: 300 })
      expect(stopped).toMatchObject({ escalation: 'sigkill', signal: 'SIGKILL' })
      await waitFor(() => procState(pid) === 'gone', 5_000, `pid ${pid} to disappear`)
    } finally {
      if (procState(pid) !== 'gone') process.kill(pid, 'SIGKILL')
    }
  })

  it('stop() while busy escalates past the shutdown op and leaves no process', async () => {
    const bridge = await start({ log: () => {} })
    const pid = bridge.pid
    const sleeping = bridge.request('sleep', { seconds: 60 }, { timeoutMs: 120_000 })
    await waitBusy(bridge, 'sleep')
    const t0 = Date.now()
    const stopped = await bridge.close({ graceMs: 500 })
    expect(stopped.escalation).toBe('sigterm')
    expect(Date.now() - t0).toBeLessThan(5_000)
    const err = await sleeping.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BridgeClosedError)
    expect((err as Error).cause).toBeInstanceOf(SidecarExitedError)
    await waitFor(() => procState(pid) === 'gone', 5_000, `pid ${pid} to disappear`)
    expect(bridge.sidecar.state).toBe('exited')
  })

  it('closes gracefully with the shutdown op (exit code 0); later requests get BridgeClosedError', async () => {
    const bridge = await start({ log: () => {} })
    const socketDir = dirname((bridge.sidecar.endpoint ?? '').replace(/^ipc:\/\//, ''))
    expect(existsSync(socketDir)).toBe(true)
    const stopped = await bridge.close()
    expect(stopped).toEqual({ escalation: 'shutdown', exitCode: 0, signal: null })
    expect(existsSync(socketDir)).toBe(false)
    expect(await bridge.close()).toBe(stopped) // idempotent
    await expect(bridge.request('ping')).rejects.toBeInstanceOf(BridgeClosedError)
    await waitFor(() => procState(bridge.pid) === 'gone', 5_000, 'the sidecar to be reaped')
  })

  it('refuses a sidecar that speaks another protocol version, naming both, and stops it', async () => {
    const { logs, log } = capture()
    const err = await start({ args: ['--test-protocol', String(PROTOCOL_VERSION + 1)], log }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ProtocolMismatchError)
    expect(err).toMatchObject({ ours: PROTOCOL_VERSION, theirs: PROTOCOL_VERSION + 1 })
    expect((err as Error).message).toContain(`speaks version ${PROTOCOL_VERSION},`)
    expect((err as Error).message).toContain(`speaks version ${PROTOCOL_VERSION + 1}`)
    const ready = logs.map((e) => /sidecar ready: pid (\d+)/.exec(e.message)).find((m) => m !== null)
    const pid = Number(ready?.[1])
    expect(pid).toBeGreaterThan(0)
    await waitFor(() => procState(pid) === 'gone', 5_000, `pid ${pid} to disappear`)
  })

  it('the sidecar exits when its Node parent is SIGKILLed (no orphan)', async () => {
    const script = [
      `const { startBridge } = await import(${JSON.stringify(new URL('../src/bridge/index.ts', import.meta.url).pathname)})`,
      `const b = await startBridge({ args: ${JSON.stringify(TEST_ARGS)}, heartbeat: false })`,
      `console.log('PID ' + b.pid + ' ' + b.sidecar.endpoint)`,
      `setInterval(() => {}, 1000)`,
    ].join('\n')
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    })
    try {
      const [pid, endpoint] = await new Promise<[number, string]>((resolve, reject) => {
        let out = ''
        parent.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          const m = /PID (\d+) (\S+)\n/.exec(out)
          if (m) resolve([Number(m[1]), m[2] as string])
        })
        parent.on('exit', (code) => reject(new Error(`parent exited early (${code}): ${out}`)))
      })
      expect(procState(pid)).toBe('running')
      const socketDir = dirname(endpoint.replace(/^ipc:\/\//, ''))
      expect(existsSync(socketDir)).toBe(true)
      parent.kill('SIGKILL')
      await waitFor(() => procState(pid) !== 'running', 10_000, `orphaned sidecar ${pid} to exit`)
      expect(existsSync(socketDir)).toBe(false) // the sidecar removed its private socket dir itself
    } finally {
      parent.kill('SIGKILL')
    }
  })
})

// Frame-level checks that need no sidecar.
describe('frames', () => {
  it('pulls arrays out of the header into raw frames and refuses the reserved key', () => {
    const frames = encodeMessage({ a: new Float32Array([1, 2]), b: [new Uint8Array(3)], c: 'x' })
    expect(frames).toHaveLength(3)
    expect(packr.unpack(frames[0] as Buffer)).toEqual({
      a: { $nd: 0, dtype: 'float32', shape: [2] },
      b: [{ $nd: 1, dtype: 'uint8', shape: [3] }],
      c: 'x',
    })
    expect(frames[1]?.byteLength).toBe(8)
  })
})
