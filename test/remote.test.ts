/**
 * A sidecar on another host, tried on loopback: `dataflex serve` + `dataflex train --connect` with CURVE keys, a
 * stranger's key refused within seconds, plain tcp on loopback, and an open bind without keys refused.
 */
import { type ChildProcessByStdio, execFile, spawn } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { curveKeyPair } from 'zeromq'
import { type Bridge, connectBridge, REPO_ROOT } from '../src/bridge/index.ts'
import { expectOk, tempDir, tinyConfig, trainCli } from './support.ts'

const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, timeout: 60_000 })
    return { code: 0, ...r }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

interface Served {
  readonly endpoint: string
  readonly child: ChildProcessByStdio<null, Readable, Readable>
  output(): string
}

const servers: Served[] = []

/** `dataflex serve` on a free loopback port; resolves once it says where it listens. */
async function serve(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', '--bind', 'tcp://127.0.0.1:*', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve never listened:\n${out}`)), 120_000)
    child.stdout.on('data', () => {
      const m = /listening on (tcp:\/\/\S+)/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve(m[1] as string)
      }
    })
    child.on('exit', (code) => reject(new Error(`serve exited ${code}:\n${out}`)))
  })
  const served = { endpoint, child, output: () => out }
  servers.push(served)
  return served
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) continue
    const exited = new Promise((resolve) => s.child.on('exit', resolve))
    s.child.kill('SIGTERM')
    await exited
  }
})

/** A client's key folder from `from` with `replaced` swapped for a fresh pair's (server.public: its public key). */
function keysWithNew(from: string, dir: string, replaced: 'client' | 'server'): string {
  mkdirSync(dir, { mode: 0o700 })
  for (const f of ['server.public', 'client.public', 'client.secret']) cpSync(join(from, f), join(dir, f))
  const pair = curveKeyPair()
  if (replaced === 'server') writeFileSync(join(dir, 'server.public'), `${pair.publicKey}\n`)
  else {
    writeFileSync(join(dir, 'client.public'), `${pair.publicKey}\n`)
    writeFileSync(join(dir, 'client.secret'), `${pair.secretKey}\n`)
  }
  return dir
}

describe('dataflex keys', () => {
  it('writes both key pairs privately and refuses to overwrite them', async () => {
    const dir = join(tempDir('keys'), 'k')
    const made = await cli(['keys', dir])
    expect(made.code, made.stderr).toBe(0)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    for (const f of ['server.public', 'server.secret', 'client.public', 'client.secret', 'authorized_clients']) {
      expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600)
    }
    const client = readFileSync(join(dir, 'client.public'), 'utf8').trim()
    expect(client).toMatch(/^\S{40}$/)
    expect(readFileSync(join(dir, 'authorized_clients'), 'utf8')).toContain(client)
    const again = await cli(['keys', dir])
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/exists; refusing to overwrite keys/)
  })

  it('a client refuses a secret key others can read', async () => {
    const dir = join(tempDir('keys'), 'k')
    expect((await cli(['keys', dir])).code).toBe(0)
    chmodSync(join(dir, 'client.secret'), 0o644)
    const err = await connectBridge({ endpoint: 'tcp://127.0.0.1:1', keysDir: dir }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'config_error' })
    expect((err as Error).message).toMatch(/client\.secret is accessible by group or others \(mode 0644\); run `chmod 600/)
  })
})

describe('dataflex serve', () => {
  it('refuses a non-loopback bind without keys, naming the flag', async () => {
    const r = await cli(['serve', '--bind', 'tcp://0.0.0.0:5555'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/refusing to bind tcp:\/\/0\.0\.0\.0:5555 without keys.*--keys <dir>/)
  })

  it('SIGINT stops the sidecar and exits 130', async () => {
    const s = await serve([])
    const children = async (): Promise<string> =>
      (await promisify(execFile)('pgrep', ['-P', String(s.child.pid)]).catch(() => ({ stdout: '' }))).stdout.trim()
    const sidecar = await children()
    expect(sidecar).toMatch(/^\d+$/)
    const exited = new Promise<number | null>((resolve) => s.child.on('exit', (code) => resolve(code)))
    s.child.kill('SIGINT')
    expect(await exited).toBe(130)
    expect(existsSync(`/proc/${sidecar}`)).toBe(false)
  })

  it('plain tcp on loopback works without keys; a second client is told the sidecar is busy', async () => {
    const s = await serve([])
    let first: Bridge | undefined
    try {
      first = await connectBridge({ endpoint: s.endpoint, heartbeat: false })
      expect(await first.request('echo', { x: 1 })).toEqual({ x: 1 })
      const second = await connectBridge({ endpoint: s.endpoint, heartbeat: false }).catch((e: unknown) => e)
      expect(second).toMatchObject({ code: 'busy' })
    } finally {
      await first?.close()
    }
  })

  it('a client whose key is not authorised fails within seconds, naming the endpoint', async () => {
    const root = tempDir('keys')
    const keys = join(root, 'k')
    expect((await cli(['keys', keys])).code).toBe(0)
    const s = await serve(['--keys', keys])
    const t0 = Date.now()
    const err = await connectBridge({ endpoint: s.endpoint, keysDir: keysWithNew(keys, join(root, 'stranger'), 'client') }).catch((e: unknown) => e)
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(err).toMatchObject({ code: 'connect_failed' })
    expect((err as Error).message).toContain(`authentication failed at ${s.endpoint}`)
    // The wrong server key: the server cannot read our hello and drops us, again and again; not a hang either.
    const t1 = Date.now()
    const wrongServer = await connectBridge({ endpoint: s.endpoint, keysDir: keysWithNew(keys, join(root, 'other-server'), 'server') }).catch(
      (e: unknown) => e,
    )
    expect(Date.now() - t1).toBeLessThan(10_000)
    expect(wrongServer).toMatchObject({ code: 'connect_failed' })
    expect((wrongServer as Error).message).toMatch(new RegExp(`handshake with ${s.endpoint.replaceAll('.', '\\.')} failed .*wrong server key`))
    // Without keys against a CURVE server: refused at the handshake (a protocol error or dropped handshakes).
    const plain = await connectBridge({ endpoint: s.endpoint }).catch((e: unknown) => e)
    expect(plain).toMatchObject({ code: 'connect_failed' })
    expect((plain as Error).message).toMatch(/handshake with .* failed.*the server expects CURVE keys \(pass --keys <dir>\)/)
  })

  it('drives a tiny run over CURVE with `dataflex train --connect`, then serves the next run', async () => {
    const dir = tempDir('remote')
    const keys = join(dir, 'keys')
    expect((await cli(['keys', keys])).code).toBe(0)
    const s = await serve(['--keys', keys])
    const config = (out: string): Record<string, unknown> =>
      tinyConfig(out, { num_train_epochs: 1, eval_strategy: 'no', max_samples: 16, save_steps: 100 })
    const run = await trainCli(dir, 'remote', config, 240_000, ['--connect', s.endpoint, '--keys', keys])
    expectOk(run)
    expect(run.metrics.length).toBeGreaterThan(0)
    expect(run.metrics.every((m) => Number.isFinite(m.loss))).toBe(true)
    // The sidecar of that run stopped; a fresh one (seconds to import on a busy machine) answers the next client.
    const next = await connectBridge({ endpoint: s.endpoint, keysDir: keys, heartbeat: false, connectTimeoutMs: 120_000 })
    try {
      expect(await next.request('echo', { again: true })).toEqual({ again: true })
    } finally {
      await next.close()
    }
    expect(s.output()).toMatch(/run finished; starting a fresh sidecar/)
  })
})
