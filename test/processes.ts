/** The process table, for tests that check no sidecar outlives its run. */
import { existsSync, readdirSync, readFileSync } from 'node:fs'

/** Pids whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {
      // the process went away while we looked
    }
  }
  return out
}

/** Running (not gone, not a zombie). */
export function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/status`)) return false
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return false
  }
}
