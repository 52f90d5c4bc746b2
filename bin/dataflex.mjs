#!/usr/bin/env node
// The CLI runs its TypeScript sources directly (tsx compiles on load), so there is no build step.
// Paths are relative to this file, so `npx dataflex` works from any directory.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../src/cli/main.ts')
const code = await main(process.argv.slice(2))
process.exitCode = code
// A run that leaked a handle must not keep the shell waiting once the result is printed.
setTimeout(() => process.exit(code), 2000).unref()
