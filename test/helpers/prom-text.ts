/** Reads one sample's value from Prometheus text exposition. */
export function sampleValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const found: Record<string, string> = {}
    for (const [, k, v] of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[k] = v
    const keys = Object.keys(labels)
    if (keys.length === Object.keys(found).length && keys.every((k) => found[k] === labels[k])) return Number(m[4])
  }
  return undefined
}

/** All `le` buckets of a histogram series, cumulative, in order. */
export function buckets(text: string, name: string, labels: Record<string, string>): Array<[number, number]> {
  const out: Array<[number, number]> = []
  const re = new RegExp(`^${name}_bucket\\{(.*)\\} (\\S+)$`)
  for (const line of text.split('\n')) {
    const m = re.exec(line)
    if (!m) continue
    const found: Record<string, string> = {}
    for (const [, k, v] of m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[k] = v
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) out.push([found.le === '+Inf' ? Infinity : Number(found.le), Number(m[2])])
  }
  return out
}

/** Prometheus's histogram_quantile, on cumulative buckets (linear within a bucket). */
export function histogramQuantile(q: number, b: Array<[number, number]>): number {
  const total = b.at(-1)![1]
  const rank = q * total
  for (let i = 0; i < b.length; i++) {
    if (b[i][1] >= rank) {
      if (b[i][0] === Infinity) return b[i - 1][0]
      const lower = i === 0 ? 0 : b[i - 1][0]
      const below = i === 0 ? 0 : b[i - 1][1]
      return lower + ((b[i][0] - lower) * (rank - below)) / (b[i][1] - below)
    }
  }
  return NaN
}
