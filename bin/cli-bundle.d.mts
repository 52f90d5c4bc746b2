/** True when dist/cli/main.mjs exists and every file it was built from is unchanged. */
export function bundleIsFresh(): boolean
/** Bundles src/cli/main.ts into dist/cli/main.mjs and records its inputs. */
export function buildBundle(): Promise<void>
/** The bundle's file URL, built first if stale. */
export function cliBundle(): Promise<string>
