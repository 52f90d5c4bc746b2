/**
 * Whether and how the sidecar runs under torchrun: LLaMA-Factory's launch switches, read as its launcher reads them
 * (llamafactory 0.9.5 `launcher.py`): torchrun when FORCE_TORCHRUN is set or more than one GPU is visible;
 * NNODES (1), NODE_RANK (0), NPROC_PER_NODE (the visible GPUs), MASTER_ADDR (127.0.0.1) and MASTER_PORT (a free
 * port) shape it. Unlike that launcher, a malformed value is an error naming the variable, and NPROC_PER_NODE > 1
 * or NNODES > 1 alone also asks for torchrun (a switch a user sets is never ignored).
 */
import { spawnSync } from 'node:child_process'
import { createServer } from 'node:net'

export interface TorchrunLaunch {
  readonly nprocPerNode: number
  readonly nnodes: number
  readonly nodeRank: number
  readonly masterAddr: string
  /** undefined: a free local port, found when the sidecar starts (one node only). */
  readonly masterPort: number | undefined
}

export class LaunchSwitchError extends Error {
  override readonly name = 'LaunchSwitchError'
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message)
  }
}

const TRUTHY = new Set(['1', 'true', 'y', 'yes', 'on'])

function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min) throw new LaunchSwitchError(name, `${name}=${raw}: expected an integer >= ${min}`)
  return value
}

/**
 * The torchrun launch the environment asks for, or undefined for one process. `visibleGpus` (LLaMA-Factory's
 * get_device_count()) is asked when NPROC_PER_NODE is unset.
 */
export function torchrunFromEnv(env: NodeJS.ProcessEnv, visibleGpus: () => number): TorchrunLaunch | undefined {
  const forced = TRUTHY.has((env['FORCE_TORCHRUN'] ?? '').toLowerCase())
  const nnodes = intVar(env, 'NNODES', 1, 1)
  const nodeRank = intVar(env, 'NODE_RANK', 0, 0)
  if (nodeRank >= nnodes) throw new LaunchSwitchError('NODE_RANK', `NODE_RANK=${nodeRank}: must be below NNODES=${nnodes}`)
  const nprocSet = (env['NPROC_PER_NODE'] ?? '').trim() !== ''
  const nproc = nprocSet ? intVar(env, 'NPROC_PER_NODE', 1, 1) : Math.max(1, visibleGpus())
  if (!forced && nnodes === 1 && nproc === 1) return undefined
  const port = env['MASTER_PORT']
  const masterPort = port === undefined || port.trim() === '' ? undefined : intVar(env, 'MASTER_PORT', 0, 1)
  if (masterPort !== undefined && masterPort > 65535) throw new LaunchSwitchError('MASTER_PORT', `MASTER_PORT=${port}: expected a port (1-65535)`)
  if (nnodes > 1 && masterPort === undefined) {
    throw new LaunchSwitchError('MASTER_PORT', `NNODES=${nnodes}: set MASTER_ADDR and MASTER_PORT to node 0's address, the same on every node`)
  }
  const masterAddr = (env['MASTER_ADDR'] ?? '').trim() || '127.0.0.1'
  return { nprocPerNode: nproc, nnodes, nodeRank, masterAddr, masterPort }
}

/** The Python arguments before `-m dataflex_bridge`: `-m torch.distributed.run` and its switches. */
export function torchrunArgs(l: TorchrunLaunch, port: number): string[] {
  return [
    '-m', 'torch.distributed.run',
    '--nnodes', String(l.nnodes),
    '--node_rank', String(l.nodeRank),
    '--nproc_per_node', String(l.nprocPerNode),
    '--master_addr', l.masterAddr,
    '--master_port', String(port),
  ]
}

/** The launch's master port, or a free local one. */
export async function masterPort(l: TorchrunLaunch): Promise<number> {
  if (l.masterPort !== undefined) return l.masterPort
  return await new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * GPUs the sidecar would see: CUDA_VISIBLE_DEVICES when set, else the lines of `nvidia-smi -L` (0 without it).
 */
export function visibleGpuCount(env: NodeJS.ProcessEnv): number {
  const visible = env['CUDA_VISIBLE_DEVICES']
  if (visible !== undefined) {
    const ids = visible.split(',').map((s) => s.trim()).filter((s) => s !== '')
    const hidden = ids.findIndex((s) => s.startsWith('-')) // CUDA stops at the first invalid id
    return hidden === -1 ? ids.length : hidden
  }
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5_000 })
  if (r.status !== 0 || typeof r.stdout !== 'string') return 0
  return r.stdout.split('\n').filter((l) => l.startsWith('GPU ')).length
}
