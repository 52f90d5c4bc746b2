/** The built-in weighters; the registry adds them next to the selectors and the mixers. */
import type { WeighterDefinition } from '../weighter.ts'
import { adaptWeighter } from './adapt.ts'
import { jointUpdateAwareWeighter } from './joint_update_aware.ts'
import { lossWeighter } from './loss.ts'

export { adaptWeighter, jointUpdateAwareWeighter, lossWeighter }
export { WeighterError, type WeighterErrorCode } from './common.ts'

export const BUILTIN_WEIGHTERS: readonly WeighterDefinition[] = [lossWeighter, adaptWeighter, jointUpdateAwareWeighter]
