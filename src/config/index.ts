export { ConfigError, isConfigError, type ConfigErrorCode, type ConfigErrorOptions } from './errors.ts'
export { CONFIG_OBJECT, loadConfig, loadConfigObject, type ConfigOverrides, type LoadedConfig, type LoadOptions } from './load.ts'
export { loadLfArgNames, type LfArgNames, type LfArgNamesOptions } from './lf-args.ts'
export {
  ComponentPresetSchema,
  ComponentsBlockSchema,
  DATAFLEX_KEYS,
  DataflexConfigRulesSchema,
  DataflexConfigSchema,
  MixtureSampleRuleSchema,
  TrainTypeSchema,
  splitNames,
  type ComponentsBlock,
  type DataflexConfig,
  type DataflexConfigInput,
  type MixtureSampleRule,
  type TrainType,
} from './schema.ts'
export { closest, didYouMean, editDistance } from './suggest.ts'
export { parseOverrideValue, parsePythonYaml, YamlSyntaxError, type ParsedYaml } from './yaml.ts'
