/**
 * The CLI's HTTP client for a running prefixd: the URL from --url or
 * PREFIXD_URL, the key from --api-key or PREFIXD_API_KEY sent as
 * `Authorization: Bearer`. Errors come back as OperationError carrying the
 * server's own message and error_type.
 */
import { OperationError } from './io.js'

export interface ServerTarget {
  url: string
  apiKey?: string
}

export class ServerClient {
  private readonly base: string

  constructor(private readonly target: ServerTarget) {
    this.base = target.url.replace(/\/+$/, '')
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.target.apiKey ? { authorization: `Bearer ${this.target.apiKey}` } : {}), ...extra }
  }

  /** JSON (or nothing, for 204) from a route; a non-2xx answer is an OperationError. */
  async request<T>(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string>; duplex?: 'half' } = {}): Promise<T> {
    let res: Response
    try {
      res = await fetch(`${this.base}${path}`, { method, body: init.body, headers: this.headers(init.headers), ...(init.duplex ? { duplex: init.duplex } : {}) } as RequestInit)
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      throw new OperationError(`cannot reach ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`)
    }
    const text = await res.text()
    if (!res.ok) throw new OperationError(`${method} ${path}: ${res.status} ${describeError(text)}`)
    return (text === '' ? undefined : JSON.parse(text)) as T
  }
}

/** "not_found: prefix 'x' not found" from either error shape, or the raw text. */
function describeError(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: string | { message?: string; code?: string }; error_type?: string }
    if (typeof body.error === 'string') return body.error_type ? `${body.error_type}: ${body.error}` : body.error
    if (body.error && typeof body.error === 'object') return `${body.error.code ?? 'error'}: ${body.error.message ?? ''}`
  } catch {
    // Not JSON (a proxy's page): show it as it is.
  }
  return text.slice(0, 500)
}
