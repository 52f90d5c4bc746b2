/** Line splitting and a bounded ring of recent lines (the sidecar's stderr tail). */

/** Feeds chunks, calls `onLine` per complete line; a partial last line waits for more (or `flush`). */
export class LineSplitter {
  private partial = ''

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string): void {
    const text = this.partial + chunk
    const parts = text.split('\n')
    this.partial = parts.pop() ?? ''
    for (const p of parts) this.onLine(p.endsWith('\r') ? p.slice(0, -1) : p)
  }

  flush(): void {
    if (this.partial !== '') {
      const rest = this.partial
      this.partial = ''
      this.onLine(rest)
    }
  }
}

/** Keeps the last `capacity` lines, each cut to `maxLineLength` so one huge line cannot hog memory. */
export class LineRing {
  private readonly lines: string[] = []

  constructor(
    private readonly capacity = 200,
    private readonly maxLineLength = 4096,
  ) {}

  push(line: string): void {
    this.lines.push(line.length > this.maxLineLength ? `${line.slice(0, this.maxLineLength)}…` : line)
    if (this.lines.length > this.capacity) this.lines.shift()
  }

  /** The last `n` lines joined with newlines. */
  tail(n = this.capacity): string {
    return this.lines.slice(-n).join('\n')
  }
}
