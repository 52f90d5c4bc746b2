/**
 * Wire protocol v1 (docs/protocol.md): the single source of the header types on the TypeScript side.
 * Headers are validated with these schemas before anything else looks at them; array references inside
 * `args` / `result` / `data` are resolved afterwards (frames.ts).
 */
import { z } from 'zod'

export const PROTOCOL_VERSION = 1

/** Error codes that travel in error replies, in both directions. */
export const REMOTE_ERROR_CODES = [
  'bad_header',
  'unknown_op',
  'bad_array',
  'frame_too_large',
  'busy',
  'deadline',
  'config_error',
  'op_failed',
  'protocol_mismatch',
  'cancelled',
  'bad_args',
] as const
export type RemoteErrorCode = (typeof REMOTE_ERROR_CODES)[number]

const Id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const Version = z.number().int().nonnegative()
const Body = z.record(z.string(), z.unknown())

export const RequestHeader = z.object({
  v: Version,
  kind: z.literal('req'),
  id: Id,
  op: z.string().min(1),
  args: Body,
  /** Absolute deadline, Unix epoch milliseconds. */
  deadline_ms: z.number().nonnegative().optional(),
})
export type RequestHeader = z.infer<typeof RequestHeader>

export const OkReplyHeader = z.object({
  v: Version,
  kind: z.literal('res'),
  id: Id,
  ok: z.literal(true),
  result: Body,
})
export type OkReplyHeader = z.infer<typeof OkReplyHeader>

export const ErrorBody = z.object({
  code: z.string(),
  message: z.string(),
  detail: z.string().optional(),
})
export type ErrorBody = z.infer<typeof ErrorBody>

export const ErrorReplyHeader = z.object({
  v: Version,
  kind: z.literal('res'),
  id: Id,
  ok: z.literal(false),
  error: ErrorBody,
})
export type ErrorReplyHeader = z.infer<typeof ErrorReplyHeader>

export const EventHeader = z.object({
  v: Version,
  kind: z.literal('evt'),
  event: z.string().min(1),
  data: Body,
})
export type EventHeader = z.infer<typeof EventHeader>

export type ReplyHeader = OkReplyHeader | ErrorReplyHeader
export type Header = RequestHeader | ReplyHeader | EventHeader

/** Result of the built-in `hello` op (the handshake). */
export const HelloResult = z.object({
  protocol: z.number().int(),
  pid: z.number().int().positive(),
  versions: z.object({
    python: z.string().nullable(),
    torch: z.string().nullable(),
    transformers: z.string().nullable(),
    llamafactory: z.string().nullable(),
    bridge: z.string().nullable(),
  }),
  device: z.string(),
  world_size: z.number().int().positive(),
  max_frame_bytes: z.number().int().positive(),
  ops: z.array(z.string()),
  executor: z.object({
    status: z.enum(['loaded', 'absent', 'disabled', 'failed']),
    error: z.string().nullable(),
  }),
})
export type HelloResult = z.infer<typeof HelloResult>

export const PingResult = z.object({ busy: z.string().nullable() })
export type PingResult = z.infer<typeof PingResult>

/** What can be read off a header that failed validation, to route an error. */
export interface HeaderPeek {
  readonly v: number | undefined
  readonly kind: unknown
  readonly id: number | undefined
}

export function peekHeader(raw: unknown): HeaderPeek {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { v: undefined, kind: undefined, id: undefined }
  }
  const r = raw as Record<string, unknown>
  const id = Id.safeParse(r.id)
  const v = Version.safeParse(r.v)
  return { v: v.success ? v.data : undefined, kind: r.kind, id: id.success ? id.data : undefined }
}

/**
 * Validate a decoded header. Returns the typed header or a readable reason.
 * The version is compared by the caller first: a header of another version may be shaped differently.
 */
export function parseHeader(raw: unknown): { ok: true; header: Header } | { ok: false; reason: string } {
  const kind = peekHeader(raw).kind
  let parsed: z.ZodSafeParseResult<Header>
  if (kind === 'req') parsed = RequestHeader.safeParse(raw)
  else if (kind === 'evt') parsed = EventHeader.safeParse(raw)
  else if (kind === 'res') {
    const ok = (raw as Record<string, unknown>).ok
    parsed = ok === false ? ErrorReplyHeader.safeParse(raw) : OkReplyHeader.safeParse(raw)
  } else {
    return { ok: false, reason: `'kind' must be 'req', 'res' or 'evt', got ${JSON.stringify(kind) ?? 'nothing'}` }
  }
  if (parsed.success) return { ok: true, header: parsed.data }
  return { ok: false, reason: formatIssues(parsed.error) }
}

function formatIssues(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : 'header'}: ${i.message}`)
    .join('; ')
}
