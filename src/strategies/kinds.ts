/**
 * The component kinds and what differs between them: the components-file section, the train_type that uses them,
 * and their `define*` helper. Everything else (registry, preset resolution, params, user files) is one code path
 * for every kind.
 */
import type { ComponentSection } from '../config/schema.ts'
import type { MixerDefinition } from './mixer.ts'
import type { ReorderDefinition } from './reorder.ts'
import type { SelectorDefinition } from './types.ts'
import type { WeighterDefinition } from './weighter.ts'

export const COMPONENT_KINDS = ['selector', 'mixer', 'weighter', 'reorder'] as const
export type ComponentKind = (typeof COMPONENT_KINDS)[number]

export interface KindInfo {
  /** Where its presets live in a components block. */
  readonly section: ComponentSection
  /** The train_type that runs it. */
  readonly trainType: string
  /** The helper a user file defines one with. */
  readonly define: string
  /**
   * A param that names the algorithm instead of `name:`. DataFlex names reorder presets after the ordering
   * (`saw`, `folding`) and picks the class from `params.kind` (static | dynamic).
   */
  readonly algorithmParam?: string
}

export const KINDS: Readonly<Record<ComponentKind, KindInfo>> = {
  selector: { section: 'selectors', trainType: 'dynamic_select', define: 'defineSelector' },
  mixer: { section: 'mixers', trainType: 'dynamic_mix', define: 'defineMixer' },
  weighter: { section: 'weighters', trainType: 'dynamic_weight', define: 'defineWeighter' },
  reorder: { section: 'reorders', trainType: 'dynamic_reorder', define: 'defineReorder', algorithmParam: 'kind' },
}

// Definitions are stored type-erased: params are validated by the definition's own schema before create().
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface DefinitionOf {
  selector: SelectorDefinition<any>
  mixer: MixerDefinition<any>
  weighter: WeighterDefinition<any>
  reorder: ReorderDefinition<any>
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export type AnyDefinition<K extends ComponentKind = ComponentKind> = DefinitionOf[K]
