/** `dataflex components [--json]`: every registered algorithm of every kind, with its params. */
import { z } from 'zod'
import { COMPONENT_KINDS, KINDS, type ComponentKind } from '../strategies/kinds.ts'
import { COMMON_PARAMS, describeParams, paramsInfo, type ParamDoc } from '../strategies/params.ts'
import { CUSTOM, defaultRegistry, type ComponentRegistry } from '../strategies/registry.ts'

export interface ComponentDoc {
  kind: ComponentKind
  name: string
  description: string
  params: ParamDoc[]
  /**
   * The JSON Schema (input side) the params are validated with; `custom`'s takes `path` and the file's own params.
   * cache_dir, which every preset may set, is taken off by the trainer first.
   */
  schema: Record<string, unknown>
}

/** What `custom` itself takes; the rest belongs to the file's own schema. */
const CUSTOM_PARAMS = z.looseObject({
  path: z.string().min(1).describe('the file; relative: the working directory first, then the folder of the file the preset is written in'),
})

function doc(kind: ComponentKind, name: string, description: string, params: z.ZodType): ComponentDoc {
  return { kind, name, description, params: describeParams({ params }), schema: paramsInfo(params).schema ?? {} }
}

/** Every registered algorithm, kind by kind, each kind ending with `custom`. */
export function componentDocs(registry: ComponentRegistry = defaultRegistry()): ComponentDoc[] {
  return COMPONENT_KINDS.flatMap((kind): ComponentDoc[] => [
    ...registry.definitions(kind).map((def) => doc(kind, def.name, def.description, def.params)),
    doc(kind, CUSTOM, `your own ${kind}: a TypeScript or JavaScript module exporting ${KINDS[kind].define}({...}) (docs/authoring.md); its params are its own`, CUSTOM_PARAMS),
  ])
}

/** The plain-text table: one group per kind, headed by its components section and train_type. */
export function formatComponents(docs: ComponentDoc[] = componentDocs()): string {
  const lines: string[] = []
  for (const kind of COMPONENT_KINDS) {
    const { section, trainType, algorithmParam } = KINDS[kind]
    lines.push(`${section} (train_type: ${trainType}):`)
    if (algorithmParam !== undefined) lines.push(`  (a preset may name its algorithm with params.${algorithmParam} instead of name:)`)
    for (const d of docs.filter((doc) => doc.kind === kind)) {
      lines.push(`  ${d.name}  ${d.description}`)
      const width = Math.max(0, ...d.params.map((p) => p.name.length))
      for (const p of d.params) {
        const dflt = p.required ? 'required' : p.default !== undefined ? `default ${JSON.stringify(p.default)}` : 'optional'
        lines.push(`      ${p.name.padEnd(width)}  ${p.type}, ${dflt}${p.description ? ` — ${p.description}` : ''}`)
      }
    }
  }
  lines.push('every preset may also set:')
  for (const [name, text] of Object.entries(COMMON_PARAMS)) lines.push(`      ${name}  ${text}`)
  return lines.join('\n') + '\n'
}
