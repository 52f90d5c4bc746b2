// `npm run lint:cycles` (and the first check of scripts/test.mjs): any import cycle is an error.
// Type-only imports count too: a type shared both ways couples two modules' designs just as much, and a cycle
// through types alone is cheap to break (move the types into a module of their own, as src/trainers/events.ts).
//
// Parser: swc. dependency-cruiser reads .ts through the TypeScript compiler API only for TypeScript < 7 (this
// project uses 7), and with neither it silently cruises nothing and reports no cycles; so load swc here and fail
// loudly when it is missing.
try {
  require('@swc/core')
} catch (err) {
  throw new Error(`dependency-cruiser needs @swc/core to read TypeScript (run npm install): ${err.message}`)
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: move what both sides need into a module of its own.',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    // The bad-input corpus holds a strategy file that does not parse, on purpose.
    exclude: { path: '^test/fixtures/bad/' },
  },
}
