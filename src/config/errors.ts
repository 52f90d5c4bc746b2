export type ConfigErrorCode =
  | 'unknown_key'
  | 'bad_value'
  | 'yaml_syntax'
  | 'file_not_found'
  | 'model_not_found'
  | 'dataset_not_found'
  | 'bad_dataset'
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

/** The string `code` an error carries, if any. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : undefined
}

/** Bad input: a ConfigError, or any error that labels itself 'config_error' (e.g. LLaMA-Factory rejecting a key). */
export function isBadInput(err: unknown): boolean {
  return err instanceof ConfigError || errorCode(err) === 'config_error'
}
