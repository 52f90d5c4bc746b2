/**
 * A decision a strategy cannot make (as opposed to bad params, which the registry reports as config errors). Each
 * family keeps its own subclass, with its own codes, so callers can tell a mixer's failure from a selector's.
 */
export class ComponentError<C extends string = string> extends Error {
  readonly code: C
  /** The algorithm (or user strategy) that failed; the message starts with it. */
  readonly component: string

  constructor(component: string, code: C, message: string, options: { cause?: unknown } = {}) {
    super(`${component}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.component = component
  }
}
