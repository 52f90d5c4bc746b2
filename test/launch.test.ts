/** LLaMA-Factory's launch switches, read as its launcher reads them (src/bridge/launch.ts), and torchrun's argv. */
import { describe, expect, it } from 'vitest'
import { LaunchSwitchError, masterPort, torchrunArgs, torchrunFromEnv, visibleGpuCount } from '../src/bridge/launch.ts'

const one = { nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: undefined }

describe('torchrunFromEnv', () => {
  const cases: [string, NodeJS.ProcessEnv, number, ReturnType<typeof torchrunFromEnv>][] = [
    ['nothing set, one GPU', {}, 1, undefined],
    ['nothing set, no GPU', {}, 0, undefined],
    ['nothing set, four GPUs: torchrun over all of them', {}, 4, { ...one, nprocPerNode: 4 }],
    ['FORCE_TORCHRUN on CPU: one rank under torchrun', { FORCE_TORCHRUN: '1' }, 0, { ...one, nprocPerNode: 1 }],
    ['FORCE_TORCHRUN=true with NPROC_PER_NODE', { FORCE_TORCHRUN: 'true', NPROC_PER_NODE: '3' }, 8, { ...one, nprocPerNode: 3 }],
    ['NPROC_PER_NODE alone asks for torchrun', { NPROC_PER_NODE: '2' }, 0, { ...one, nprocPerNode: 2 }],
    ['NPROC_PER_NODE=1 with two GPUs: one process', { NPROC_PER_NODE: '1' }, 2, undefined],
    ['FORCE_TORCHRUN=0 is not forced', { FORCE_TORCHRUN: '0' }, 1, undefined],
    [
      'two nodes, this is node 1',
      { NNODES: '2', NODE_RANK: '1', NPROC_PER_NODE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' },
      0,
      { nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 29500 },
    ],
  ]
  for (const [what, env, gpus, want] of cases) {
    it(what, () => expect(torchrunFromEnv(env, () => gpus)).toEqual(want))
  }

  const bad: [NodeJS.ProcessEnv, string][] = [
    [{ NPROC_PER_NODE: '0' }, 'NPROC_PER_NODE'],
    [{ NPROC_PER_NODE: '1.5' }, 'NPROC_PER_NODE'],
    [{ NNODES: 'x' }, 'NNODES'],
    [{ NNODES: '2', NODE_RANK: '2', MASTER_PORT: '29500' }, 'NODE_RANK'],
    [{ NNODES: '2', NODE_RANK: '0' }, 'MASTER_PORT'],
    [{ FORCE_TORCHRUN: '1', MASTER_PORT: '70000' }, 'MASTER_PORT'],
  ]
  for (const [env, variable] of bad) {
    it(`${JSON.stringify(env)} is refused, naming ${variable}`, () => {
      let err: unknown
      try {
        torchrunFromEnv(env, () => 0)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(LaunchSwitchError)
      expect((err as LaunchSwitchError).variable).toBe(variable)
    })
  }
})

describe('torchrun argv and devices', () => {
  it("is LLaMA-Factory's torchrun command line, run as a Python module", () => {
    const l = { nprocPerNode: 2, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: undefined }
    expect(torchrunArgs(l, 29501)).toEqual([
      '-m', 'torch.distributed.run', '--nnodes', '1', '--node_rank', '0', '--nproc_per_node', '2',
      '--master_addr', '127.0.0.1', '--master_port', '29501',
    ])
  })

  it('a free local port when MASTER_PORT is unset; the given one otherwise', async () => {
    const l = { nprocPerNode: 2, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: undefined }
    const port = await masterPort(l)
    expect(port).toBeGreaterThan(0)
    expect(await masterPort({ ...l, masterPort: 29555 })).toBe(29555)
  })

  it('CUDA_VISIBLE_DEVICES counts devices up to the first invalid id, as CUDA does', () => {
    expect(visibleGpuCount({ CUDA_VISIBLE_DEVICES: '0,1,2' })).toBe(3)
    expect(visibleGpuCount({ CUDA_VISIBLE_DEVICES: '' })).toBe(0)
    expect(visibleGpuCount({ CUDA_VISIBLE_DEVICES: '0,-1,2' })).toBe(1)
  })
})
