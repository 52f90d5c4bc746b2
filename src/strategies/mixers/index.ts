/** The built-in mixers; the registry adds them next to the selectors. */
import type { MixerDefinition } from '../mixer.ts'
import { adoMixer } from './ado.ts'
import { doremiMixer } from './doremi.ts'
import { dynamicMoeMixer } from './dynamic_moe.ts'
import { odmMixer } from './odm.ts'
import { randomMixer } from './random.ts'
import { staticMixer } from './static.ts'

export { adoMixer, doremiMixer, dynamicMoeMixer, odmMixer, randomMixer, staticMixer }
export { MixerError, type MixerErrorCode } from './common.ts'

export const BUILTIN_MIXERS: readonly MixerDefinition[] = [staticMixer, randomMixer, doremiMixer, odmMixer, dynamicMoeMixer, adoMixer]
