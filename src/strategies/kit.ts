/**
 * The kit form of a user strategy file: a default-exported function that receives zod, the seeded Rng and its kind's
 * `define*` helper, and returns a definition. It needs no imports at all; an ordinary module importing from
 * 'dataflex-ts' and 'zod' is the other form (user-files.ts loads both).
 */
import { z } from 'zod'
import { Rng } from '../math/rng.ts'
import type { ComponentKind } from './kinds.ts'
import { defineMixer } from './mixer.ts'
import { defineReorder } from './reorder.ts'
import { defineSelector } from './types.ts'
import { defineWeighter } from './weighter.ts'

interface KitBase {
  z: typeof z
  Rng: typeof Rng
}
export interface SelectorKit extends KitBase {
  defineSelector: typeof defineSelector
}
export interface MixerKit extends KitBase {
  defineMixer: typeof defineMixer
}
export interface WeighterKit extends KitBase {
  defineWeighter: typeof defineWeighter
}
export interface ReorderKit extends KitBase {
  defineReorder: typeof defineReorder
}

/** What a user file's default-exported function receives, per kind. */
export interface KitOf {
  selector: SelectorKit
  mixer: MixerKit
  weighter: WeighterKit
  reorder: ReorderKit
}

export const KITS: { readonly [K in ComponentKind]: KitOf[K] } = {
  selector: { z, Rng, defineSelector },
  mixer: { z, Rng, defineMixer },
  weighter: { z, Rng, defineWeighter },
  reorder: { z, Rng, defineReorder },
}
