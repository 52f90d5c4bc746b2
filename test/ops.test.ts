/**
 * The op catalog (src/bridge/ops.ts) on its own: the committed JSON Schema is current, every example is valid,
 * typed arrays export as markers, and OpClient applies defaults / refuses bad args before anything is sent.
 * test/ops-contract.test.ts drives the real sidecar with it.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { NdArray, OpArgsError, type Bridge } from '../src/bridge/index.ts'
import { OPS_SCHEMA_PATH, opsSchemaText } from '../src/bridge/ops-schema.ts'
import { NDARRAY_KEYWORD, OP_NAMES, OPS, OpClient, ndarray, toJsonSchema } from '../src/bridge/ops.ts'

/** A bridge that records what would be sent and answers with `reply`. */
function recordingBridge(reply: Record<string, unknown> = {}) {
  const sent: { op: string; args: Record<string, unknown>; timeoutMs: number | undefined }[] = []
  const bridge = {
    request: async (op: string, args: Record<string, unknown>, opts: { timeoutMs?: number; result?: z.ZodType }) => {
      sent.push({ op, args, timeoutMs: opts.timeoutMs })
      return opts.result ? opts.result.parse(reply) : reply
    },
  }
  return { sent, bridge: bridge as unknown as Bridge }
}

describe('op catalog', () => {
  it('the committed ops.schema.json is what the catalog exports', () => {
    const committed = readFileSync(OPS_SCHEMA_PATH, 'utf8')
    expect(committed, `${OPS_SCHEMA_PATH} is stale: run \`npm run ops:schema\` and commit it`).toBe(opsSchemaText())
  })

  it('every example is valid for its args schema', () => {
    for (const name of OP_NAMES) {
      const parsed = OPS[name].args.safeParse(OPS[name].example)
      expect(parsed.error?.message, name).toBeUndefined()
    }
  })

  it('exports typed arrays as x-ndarray markers and defaulted args as required on the wire', () => {
    const doc = JSON.parse(opsSchemaText()) as { ops: Record<string, { args: Record<string, unknown>; result: Record<string, unknown> }> }
    const grads = doc.ops.gradients!
    expect(grads.args).toMatchObject({
      additionalProperties: false,
      properties: { indices: { [NDARRAY_KEYWORD]: { dtype: 'int32', ndim: 1 } }, chunk_size: { default: 16, minimum: 1 } },
    })
    expect(grads.args.required).toEqual(expect.arrayContaining(['split', 'indices', 'proj_dim', 'chunk_size']))
    expect(grads.result).toMatchObject({ properties: { grads: { [NDARRAY_KEYWORD]: { dtype: 'float32', ndim: 2 } } } })
    expect(doc.ops.begin_pass!.args.required).not.toContain('weights')
  })

  it('refuses any other unrepresentable type in the export', () => {
    expect(() => toJsonSchema(z.object({ f: z.custom<() => void>((v) => typeof v === 'function') }), 'output')).toThrow(/Custom types/)
  })

  it('ndarray() checks dtype and dimensions as the wire decodes them', () => {
    const vec = ndarray('int32', 1)
    expect(vec.safeParse(new Int32Array(2)).success).toBe(true)
    expect(vec.safeParse(new Float32Array(2)).error?.issues[0]?.message).toBe('expected a 1-D int32 array')
    expect(vec.safeParse([1, 2]).success).toBe(false)
    const mat = ndarray('float32', 2)
    expect(mat.safeParse(new NdArray(new Float32Array(6), [2, 3])).success).toBe(true)
    expect(mat.safeParse(new NdArray(new Float32Array(6), [6])).success).toBe(false)
    expect(mat.safeParse(new NdArray(new Float64Array(6), [2, 3])).success).toBe(false)
  })
})

describe('OpClient', () => {
  it('sends the args with the catalog defaults applied, under the catalog timeout', async () => {
    const { sent, bridge } = recordingBridge({ losses: new Float32Array(2) })
    const indices = Int32Array.of(4, 5)
    await new OpClient(bridge).call('losses', { indices })
    expect(sent).toEqual([{ op: 'losses', args: { split: 'train', indices }, timeoutMs: OPS.losses.timeoutMs }])
    const end = recordingBridge({ eval_loss: null })
    await new OpClient(end.bridge).call('end_pass', { save: true }, { timeoutMs: 5_000 })
    expect(end.sent[0]).toEqual({ op: 'end_pass', args: { log: false, evaluate: false, save: true }, timeoutMs: 5_000 })
  })

  it('refuses bad args before sending, naming the op and the arg', async () => {
    const { sent, bridge } = recordingBridge()
    const ops = new OpClient(bridge)
    const bad = [
      ['proj_dim', { indices: new Int32Array(1), proj_dim: '8' }],
      ['indices', { indices: new Float32Array(1) }],
      ['indices', {}],
      ['rows', { indices: new Int32Array(1), rows: 4 }],
    ] as const
    for (const [arg, args] of bad) {
      const err = await ops.call('gradients', args as never).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(OpArgsError)
      expect((err as OpArgsError).code).toBe('bad_args')
      expect((err as OpArgsError).message).toMatch(new RegExp(`^gradients: invalid args: .*${arg}`))
    }
    expect(sent).toEqual([])
  })
})
