/**
 * Progress on stderr: `[step/total] ████░░ 45% loss 1.234 lr 1.2e-3 phase training ETA 0:32`.
 * On a terminal the line is redrawn in place; elsewhere (CI logs, pipes) a plain line is written every
 * ~5% and at the end, so logs stay short and readable.
 */
import type { ProgressEvent } from '../trainers/events.ts'

export interface ProgressStream {
  write(chunk: string): boolean
  columns?: number
}

export interface ProgressOptions {
  stream: ProgressStream
  isTTY: boolean
  /** Milliseconds clock, injectable for tests. */
  now?: () => number
  barWidth?: number
}

export interface ProgressReporter {
  update(event: ProgressEvent): void
  /** Prints a log line without garbling the bar. */
  log(line: string): void
  /** The run completed: leave its last state on screen (and print it in plain mode if not yet printed). */
  finish(): void
  /** The run failed or stopped: end the bar's line so the error that follows starts on its own. */
  abandon(): void
}

const REDRAW_MS = 100
const PLAIN_EVERY_PERCENT = 5

/** `m:ss`, or `h:mm:ss` from an hour on. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds))
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const ss = String(s).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

/** 1.2e-3 rather than 0.0012: learning rates span decades. */
export function formatLr(lr: number): string {
  return lr === 0 ? '0' : lr.toExponential(1).replace('e+', 'e')
}

export function formatProgressLine(event: ProgressEvent, etaSeconds: number | null, barWidth = 20): string {
  const { step, totalSteps } = event
  const parts: string[] = []
  if (totalSteps > 0) {
    // Before the plan exists (loading) there is no total, so no bar.
    const ratio = Math.min(1, Math.max(0, step / totalSteps))
    const filled = Math.round(ratio * barWidth)
    parts.push(`[${step}/${totalSteps}]`, '█'.repeat(filled) + '░'.repeat(barWidth - filled), `${Math.floor(ratio * 100)}%`)
  }
  if (event.loss !== undefined && Number.isFinite(event.loss)) parts.push(`loss ${event.loss.toFixed(3)}`)
  if (event.lr !== undefined && Number.isFinite(event.lr)) parts.push(`lr ${formatLr(event.lr)}`)
  parts.push(`phase ${event.phase}`)
  if (totalSteps > 0) parts.push(`ETA ${etaSeconds === null ? '--:--' : formatDuration(etaSeconds)}`)
  return parts.join(' ')
}

export function createProgress(options: ProgressOptions): ProgressReporter {
  const { stream, isTTY } = options
  const now = options.now ?? (() => performance.now())
  const barWidth = options.barWidth ?? 20
  let last: ProgressEvent | undefined
  // Rate is measured from the first event with a known total, so model loading does not inflate the ETA.
  let origin: { step: number; at: number } | undefined
  let drawnAt = Number.NEGATIVE_INFINITY
  let onScreen = false
  let lastBucket = -1
  let printedFinal = false

  const eta = (event: ProgressEvent): number | null => {
    if (origin === undefined || event.step <= origin.step || event.totalSteps <= 0) return null
    const perStep = (now() - origin.at) / 1000 / (event.step - origin.step)
    return perStep * Math.max(0, event.totalSteps - event.step)
  }

  const fit = (line: string): string => {
    const columns = stream.columns
    return columns !== undefined && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line
  }

  const draw = (event: ProgressEvent): void => {
    stream.write(`\r\x1b[2K${fit(formatProgressLine(event, eta(event), barWidth))}`)
    onScreen = true
    drawnAt = now()
  }

  const clear = (): void => {
    if (onScreen) stream.write('\r\x1b[2K')
    onScreen = false
  }

  return {
    update(event) {
      const previous = last
      last = event
      if (event.totalSteps > 0 && (origin === undefined || event.step < origin.step)) {
        origin = { step: event.step, at: now() }
      }
      const done = event.totalSteps > 0 && event.step >= event.totalSteps
      if (isTTY) {
        const changed = previous === undefined || previous.phase !== event.phase || done
        if (changed || now() - drawnAt >= REDRAW_MS) draw(event)
        return
      }
      if (event.totalSteps <= 0) return
      const bucket = Math.floor((Math.min(event.step, event.totalSteps) / event.totalSteps) * (100 / PLAIN_EVERY_PERCENT))
      if (done && printedFinal) return
      if (bucket > lastBucket || done) {
        lastBucket = bucket
        printedFinal = done
        stream.write(`${formatProgressLine(event, eta(event), barWidth)}\n`)
      }
    },
    log(line) {
      if (isTTY) {
        clear()
        stream.write(`${line}\n`)
        if (last !== undefined) draw(last)
        return
      }
      stream.write(`${line}\n`)
    },
    finish() {
      if (last === undefined) return
      if (isTTY) {
        draw(last)
        stream.write('\n')
        onScreen = false
        return
      }
      if (!printedFinal && last.totalSteps > 0) {
        printedFinal = true
        stream.write(`${formatProgressLine(last, eta(last), barWidth)}\n`)
      }
    },
    abandon() {
      if (isTTY && onScreen) stream.write('\n')
      onScreen = false
    },
  }
}
