/**
 * Faults (docs/reliability.md): a timed-out op is cancelled on the Python side; a sidecar that dies mid-run (SIGKILL,
 * an OOM-like exit 137, a Python exception) ends `dataflex train` with an error naming the op and the steps, exit 1,
 * within 5 s, with no process left and the last checkpoint intact; a SIGKILLed `dataflex train` takes its sidecar
 * with it. The crashes are injected by the executor's test-only DATAFLEX_TEST_FAULT (executor/fault.py).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, openSync, readFileSync, readSync, closeSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Bridge, PROTOCOL_VERSION, REPO_ROOT, RequestTimeoutError, encodeMessage, startBridge } from '../src/bridge/index.ts'
import { alive, childrenOf, cmdline, processesWith, waitFor } from './procs.ts'
import { tempDir, tinyConfig, writeConfig } from './support.ts'

describe('a timed-out op is cancelled on the sidecar', () => {
  let bridge: Bridge
  beforeAll(async () => {
    bridge = await startBridge({ args: ['--test-ops', '--no-executor'], heartbeat: false })
  })
  afterAll(async () => {
    await bridge.close()
  })

  const busy = async (): Promise<string | null> => (await bridge.request<{ busy: string | null }>('ping')).busy

  it('by the cancel op TypeScript sends when its deadline passes', async () => {
    // No deadline_ms in the header: only the cancel request can stop this sleep before its 30 s.
    const sleep = bridge.requestFrames('sleep', (id) => encodeMessage({ v: PROTOCOL_VERSION, kind: 'req', id, op: 'sleep', args: { seconds: 30 } }), {
      timeoutMs: 400,
    })
    await expect(sleep).rejects.toBeInstanceOf(RequestTimeoutError)
    const t0 = Date.now()
    await waitFor(async () => (await busy()) === null, 2_000, 'the sleep op to stop')
    expect(Date.now() - t0).toBeLessThan(2_000)
    await expect(bridge.request('sleep', { seconds: 0 })).resolves.toEqual({}) // the worker is free again
  })

  it('by its own deadline on the sidecar, even without the cancel op', async () => {
    await expect(bridge.request('sleep', { seconds: 30 }, { timeoutMs: 400 })).rejects.toBeInstanceOf(RequestTimeoutError)
    await waitFor(async () => (await busy()) === null, 2_000, 'the sleep op to stop')
  })
})

/** The sidecar's command line (not the helper runs of `-m dataflex_bridge.introspect`). */
const SIDECAR = /-m dataflex_bridge --/

interface Run {
  code: number | null
  stderr: string
  /** Every process the CLI started (children and theirs), seen while it ran. */
  descendants: Map<number, string>
  /** When a sidecar process was first seen gone, and when the CLI exited (Date.now()). */
  sidecarGoneAt: number | undefined
  exitedAt: number
  /** When checkpoint-2 was first seen complete (its trainer_state.json). */
  checkpointAt: number | undefined
}

/** Runs `dataflex train` on the tiny model (save every 2 steps), watching its process tree; `during` may act on it. */
async function train(dir: string, env: Record<string, string>, during?: (cli: ChildProcess, run: Run) => boolean): Promise<Run> {
  const out = join(dir, 'out')
  const cfg = writeConfig(dir, 'run.yaml', tinyConfig(out, { eval_strategy: 'no', save_steps: 2, max_samples: 16 }))
  const cli = spawn(process.execPath, ['bin/dataflex.mjs', 'train', cfg], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  const run: Run = { code: null, stderr: '', descendants: new Map(), sidecarGoneAt: undefined, exitedAt: 0, checkpointAt: undefined }
  cli.stdout.resume()
  cli.stderr.on('data', (d: Buffer) => (run.stderr += d.toString()))
  const exited = new Promise<void>((resolve) =>
    cli.on('exit', (code) => {
      run.code = code
      run.exitedAt = Date.now()
      resolve()
    }),
  )
  let done = false
  void exited.then(() => (done = true))
  let acted = false
  while (!done) {
    const stack = [cli.pid!]
    while (stack.length > 0) {
      for (const pid of childrenOf(stack.pop()!)) {
        // Read again while it lives: just after the fork, a child's command line is still its parent's.
        const cmd = cmdline(pid)
        if (cmd !== '') run.descendants.set(pid, cmd)
        stack.push(pid)
      }
    }
    const sidecars = [...run.descendants].filter(([, cmd]) => SIDECAR.test(cmd)).map(([pid]) => pid)
    if (run.sidecarGoneAt === undefined && sidecars.some((pid) => !alive(pid))) run.sidecarGoneAt = Date.now()
    if (run.checkpointAt === undefined && existsSync(join(out, 'checkpoint-2', 'trainer_state.json'))) run.checkpointAt = Date.now()
    if (!acted && during !== undefined) acted = during(cli, run)
    await new Promise((r) => setTimeout(r, 25))
  }
  await exited
  return run
}

/** The run's sidecar processes and every process still holding their endpoint (the private socket dir) are gone. */
async function expectNoOrphans(run: Run): Promise<void> {
  const sidecars = [...run.descendants].filter(([, cmd]) => SIDECAR.test(cmd))
  expect(sidecars.length).toBeGreaterThan(0)
  const endpoints = sidecars.map(([, cmd]) => /--endpoint (\S+)/.exec(cmd)?.[1]).filter((e): e is string => e !== undefined)
  expect(endpoints.length).toBe(sidecars.length)
  // Reaped at once by the CLI; a moment's grace for the kernel to drop the entries.
  await waitFor(() => [...run.descendants.keys()].every((pid) => !alive(pid)), 1_000, 'the run’s processes to be gone')
  for (const ep of endpoints) expect(processesWith(ep)).toEqual([])
}

/** checkpoint-2 is whole: every file of a LoRA checkpoint, its state at step 2, a safetensors file as long as it says. */
function expectCheckpointIntact(out: string, ranks = 1): void {
  const ckpt = join(out, 'checkpoint-2')
  const files = readdirSync(ckpt)
  const rng = ranks === 1 ? ['rng_state.pth'] : Array.from({ length: ranks }, (_, r) => `rng_state_${r}.pth`)
  for (const f of ['adapter_model.safetensors', 'adapter_config.json', 'optimizer.pt', 'scheduler.pt', ...rng, 'trainer_state.json']) {
    expect(files).toContain(f)
  }
  expect(JSON.parse(readFileSync(join(ckpt, 'trainer_state.json'), 'utf8')).global_step).toBe(2)
  const st = join(ckpt, 'adapter_model.safetensors')
  const fd = openSync(st, 'r')
  const len = Buffer.alloc(8)
  readSync(fd, len, 0, 8, 0)
  const headerLen = Number(len.readBigUInt64LE())
  const header = Buffer.alloc(headerLen)
  readSync(fd, header, 0, headerLen, 8)
  closeSync(fd)
  const tensors = Object.entries(JSON.parse(header.toString('utf8')) as Record<string, { data_offsets?: [number, number] }>)
  const end = Math.max(...tensors.map(([, t]) => t.data_offsets?.[1] ?? 0))
  expect(statSync(st).size).toBe(8 + headerLen + end)
  // Nothing half-written beside it: the fault came before the next save.
  expect(readdirSync(out).filter((d) => d.includes('checkpoint'))).toEqual(['checkpoint-2'])
}

describe('dataflex train when the sidecar dies', () => {
  const cases = [
    { fault: 'kill@3', says: /the Python sidecar exited \(killed by SIGKILL\)/ },
    { fault: 'exit@3', says: /the Python sidecar exited \(exit code 137\)/ },
    { fault: 'raise@3', says: /injected fault before step 3/ },
  ]
  for (const { fault, says } of cases) {
    it(`${fault}: exit 1 within 5 s, an error naming train_steps and the step, no orphan, checkpoint-2 intact`, async () => {
      const dir = tempDir('fault')
      const run = await train(dir, { DATAFLEX_TEST_FAULT: fault })
      expect(run.code, run.stderr).toBe(1)
      const error = run.stderr.split('\n').find((l) => l.startsWith('error ['))
      const m = /^error \[[a-z_]+\]: train_steps failed while training global steps? (\d+)(?:-(\d+))?\b/.exec(error ?? '')
      expect(m, run.stderr).not.toBeNull()
      const [first, last] = [Number(m![1]), Number(m![2] ?? m![1])]
      expect(first <= 3 && 3 <= last, error).toBe(true)
      expect(error).toMatch(says)
      // The fault fires as step 3 begins, right after checkpoint-2 is written.
      expect(run.checkpointAt).toBeDefined()
      expect(run.exitedAt - run.checkpointAt!).toBeLessThan(5_000)
      if (run.sidecarGoneAt !== undefined && !fault.startsWith('raise')) expect(run.exitedAt - run.sidecarGoneAt).toBeLessThan(5_000)
      await expectNoOrphans(run)
      expectCheckpointIntact(join(dir, 'out'))
    }, 180_000)
  }
})

describe('dataflex train SIGKILLed', () => {
  it('its sidecar notices and exits by itself within 5 s, mid-training', async () => {
    const dir = tempDir('fault')
    let killedAt = 0
    let sidecar = 0
    const run = await train(dir, {}, (cli, r) => {
      if (!/\[[1-9]\d*\/\d+\]/.test(r.stderr)) return false // wait until training steps run
      sidecar = [...r.descendants].find(([, cmd]) => SIDECAR.test(cmd))?.[0] ?? 0
      if (sidecar === 0) return false
      killedAt = Date.now()
      cli.kill('SIGKILL')
      return true
    })
    expect(run.code).toBeNull() // killed
    expect(sidecar).toBeGreaterThan(0)
    await waitFor(() => !alive(sidecar), 5_000, `orphaned sidecar ${sidecar} to exit`)
    expect(Date.now() - killedAt).toBeLessThan(5_000)
    await expectNoOrphans(run)
  }, 180_000)
})

describe('dataflex train on two ranks (NPROC_PER_NODE=2) when a rank dies or the CLI does', () => {
  const TWO = { NPROC_PER_NODE: '2' }

  it('rank 1 SIGKILLed before step 3: exit 1 within 5 s naming train_steps and the step, no process left, checkpoint-2 intact', async () => {
    const dir = tempDir('fault-ranks')
    const run = await train(dir, { ...TWO, DATAFLEX_TEST_FAULT: 'kill@3:1' })
    expect(run.code, run.stderr).toBe(1)
    const error = run.stderr.split('\n').find((l) => l.startsWith('error ['))
    expect(error, run.stderr).toMatch(/train_steps failed while training global steps? \d/)
    expect(run.checkpointAt).toBeDefined()
    expect(run.exitedAt - run.checkpointAt!).toBeLessThan(5_000)
    // torchrun's agent and both ranks were seen, and none is left.
    expect([...run.descendants.values()].filter((cmd) => SIDECAR.test(cmd)).length).toBeGreaterThanOrEqual(3)
    await expectNoOrphans(run)
    expectCheckpointIntact(join(dir, 'out'), 2)
  }, 180_000)

  it('the CLI SIGKILLed mid-training: every rank exits by itself within 5 s', async () => {
    const dir = tempDir('fault-ranks')
    let killedAt = 0
    let ranks: number[] = []
    const run = await train(dir, TWO, (cli, r) => {
      if (!/\[[1-9]\d*\/\d+\]/.test(r.stderr)) return false
      ranks = [...r.descendants].filter(([, cmd]) => SIDECAR.test(cmd)).map(([pid]) => pid)
      if (ranks.length < 3) return false // torchrun's agent and its two workers
      killedAt = Date.now()
      cli.kill('SIGKILL')
      return true
    })
    expect(run.code).toBeNull()
    await waitFor(() => ranks.every((pid) => !alive(pid)), 5_000, `ranks ${ranks.join(', ')} to exit`)
    expect(Date.now() - killedAt).toBeLessThan(5_000)
    await expectNoOrphans(run)
  }, 180_000)
})
