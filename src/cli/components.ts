/** `dataflex components [--json]`: every registered algorithm of every kind, with its params. */
import { COMPONENT_KINDS, KINDS, type ComponentKind } from '../strategies/kinds.ts'
import { COMMON_PARAMS, describeParams, type ParamDoc } from '../strategies/params.ts'
import { CUSTOM, defaultRegistry, type ComponentRegistry } from '../strategies/registry.ts'

export interface ComponentDoc {
  kind: ComponentKind
  name: string
  description: string
  params: ParamDoc[]
}

/** Every registered algorithm, kind by kind, each kind ending with `custom`. */
export function componentDocs(registry: ComponentRegistry = defaultRegistry()): ComponentDoc[] {
  return COMPONENT_KINDS.flatMap((kind): ComponentDoc[] => [
    ...registry.definitions(kind).map((def) => ({ kind, name: def.name, description: def.description, params: describeParams(def) })),
    {
      kind,
      name: CUSTOM,
      description: `your own ${kind}: a TypeScript or JavaScript file default-exporting ${KINDS[kind].define}({...}); its params are its own`,
      params: [
        {
          name: 'path',
          type: 'string',
          required: true,
          description: "the file; relative: the working directory first, then the folder of the file the preset is written in",
        },
      ],
    },
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
