/**
 * YAML the way LLaMA-Factory reads it: `OmegaConf.load` / `OmegaConf.from_cli`, i.e. PyYAML's SafeLoader
 * (YAML 1.1 scalars: `yes`/`on` are booleans, `017` is octal, `1:30` is base 60) plus OmegaConf's extra
 * float resolver (`1e-3` is a float, which plain YAML 1.1 reads as a string) and minus timestamps.
 * A config must mean the same thing here as in `llamafactory-cli train`, since every non-DataFlex key
 * is handed to LLaMA-Factory as parsed here.
 */
import { LineCounter, parseDocument, isMap, isScalar, type ScalarTag, type Tags, type YAMLParseError } from 'yaml'

const NULL_TAG = 'tag:yaml.org,2002:null'
const BOOL_TAG = 'tag:yaml.org,2002:bool'
const INT_TAG = 'tag:yaml.org,2002:int'
const FLOAT_TAG = 'tag:yaml.org,2002:float'
const TIMESTAMP_TAG = 'tag:yaml.org,2002:timestamp'
const REPLACED = new Set([NULL_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, TIMESTAMP_TAG])

// Regexes transcribed from PyYAML's resolver.py and omegaconf/_utils.py:get_yaml_loader.
const PY_NULL = /^(?:~|null|Null|NULL|)$/
const PY_BOOL = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/
const PY_FLOAT =
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/
const PY_INT = /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/
const OMEGACONF_FLOAT =
  /^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)|\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?|[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/

function splitSign(text: string): [number, string] {
  if (text.startsWith('-')) return [-1, text.slice(1)]
  if (text.startsWith('+')) return [1, text.slice(1)]
  return [1, text]
}

function base60(body: string, parse: (part: string) => number): number {
  let value = 0
  for (const part of body.split(':')) value = value * 60 + parse(part)
  return value
}

// SafeConstructor.construct_yaml_int
function constructInt(source: string): number {
  const [sign, body] = splitSign(source.replaceAll('_', ''))
  if (body === '0') return 0
  if (body.startsWith('0b')) return sign * Number.parseInt(body.slice(2), 2)
  if (body.startsWith('0x')) return sign * Number.parseInt(body.slice(2), 16)
  if (body.startsWith('0')) return sign * Number.parseInt(body, 8)
  if (body.includes(':')) return sign * base60(body, (p) => Number.parseInt(p, 10))
  return sign * Number.parseInt(body, 10)
}

// SafeConstructor.construct_yaml_float
function constructFloat(source: string): number {
  const [sign, body] = splitSign(source.replaceAll('_', '').toLowerCase())
  if (body === '.inf') return sign * Number.POSITIVE_INFINITY
  if (body === '.nan') return Number.NaN
  if (body.includes(':')) return sign * base60(body, Number)
  return sign * Number(body)
}

function implicit(tag: string, test: RegExp, resolve: (source: string) => unknown): ScalarTag {
  return { tag, default: true, test, resolve: (source) => resolve(source) }
}

// Order matters: PyYAML tries the resolvers registered for a scalar's first character in registration
// order (float before int), and OmegaConf appends its float resolver last.
const PYTHON_SCALARS: ScalarTag[] = [
  implicit(NULL_TAG, PY_NULL, () => null),
  implicit(BOOL_TAG, PY_BOOL, (s) => s.toLowerCase() === 'yes' || s.toLowerCase() === 'true' || s.toLowerCase() === 'on'),
  implicit(FLOAT_TAG, PY_FLOAT, constructFloat),
  implicit(INT_TAG, PY_INT, constructInt),
  implicit(FLOAT_TAG, OMEGACONF_FLOAT, constructFloat),
]

function pythonTags(tags: Tags): Tags {
  const kept = tags.filter((t) => typeof t === 'string' || !(REPLACED.has(t.tag) && t.default === true))
  return [...kept, ...PYTHON_SCALARS]
}

const PARSE_OPTIONS = {
  version: '1.1',
  schema: 'yaml-1.1',
  customTags: pythonTags,
  merge: true,
  uniqueKeys: true, // OmegaConf's loader rejects duplicate keys too
  prettyErrors: true,
} as const

export interface YamlPosition {
  line: number
  col: number
}

export interface ParsedYaml {
  value: unknown
  /** 1-based line of each top-level key, for error messages. */
  keyLines: Map<string, number>
  /** Top-level keys whose value is an unquoted scalar read as a boolean, with its text as written (`no`, `Off`). */
  booleanWords: Map<string, string>
}

export class YamlSyntaxError extends Error {
  override readonly name = 'YamlSyntaxError'
  readonly code = 'yaml_syntax'
  readonly position: YamlPosition | undefined
  readonly sourceLine: string | undefined

  constructor(message: string, position: YamlPosition | undefined, sourceLine: string | undefined, cause: unknown) {
    super(message, { cause })
    this.position = position
    this.sourceLine = sourceLine
  }
}

function toSyntaxError(err: YAMLParseError, text: string): YamlSyntaxError {
  const pos = err.linePos?.[0]
  // prettyErrors appends " at line L, column C:" and a code frame; keep the first clause only.
  const first = (err.message.split('\n')[0] ?? err.message).replace(/ at line \d+, column \d+:?$/, '')
  const sourceLine = pos === undefined ? undefined : text.split(/\r?\n/)[pos.line - 1]
  return new YamlSyntaxError(first, pos === undefined ? undefined : { line: pos.line, col: pos.col }, sourceLine, err)
}

/** Parses one YAML document with LLaMA-Factory's scalar rules. Throws YamlSyntaxError. */
export function parsePythonYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { ...PARSE_OPTIONS, lineCounter })
  const firstError = doc.errors[0]
  if (firstError !== undefined) throw toSyntaxError(firstError, text)
  const keyLines = new Map<string, number>()
  const booleanWords = new Map<string, string>()
  if (isMap(doc.contents)) {
    for (const pair of doc.contents.items) {
      if (isScalar(pair.key) && pair.key.range) {
        keyLines.set(String(pair.key.value), lineCounter.linePos(pair.key.range[0]).line)
        if (isScalar(pair.value) && typeof pair.value.value === 'boolean' && pair.value.source !== undefined) {
          booleanWords.set(String(pair.key.value), pair.value.source)
        }
      }
    }
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: 1000 })
  } catch (err) {
    throw new YamlSyntaxError(err instanceof Error ? err.message : String(err), undefined, undefined, err)
  }
  return { value, keyLines, booleanWords }
}

/** The value half of a `key=value` override, parsed as OmegaConf's dot-list does (`yaml.load(value)`). */
export function parseOverrideValue(text: string): unknown {
  return parsePythonYaml(text).value
}
