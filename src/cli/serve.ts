/**
 * `dataflex serve` (a sidecar for `dataflex train --connect` on other hosts) and `dataflex keys <dir>` (its CURVE
 * keys). docs/remote.md has the set-up; the key rules live in src/bridge/keys.ts and dataflex_bridge/remote.py.
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { checkPlainTcp, checkServerKeys, generateKeys, KeysError, Sidecar } from '../bridge/index.ts'
import { masterPort, torchrunArgs } from '../bridge/launch.ts'
import { checkLaunchSwitches } from '../config/prechecks.ts'
import type { CliIO } from './io.ts'
import { runCommand } from './lifecycle.ts'
import { EXIT_OK, reportError } from './report.ts'

/** `tcp://host:port` (port `*` picks a free one) or `ipc://path`: what the sidecar can bind and a client reach. */
const ENDPOINT_RE = /^(tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5}|\*)|ipc:\/\/\S+)$/

/** A usage-level check of `--bind` / `--connect`, so a typo fails here and not deep inside libzmq. */
export function checkEndpoint(endpoint: string, flag: string): void {
  if (!ENDPOINT_RE.test(endpoint)) {
    throw new KeysError(`${flag} ${endpoint}: expected tcp://<host>:<port> (e.g. tcp://0.0.0.0:5555) or ipc://<path>`)
  }
}

interface ServeOptions {
  readonly bind: string
  readonly keys?: string
  readonly once?: boolean
  readonly clientTimeout: string
}

/** A sidecar that restarts after each run, so every run gets a fresh Python process (and GPU memory). */
function serve(opts: ServeOptions, io: CliIO): Promise<number> {
  return runCommand(io, { what: 'the sidecar' }, async (signal) => {
    checkEndpoint(opts.bind, '--bind')
    checkPlainTcp(opts.bind, opts.keys !== undefined, 'bind')
    const keysDir = opts.keys === undefined ? undefined : resolve(opts.keys)
    const serverKey = keysDir === undefined ? undefined : checkServerKeys(keysDir)
    const timeout = Number(opts.clientTimeout)
    if (!(timeout > 0)) throw new KeysError(`--client-timeout ${opts.clientTimeout}: expected a positive number of seconds`)
    let endpoint = opts.bind
    const launch = checkLaunchSwitches({ env: io.env })
    for (let run = 1; !signal.aborted; run++) {
      const sidecar = new Sidecar({
        endpoint,
        ...(launch === undefined ? {} : { launcher: torchrunArgs(launch, await masterPort(launch)) }),
        args: ['--remote', '--client-timeout', String(timeout), ...(keysDir === undefined ? [] : ['--keys', keysDir])],
        // The operator watches this terminal: the sidecar's own log goes there as it comes.
        log: (e) => {
          if (e.source === 'sidecar' || e.level === 'error') io.stderr.write(`${e.message}\n`)
        },
      })
      const stop = (): void => void sidecar.stop({ graceMs: 2_000 })
      signal.addEventListener('abort', stop, { once: true })
      try {
        const ready = await sidecar.start()
        if (run === 1) {
          endpoint = ready.endpoint // a `*` port stays the same for the next runs
          const security = serverKey === undefined ? 'plain tcp, loopback only' : `CURVE, server public key ${serverKey}`
          io.stdout.write(`dataflex serve: listening on ${endpoint} (${security}); one run at a time, Ctrl-C to stop\n`)
        }
        const exit = await sidecar.exited
        if (signal.aborted) break
        const how = exit.exitCode === 0 ? 'run finished' : `sidecar ended (exit code ${exit.exitCode ?? exit.signal})`
        if (opts.once) {
          io.stdout.write(`dataflex serve: ${how}; exiting (--once)\n`)
          break
        }
        io.stdout.write(`dataflex serve: ${how}; starting a fresh sidecar for the next run\n`)
      } finally {
        signal.removeEventListener('abort', stop)
        await sidecar.stop({ graceMs: 2_000 })
      }
    }
  })
}

function keys(dir: string, io: CliIO): number {
  try {
    const made = generateKeys(dir)
    io.stdout.write(
      [
        `wrote CURVE keys to ${dir} (folder 0700, files 0600)`,
        `  server public key: ${made.serverPublic}`,
        `  client public key: ${made.clientPublic} (listed in authorized_clients)`,
        `GPU host (dataflex serve --keys ${dir}) needs: server.public, server.secret, authorized_clients`,
        `client (dataflex train --connect ... --keys ${dir}) needs: server.public, client.public, client.secret`,
        'copy them with their permissions (e.g. scp -p) and keep the folders private',
        '',
      ].join('\n'),
    )
    return EXIT_OK
  } catch (err) {
    return reportError(io, err)
  }
}

export function registerRemote(program: Command, ctx: { io: CliIO; done: (code: number) => void }): void {
  program
    .command('serve')
    .description('run the Python sidecar for `dataflex train --connect` (e.g. in the Docker image on a GPU host)')
    .option('--bind <endpoint>', 'where to listen: tcp://<host>:<port>; without --keys only loopback', 'tcp://127.0.0.1:5555')
    .option('--keys <dir>', 'CURVE key folder from `dataflex keys <dir>`: encrypt, and accept only its authorised clients')
    .option('--once', 'exit after one run instead of serving the next')
    .option('--client-timeout <seconds>', 'end a run whose client has been silent this long', '60')
    .action(async (options: ServeOptions) => {
      ctx.done(await serve(options, ctx.io))
    })

  program
    .command('keys')
    .description('create a folder with CURVE key pairs for `dataflex serve` and `dataflex train --connect`')
    .argument('<dir>', 'new folder for the keys (created 0700)')
    .action((dir: string) => {
      ctx.done(keys(dir, ctx.io))
    })
}
