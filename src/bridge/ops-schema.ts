/**
 * The op catalog (ops.ts) as JSON Schema, for the sidecar: `npm run ops:schema` writes it to OPS_SCHEMA_PATH, and
 * test/ops.test.ts fails when the committed file differs from what the catalog exports now.
 *
 * Args are exported as sent (zod's output: defaults applied, so every defaulted arg is required on the wire);
 * results as received (zod's input).
 */
import { join } from 'node:path'
import { OPS, OP_NAMES, toJsonSchema } from './ops.ts'
import { PROTOCOL_VERSION } from './protocol.ts'
import { PYTHON_BRIDGE_DIR } from './python.ts'
import { writeFileAtomic } from '../util/atomic.ts'

export const OPS_SCHEMA_PATH = join(PYTHON_BRIDGE_DIR, 'dataflex_bridge', 'ops.schema.json')

/** The file's text: stable key order, two-space indent, a final newline. */
export function opsSchemaText(): string {
  const ops: Record<string, unknown> = {}
  for (const name of OP_NAMES) {
    const spec = OPS[name]
    ops[name] = {
      direction: spec.direction,
      summary: spec.summary,
      timeout_ms: spec.timeoutMs,
      args: withoutDialect(toJsonSchema(spec.args, 'output')),
      result: withoutDialect(toJsonSchema(spec.result, 'input')),
    }
  }
  const doc = {
    $comment: 'Generated from src/bridge/ops.ts by `npm run ops:schema`; do not edit.',
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    protocol: PROTOCOL_VERSION,
    ops,
  }
  return JSON.stringify(doc, null, 2) + '\n'
}

/** Each op's schema would repeat the dialect; the file states it once. */
function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _, ...rest } = schema
  return rest
}

/** Write the file atomically (a temp file renamed over it). */
export function writeOpsSchema(path = OPS_SCHEMA_PATH): void {
  writeFileAtomic(path, opsSchemaText())
}
