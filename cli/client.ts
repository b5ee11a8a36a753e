/**
 * The CLI's view of the HTTP API: one base URL, the bearer token, and errors
 * turned into one line (the API's code and message) instead of a stack.
 */

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export interface RequestOptions {
  json?: unknown;
  body?: NonNullable<RequestInit['body']>;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

export class ApiClient {
  readonly base: string;
  private readonly token: string | undefined;

  constructor(base: string, token: string | undefined) {
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw new CliError(`--server ${JSON.stringify(base)} is not a URL (e.g. http://127.0.0.1:8080)`, 2);
    }
    this.base = url.href.replace(/\/$/, '');
    this.token = token === '' ? undefined : token;
  }

  get host(): string {
    return new URL(this.base).hostname.replace(/^\[|\]$/g, '');
  }

  /** The raw response of a successful request; a non-2xx answer throws CliError with the API's message. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    const qs = opts.query ? '?' + new URLSearchParams(opts.query).toString() : '';
    let res: Response;
    try {
      const init: RequestInit & { duplex?: 'half' } = { method, headers, body };
      if (body instanceof ReadableStream) init.duplex = 'half';
      res = await fetch(this.base + path + qs, init);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    if (!res.ok) throw await apiError(res);
    return res;
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
}

async function apiError(res: Response): Promise<CliError> {
  const text = await res.text().catch(() => '');
  try {
    const e = JSON.parse(text) as { code?: string; message?: string };
    if (typeof e.message === 'string') return new CliError(`${res.status} ${e.code ?? ''}: ${e.message}`.replace(' :', ':'));
  } catch {
    // not the API's error shape: fall through
  }
  return new CliError(`${res.status} ${res.statusText}${text ? ': ' + text.slice(0, 200) : ''}`);
}
