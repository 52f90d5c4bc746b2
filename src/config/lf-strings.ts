/**
 * LLaMA-Factory reads its YAML as YAML 1.1 (PyYAML through OmegaConf), where an unquoted `no`, `off`, `yes` or `on` is
 * a boolean, and so do we (yaml.ts), since every LLaMA-Factory key is handed over as parsed. A key that wants a
 * string then gets `False`, and the run dies after its imports with "False is not a valid SaveStrategy", naming
 * neither the key nor the fix. This refuses a boolean for any such key before anything starts, and says to quote it.
 */
import { ConfigError } from './errors.ts'
import type { PrecheckContext } from './prechecks.ts'

/**
 * Every argument of the pinned LLaMA-Factory 0.9.5 / transformers 4.57.6 whose type takes a string (str, an enum or
 * Literal of strings, or a union with one) and no bool, by the dataclass that declares it. Not `fsdp`: its type does
 * not say so, but TrainingArguments takes `fsdp: true` (full_shard). test/config.test.ts checks this list against the
 * installed LLaMA-Factory's type hints, so an upgrade that adds or retypes a key shows up there.
 */
export const LF_STRING_KEYS: ReadonlySet<string> = new Set([
  // ModelArguments
  'adapter_folder', 'adapter_name_or_path', 'add_special_tokens', 'add_tokens', 'cache_dir', 'export_device',
  'export_dir', 'export_hub_model_id', 'export_quantization_dataset', 'flash_attn', 'hf_hub_token', 'infer_backend',
  'infer_dtype', 'init_special_tokens', 'kt_expert_checkpoint_path', 'kt_weight_path', 'mixture_of_depths',
  'model_name_or_path', 'model_revision', 'ms_hub_token', 'new_special_tokens_config', 'offload_folder',
  'om_hub_token', 'quantization_device_map', 'quantization_method', 'quantization_type', 'rope_scaling',
  'sglang_config', 'sglang_lora_backend', 'vllm_config',
  // DataArguments
  'dataset', 'dataset_dir', 'default_system', 'eval_dataset', 'interleave_probs', 'media_dir', 'mix_strategy',
  'template', 'tokenized_path', 'tool_format',
  // FinetuningArguments
  'additional_target', 'apollo_proj', 'apollo_proj_type', 'apollo_scale_type', 'apollo_target', 'badam_mask_mode',
  'badam_mode', 'badam_switch_mode', 'finetuning_type', 'freeze_extra_modules', 'freeze_trainable_modules',
  'galore_proj_type', 'galore_target', 'hyper_parallel_args', 'lora_target', 'oft_target', 'pref_loss', 'ref_model',
  'ref_model_adapters', 'reward_model', 'reward_model_adapters', 'reward_model_type', 'stage', 'swanlab_api_key',
  'swanlab_lark_secret', 'swanlab_lark_webhook_url', 'swanlab_logdir', 'swanlab_mode', 'swanlab_project',
  'swanlab_run_name', 'swanlab_workspace',
  // TrainingArguments
  'accelerator_config', 'ddp_backend', 'debug', 'deepspeed', 'eval_strategy', 'fp16_backend', 'fp16_opt_level',
  'fp8_backend', 'fsdp_config', 'fsdp_transformer_layer_cls_to_wrap', 'generation_config',
  'gradient_checkpointing_kwargs', 'half_precision_backend', 'hub_model_id', 'hub_revision', 'hub_strategy',
  'hub_token', 'length_column_name', 'log_level', 'log_level_replica', 'logging_dir', 'logging_strategy',
  'lr_scheduler_kwargs', 'lr_scheduler_type', 'master_addr', 'master_port', 'metric_for_best_model', 'mp_parameters',
  'optim', 'optim_args', 'optim_target_modules', 'output_dir', 'profile_modules', 'profiler_output_dir', 'project',
  'push_to_hub_model_id', 'push_to_hub_organization', 'push_to_hub_token', 'ray_init_kwargs', 'ray_scope',
  'report_to', 'resume_from_checkpoint', 'run_name', 'save_strategy', 'torch_compile_backend', 'torch_compile_mode',
  'torchdynamo', 'trackio_space_id',
])

/** The YAML 1.1 words that are booleans there but strings in YAML 1.2 and in most people's intent. */
const YAML11_WORDS = /^(?:yes|no|on|off)$/i

/** What the user wrote for a key: the scalar's text, and whether it came from a `key=value` override. */
export interface WrittenValue {
  readonly text: string | undefined
  readonly override: boolean
}

/** Refuses a boolean for a key LLaMA-Factory types as a string. */
export function checkStringKeys(lf: Record<string, unknown>, ctx: PrecheckContext, written: (key: string) => WrittenValue): void {
  for (const [key, value] of Object.entries(lf)) {
    if (typeof value !== 'boolean' || !LF_STRING_KEYS.has(key)) continue
    const { text, override } = written(key)
    const word = text ?? String(value)
    const yaml11 = text !== undefined && YAML11_WORDS.test(text)
    const why = yaml11 ? `: YAML 1.1, which LLaMA-Factory reads configs with, turns an unquoted ${word} into ${String(value)}` : ''
    const quoted = override ? `'${key}="${word}"'` : `${key}: "${word}"`
    const hint =
      key === 'resume_from_checkpoint'
        ? 'give a checkpoint folder, or run `dataflex train --resume` to continue from the last checkpoint'
        : yaml11
          ? `quote it: ${quoted}`
          : `write a string; quote it if you mean the word: ${quoted}`
    throw new ConfigError('bad_value', `bad value for '${key}' (${ctx.where(key)}): ${String(value)}, a boolean, where LLaMA-Factory expects a string${why}`, {
      key,
      hint,
    })
  }
}
