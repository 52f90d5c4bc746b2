/** What a run reports while it goes: the phase it is in and, while training, the step with its loss and lr. */

export type Phase = 'loading' | 'warmup' | 'selecting' | 'mixing' | 'reordering' | 'training' | 'evaluating' | 'saving' | 'finishing'

export interface ProgressEvent {
  step: number
  totalSteps: number
  phase: Phase
  loss?: number
  lr?: number
  epoch?: number
}
