/**
 * CURVE keys for a sidecar on another host (docs/remote.md). One folder holds both key pairs and the sidecar's list
 * of authorised clients; every key is a 40-character z85 string on one line. The sidecar reads `server.*` and
 * `authorized_clients` (python_bridge/dataflex_bridge/remote.py, which checks the same rules); the client reads
 * `client.*` and `server.public`. Every file we read, and the folder, must be private to the user.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join } from 'node:path'
import { curveKeyPair } from 'zeromq'
import { BridgeError } from './errors.ts'

export const KEY_FILES = {
  serverPublic: 'server.public',
  serverSecret: 'server.secret',
  clientPublic: 'client.public',
  clientSecret: 'client.secret',
  authorized: 'authorized_clients',
} as const

/** Bad keys or a bind that needs them: bad input (exit 2), with the file and the fix in the message. */
export class KeysError extends BridgeError {
  declare readonly code: 'config_error'

  constructor(message: string) {
    super('config_error', message)
  }
}

export interface ClientKeys {
  readonly serverKey: string
  readonly publicKey: string
  readonly secretKey: string
}

const Z85_KEY_RE = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/

/** Refuse a file or folder that is not ours or that group/others may access. */
export function checkPrivate(path: string): void {
  let st
  try {
    st = statSync(path)
  } catch {
    throw new KeysError(`${path} does not exist (create the keys with \`dataflex keys <dir>\`)`)
  }
  const uid = process.getuid?.()
  // root (e.g. in the Docker image, with the folder mounted from the host user) can read anything anyway
  if (uid !== undefined && uid !== 0 && st.uid !== uid) {
    throw new KeysError(`${path} belongs to another user (uid ${st.uid}); keys must be owned by the user running dataflex`)
  }
  const mode = st.mode & 0o777
  if ((mode & 0o077) !== 0) {
    const want = st.isDirectory() ? '700' : '600'
    throw new KeysError(`${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); run \`chmod ${want} ${path}\``)
  }
}

function readKey(dir: string, name: string): string {
  const path = join(dir, name)
  checkPrivate(path)
  const key = readFileSync(path, 'utf8').trim()
  if (!Z85_KEY_RE.test(key)) throw new KeysError(`${path}: expected a 40-character z85 key`)
  return key
}

function checkFolder(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new KeysError(`${dir} is not a folder of keys (create one with \`dataflex keys ${dir}\`)`)
  }
  checkPrivate(dir)
}

/** What `dataflex train --connect … --keys <dir>` uses. */
export function loadClientKeys(dir: string): ClientKeys {
  checkFolder(dir)
  return {
    serverKey: readKey(dir, KEY_FILES.serverPublic),
    publicKey: readKey(dir, KEY_FILES.clientPublic),
    secretKey: readKey(dir, KEY_FILES.clientSecret),
  }
}

/** What `dataflex serve --keys <dir>` needs, checked before the sidecar starts; returns the server's public key. */
export function checkServerKeys(dir: string): string {
  checkFolder(dir)
  readKey(dir, KEY_FILES.serverSecret)
  checkPrivate(join(dir, KEY_FILES.authorized))
  return readKey(dir, KEY_FILES.serverPublic)
}

/**
 * Writes fresh server and client key pairs and an `authorized_clients` listing the client, into a new (or empty)
 * 0700 folder, each file 0600. Refuses to overwrite existing keys.
 */
export function generateKeys(dir: string): { serverPublic: string; clientPublic: string } {
  for (const name of Object.values(KEY_FILES)) {
    if (existsSync(join(dir, name))) throw new KeysError(`${join(dir, name)} exists; refusing to overwrite keys (pick a new folder)`)
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700) // mkdir's mode is masked by umask, and an existing folder keeps its own
  const server = curveKeyPair()
  const client = curveKeyPair()
  const write = (name: string, text: string): void => {
    const path = join(dir, name)
    writeFileSync(path, text, { mode: 0o600, flag: 'wx' })
    chmodSync(path, 0o600)
  }
  write(KEY_FILES.serverSecret, `${server.secretKey}\n`)
  write(KEY_FILES.serverPublic, `${server.publicKey}\n`)
  write(KEY_FILES.clientSecret, `${client.secretKey}\n`)
  write(KEY_FILES.clientPublic, `${client.publicKey}\n`)
  write(KEY_FILES.authorized, `# client public keys this sidecar accepts, one per line\n${client.publicKey}\n`)
  return { serverPublic: server.publicKey, clientPublic: client.publicKey }
}

/** The host of a `tcp://host:port` endpoint, or undefined for other transports. */
export function tcpHost(endpoint: string): string | undefined {
  if (!endpoint.startsWith('tcp://')) return undefined
  const rest = endpoint.slice('tcp://'.length)
  const colon = rest.lastIndexOf(':')
  return (colon < 0 ? rest : rest.slice(0, colon)).replace(/^\[|\]$/g, '')
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}

/**
 * Plain tcp (no keys) is loopback only: anyone who reaches the port could run code in the sidecar, and the traffic
 * (data, weights) would cross the network in the clear. `verb`: what we were about to do, for the message.
 */
export function checkPlainTcp(endpoint: string, withKeys: boolean, verb: 'bind' | 'connect to'): void {
  const host = tcpHost(endpoint)
  if (withKeys || host === undefined || isLoopback(host)) return
  throw new KeysError(
    `refusing to ${verb} ${endpoint} without keys: plain tcp is for loopback only (127.0.0.1). ` +
      'Pass --keys <dir> (create it with `dataflex keys <dir>`) to encrypt and authenticate the connection',
  )
}
