#!/usr/bin/env node
// Runs the CLI from its bundle (bin/cli-bundle.mjs: rebuilt from src/ when stale, so there is no build step).
// Paths are relative to this file, so `npx dataflex` works from any directory.
import { cliBundle } from './cli-bundle.mjs'

let entry
try {
  entry = await cliBundle()
} catch (err) {
  if (!['EACCES', 'EROFS', 'EPERM'].includes(err?.code)) throw err
  // A read-only checkout with edited sources: run them through tsx instead (slower start, more memory).
  console.error(`dataflex: cannot write dist/cli (${err.code}); running the TypeScript sources through tsx`)
  const { register } = await import('tsx/esm/api')
  register()
  entry = new URL('../src/cli/main.ts', import.meta.url).href
}
const { main } = await import(entry)
const code = await main(process.argv.slice(2))
process.exitCode = code
// A run that leaked a handle must not keep the shell waiting once the result is printed.
setTimeout(() => process.exit(code), 2000).unref()
