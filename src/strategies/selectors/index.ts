/** The built-in selectors written here; the registry adds `random` and `custom` next to them. */
import type { SelectorDefinition } from '../types.ts'
import { clusterLessSelector } from './cluster_less.ts'
import { deltaLossSelector } from './delta_loss.ts'
import { lessSelector } from './less.ts'
import { lossSelector } from './loss.ts'
import { nearSelector } from './near.ts'
import { niceSelector } from './nice.ts'
import { tsdsSelector } from './tsds.ts'

export { clusterLessSelector, deltaLossSelector, lessSelector, lossSelector, nearSelector, niceSelector, tsdsSelector }
export { SelectorError, type SelectorErrorCode } from './common.ts'

export const BUILTIN_SELECTORS: readonly SelectorDefinition[] = [
  lossSelector,
  deltaLossSelector,
  lessSelector,
  clusterLessSelector,
  nearSelector,
  tsdsSelector,
  niceSelector,
]
