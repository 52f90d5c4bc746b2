export interface Bundle {
  /** True when the bundle exists and every file it was built from is unchanged. */
  isFresh(): boolean
  /** Bundles the entry and records its inputs. */
  build(): Promise<void>
  /** The bundle's file URL. */
  readonly url: string
}
/** An esbuild bundle of `entry` at `out` (both relative to the repository root), stamped with its inputs. */
export function bundleOf(spec: {
  entry: string
  out: string
  recipe: string
  extraInputs?: readonly string[]
  after?: () => Promise<void> | void
}): Bundle
/** True when dist/cli/main.mjs exists and every file it was built from is unchanged. */
export const bundleIsFresh: () => boolean
/** Bundles src/cli/main.ts into dist/cli/main.mjs and records its inputs. */
export const buildBundle: () => Promise<void>
/** The bundle's file URL, built first if stale. */
export function cliBundle(): Promise<string>
