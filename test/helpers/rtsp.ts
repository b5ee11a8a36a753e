/**
 * A raw RTSP client for tests: one TCP connection, requests written as text
 * (whole, split, or pipelined), and what comes back parsed independently of
 * the server's parser: responses (status line, headers, body by
 * Content-Length) and `$`-interleaved frames, in arrival order.
 */
import net from 'node:net';
import { createHash } from 'node:crypto';

export interface RtspResponse {
  status: number;
  reason: string;
  headers: Record<string, string>;
  /** Every value of a header that came more than once (WWW-Authenticate). */
  all: Record<string, string[]>;
  body: string;
}

export interface Frame {
  channel: number;
  data: Buffer;
}

export class RawRtsp {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  readonly responses: RtspResponse[] = [];
  readonly frames: Frame[] = [];
  /** Responses and frames in arrival order. */
  readonly order: ('response' | 'frame')[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  private cseq = 0;
  onFrame: ((f: Frame) => void) | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawRtsp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => resolve(new RawRtsp(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private parse(): void {
    for (;;) {
      if (this.buf.length === 0) return;
      if (this.buf[0] === 0x24) {
        if (this.buf.length < 4) return;
        const len = this.buf.readUInt16BE(2);
        if (this.buf.length < 4 + len) return;
        const f = { channel: this.buf[1]!, data: Buffer.from(this.buf.subarray(4, 4 + len)) };
        this.frames.push(f);
        this.order.push('frame');
        this.onFrame?.(f);
        this.buf = this.buf.subarray(4 + len);
        continue;
      }
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^RTSP\/1\.0 (\d{3}) (.*)$/.exec(head[0]!);
      if (m === null) throw new Error(`not an RTSP response: ${JSON.stringify(head[0])}`);
      const headers: Record<string, string> = {};
      const all: Record<string, string[]> = {};
      for (const line of head.slice(1)) {
        const c = line.indexOf(':');
        const k = line.slice(0, c).trim().toLowerCase();
        const v = line.slice(c + 1).trim();
        headers[k] = v;
        (all[k] ??= []).push(v);
      }
      const len = Number(headers['content-length'] ?? 0);
      if (this.buf.length < end + 4 + len) return;
      const body = this.buf.subarray(end + 4, end + 4 + len).toString('utf8');
      this.responses.push({ status: Number(m[1]), reason: m[2]!, headers, all, body });
      this.order.push('response');
      this.buf = this.buf.subarray(end + 4 + len);
    }
  }

  /** Waits until `cond()` holds (checked on every arrival) or the timeout. */
  async until(cond: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.closed && !cond()) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The n-th response (0-based), waiting for it. */
  async response(n: number, timeoutMs = 10000): Promise<RtspResponse> {
    await this.until(() => this.responses.length > n, timeoutMs, `response ${n}`);
    return this.responses[n]!;
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** A request's text with CSeq (and Content-Length for a body). */
  text(method: string, uri: string, headers: Record<string, string> = {}, body = ''): string {
    let s = `${method} ${uri} RTSP/1.0\r\nCSeq: ${++this.cseq}\r\n`;
    for (const [k, v] of Object.entries(headers)) s += `${k}: ${v}\r\n`;
    if (body !== '') s += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
    return s + '\r\n' + body;
  }

  /** Sends one request and waits for its response. */
  async request(method: string, uri: string, headers: Record<string, string> = {}, body = ''): Promise<RtspResponse> {
    const n = this.responses.length;
    this.write(this.text(method, uri, headers, body));
    return this.response(n);
  }

  async waitClosed(timeoutMs = 10000): Promise<void> {
    await this.until(() => this.closed, timeoutMs, 'close');
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The session id of a Session header (`ID;timeout=N`). */
export function sessionId(r: RtspResponse): string {
  const h = r.headers.session;
  if (h === undefined) throw new Error(`no Session header in ${r.status} ${r.reason}`);
  return h.split(';')[0]!;
}

/** RFC 2617 Digest response, computed here independently of the server. */
export function digestResponse(p: {
  user: string;
  realm: string;
  password: string;
  method: string;
  uri: string;
  nonce: string;
  qop?: { nc: string; cnonce: string };
}): string {
  const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
  const ha1 = md5(`${p.user}:${p.realm}:${p.password}`);
  const ha2 = md5(`${p.method}:${p.uri}`);
  return p.qop === undefined ? md5(`${ha1}:${p.nonce}:${ha2}`) : md5(`${ha1}:${p.nonce}:${p.qop.nc}:${p.qop.cnonce}:auth:${ha2}`);
}
