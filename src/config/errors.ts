export type ConfigErrorCode =
  | 'unknown_key'
  | 'bad_value'
  | 'yaml_syntax'
  | 'file_not_found'
  | 'model_not_found'
  | 'dataset_not_found'
  | 'unsupported'

export interface ConfigErrorOptions {
  /** The config key at fault (dotted for nested keys). */
  key?: string
  /** One short line telling the user what to do, e.g. "did you mean 'update_step'?". */
  hint?: string
  cause?: unknown
}

/** A problem with the user's input: the CLI prints it as one line and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code: ConfigErrorCode
  readonly key: string | undefined
  readonly hint: string | undefined

  constructor(code: ConfigErrorCode, message: string, options: ConfigErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.key = options.key
    this.hint = options.hint
  }
}

export function isConfigError(err: unknown): err is ConfigError {
  return err instanceof ConfigError
}
