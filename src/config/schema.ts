/**
 * The keys DataFlex adds to a LLaMA-Factory YAML (docs/select.md#configure). Defaults are the
 * Python DataFlex ones unless a comment says why not. Every other key belongs to LLaMA-Factory.
 */
import { z } from 'zod'

// Every train type of the Python DataFlex; trainers/table.ts says which of them run.
export const TrainTypeSchema = z.enum(['static', 'dynamic_select', 'dynamic_mix', 'dynamic_weight', 'dynamic_reorder', 'dynamic_lego'])
export type TrainType = z.output<typeof TrainTypeSchema>

export const MixtureSampleRuleSchema = z.enum(['mixture', 'stratified', 'uniform'])
export type MixtureSampleRule = z.output<typeof MixtureSampleRuleSchema>

/**
 * One preset in a components block: `{ name?, params }`, as in DataFlex's components.yaml. `params:` with nothing
 * after it is YAML null; DataFlex would crash on it, we read it as no params.
 */
export const ComponentPresetSchema = z.strictObject({
  name: z.string().min(1).optional(),
  params: z
    .record(z.string(), z.unknown())
    .nullish()
    .transform((p) => p ?? {}),
})

/**
 * The sections of a components block: one per component kind (the Python DataFlex's components.yaml), and
 * `pipelines` (dynamic_lego's compositions of them).
 */
export const COMPONENT_SECTIONS = ['selectors', 'mixers', 'weighters', 'reorders', 'pipelines'] as const
export type ComponentSection = (typeof COMPONENT_SECTIONS)[number]

/** Older spellings still read (with a warning): DataFlex named the reorders section `reorderers:` at first. */
export const LEGACY_SECTIONS: Readonly<Record<string, ComponentSection>> = { reorderers: 'reorders' }

const SectionSchema = z.record(z.string(), ComponentPresetSchema).nullish()

/** A components file, or the same layout inline in the training YAML under `components:`. */
export const ComponentsBlockSchema = z
  .strictObject({
    selectors: SectionSchema,
    mixers: SectionSchema,
    weighters: SectionSchema,
    reorders: SectionSchema,
    pipelines: SectionSchema,
    reorderers: SectionSchema,
  })
  .superRefine((block, ctx) => {
    for (const [legacy, section] of Object.entries(LEGACY_SECTIONS)) {
      const b = block as Record<string, unknown>
      if (b[legacy] !== undefined && b[section] !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [legacy],
          message: `'${legacy}:' is the older spelling of '${section}:', and both are written; keep one (${section})`,
        })
      }
    }
  })
export type ComponentsBlock = z.output<typeof ComponentsBlockSchema>

// Python's None-defaulted keys may be written `key: null`; treat that as absent (optional on both sides).
function nullable<T extends z.ZodType>(schema: T) {
  return schema
    .nullish()
    .transform((v) => v ?? undefined)
    .optional()
}

/** Comma list (`a,b`) or YAML list of names, as LLaMA-Factory's `split_arg` accepts them. */
export function splitNames(value: unknown): string[] | undefined {
  if (typeof value === 'string') return value.split(',').map((s) => s.trim())
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.map((s) => s.trim())
  return undefined
}

export const DataflexConfigSchema = z.strictObject({
  train_type: TrainTypeSchema.default('static').describe(`one of ${TrainTypeSchema.options.join(', ')}`),
  components_cfg_file: z
    .string()
    .min(1)
    .default('configs/components.yaml')
    .describe('a path to a components YAML file'),
  // Python defaults to "Loss", which names no preset; absent here, and dynamic modes require it.
  component_name: nullable(z.string().min(1)).describe('the name of a preset in the components file'),
  warmup_step: z.int().min(0).default(0).describe('an integer >= 0'),
  update_step: z.int().min(0).default(0).describe('an integer >= 0 (>= 1 for dynamic_select / dynamic_mix / dynamic_reorder / dynamic_lego)'),
  update_times: z.int().default(1).describe('an integer'),
  train_step: z.int().min(0).default(0).describe('an integer >= 0 (0 means: from epochs)'),
  static_mix: z.boolean().default(false).describe('true or false'),
  freeze_gate: z.boolean().default(false).describe('true or false'),
  log_weights: z.boolean().default(false).describe("true or false (dynamic_weight, dynamic_lego: every sample's weight in the decision log)"),
  mixture_sample_rule: nullable(MixtureSampleRuleSchema).describe(
    `one of ${MixtureSampleRuleSchema.options.join(', ')}`,
  ),
  init_mixture_proportions: nullable(z.union([z.array(z.number().min(0)).min(1), z.string().min(1)])).describe(
    "a list of non-negative numbers, one per dataset, or the path of a DoReMi run's doremi_average_weights.json",
  ),
  mixer_eval_dataset: nullable(z.string().min(1)).describe('a comma-separated list of dataset names'),
  components: nullable(ComponentsBlockSchema).describe('a mapping with selectors / mixers / weighters / reorders / pipelines'),
})

/** Cross-key rules, checked after each key is valid on its own. */
export const DataflexConfigRulesSchema = DataflexConfigSchema.superRefine((cfg, ctx) => {
  const usesUpdates =
    cfg.train_type === 'dynamic_select' ||
    cfg.train_type === 'dynamic_lego' ||
    // dynamic_reorder plans its windows with dynamic_select's schedule (trainers/reorder.ts)
    cfg.train_type === 'dynamic_reorder' ||
    (cfg.train_type === 'dynamic_mix' && !cfg.static_mix)
  if (usesUpdates && cfg.update_step < 1) {
    // update_step is a modulus of the update schedule (docs/algorithms.md#schedule-dynamic_select); dynamic_mix
    // uses it the same way.
    ctx.addIssue({ code: 'custom', path: ['update_step'], message: `must be >= 1 with train_type ${cfg.train_type}` })
  }
  const needsComponent = cfg.train_type !== 'static' && !(cfg.train_type === 'dynamic_mix' && cfg.static_mix)
  if (needsComponent && cfg.component_name === undefined) {
    ctx.addIssue({ code: 'custom', path: ['component_name'], message: `is required with train_type ${cfg.train_type}` })
  }
  const proportions = cfg.init_mixture_proportions
  if (Array.isArray(proportions) && !(proportions.reduce((a, b) => a + b, 0) > 0)) {
    ctx.addIssue({ code: 'custom', path: ['init_mixture_proportions'], message: 'must not sum to 0' })
  }
})

export type DataflexConfig = z.output<typeof DataflexConfigSchema>
export type DataflexConfigInput = z.input<typeof DataflexConfigSchema>

/** Every top-level key DataFlex owns; anything else goes to LLaMA-Factory. */
export const DATAFLEX_KEYS: ReadonlySet<string> = new Set(Object.keys(DataflexConfigSchema.shape))
