/**
 * An incremental RTSP 1.0 (RFC 2326) request parser for one TCP connection.
 * Bytes arrive in segments of any size; `feed()` hands every complete message
 * to the sink as soon as it is whole: requests (request line, headers, body)
 * and `$`-interleaved binary frames (RFC 2326 10.12), mixed in any order and
 * pipelined. A frame that arrives whole inside a segment is passed as a view
 * of that segment (no copy); only a message split across segments is
 * gathered in the parser's own buffer, which is bounded by the limits.
 *
 * Bad input throws `RtspParseError` with the status to answer (400, 413, 505);
 * the connection is then closed, so the parser is dead after an error.
 */

/** Size limits of one request. */
export interface RtspLimits {
  /** Bytes of the request line, its line end included. */
  requestLine: number;
  /** Bytes of the request line and all header lines together. */
  head: number;
  /** Header lines per request. */
  headerCount: number;
  /** Content-Length at most. */
  body: number;
}

export const DEFAULT_LIMITS: RtspLimits = { requestLine: 4096, head: 16384, headerCount: 64, body: 65536 };

export interface RtspRequest {
  method: string;
  uri: string;
  /** Header values by lower-case name; repeated headers joined with ", ". */
  headers: Map<string, string>;
  body: Buffer;
}

export interface RtspSink {
  request(req: RtspRequest): void;
  /** An interleaved frame: `len` bytes at `off` of `buf`, valid only during the call. */
  frame(channel: number, buf: Buffer, off: number, len: number): void;
}

/** Malformed or oversized input: answer `status`, then close the connection. */
export class RtspParseError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'RtspParseError';
    this.status = status;
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CR = 13;
const LF = 10;
const DOLLAR = 36;

export class RtspParser {
  private readonly limits: RtspLimits;
  private readonly sink: RtspSink;
  /** Gathered bytes of an incomplete message (at [0, used)). */
  private buf: Buffer;
  private used = 0;
  private dead = false;
  /** Bytes of an incomplete request seen so far (for the slowloris timeout: a request is in progress). */
  get pending(): number {
    return this.used;
  }

  constructor(sink: RtspSink, limits: RtspLimits = DEFAULT_LIMITS) {
    this.sink = sink;
    this.limits = limits;
    this.buf = Buffer.allocUnsafe(Math.min(16384, this.maxGather()));
  }

  /** The largest message that may be gathered: a whole request, or a whole frame. */
  private maxGather(): number {
    return Math.max(this.limits.head + this.limits.body, 4 + 65535);
  }

  feed(chunk: Buffer): void {
    if (this.dead) throw new RtspParseError(400, 'the connection had a malformed request');
    try {
      let from = 0;
      // An incomplete message waits in the buffer: complete it from this segment first.
      while (this.used > 0 && from < chunk.length) {
        const take = Math.min(chunk.length - from, this.maxGather() - this.used);
        if (take === 0) this.refuseOversized();
        this.keep(chunk, from, from + take);
        from += take;
        const rest = this.consume(this.buf, 0, this.used);
        if (rest > 0) {
          this.buf.copy(this.buf, 0, rest, this.used);
          this.used -= rest;
        }
      }
      if (from === chunk.length) return;
      const rest = this.consume(chunk, from, chunk.length);
      if (rest < chunk.length) this.keep(chunk, rest, chunk.length);
    } catch (err) {
      this.dead = true;
      throw err;
    }
  }

  /** Appends bytes to the gather buffer (the caller keeps within maxGather). */
  private keep(src: Buffer, from: number, to: number): void {
    const need = this.used + (to - from);
    if (need > this.maxGather()) this.refuseOversized();
    if (need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(this.maxGather(), Math.max(need, this.buf.length * 2)));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    src.copy(this.buf, this.used, from, to);
    this.used = need;
  }

  private refuseOversized(): never {
    if (this.buf[0] === DOLLAR) throw new RtspParseError(400, 'interleaved frame too large');
    throw new RtspParseError(413, 'request too large');
  }

  /** Parses every complete message in buf[from, to); returns where the incomplete rest starts. */
  private consume(buf: Buffer, from: number, to: number): number {
    let at = from;
    while (at < to) {
      const b = buf[at]!;
      if (b === CR || b === LF) {
        // Blank lines between messages are allowed (RFC 2326 15.1 keep-alives send them).
        at++;
        continue;
      }
      if (b === DOLLAR) {
        if (to - at < 4) return at;
        const len = buf.readUInt16BE(at + 2);
        if (to - at < 4 + len) return at;
        this.sink.frame(buf[at + 1]!, buf, at + 4, len);
        at += 4 + len;
        continue;
      }
      const next = this.request(buf, at, to);
      if (next < 0) return at;
      at = next;
    }
    return at;
  }

  /** Parses one request at `from`; returns the offset after it, or -1 if it is not complete yet. */
  private request(buf: Buffer, from: number, to: number): number {
    const L = this.limits;
    const lineEnd = buf.indexOf(LF, from);
    if (lineEnd < 0 || lineEnd >= to) {
      if (to - from > L.requestLine) throw new RtspParseError(400, `request line longer than ${L.requestLine} bytes`);
      return -1;
    }
    if (lineEnd + 1 - from > L.requestLine) throw new RtspParseError(400, `request line longer than ${L.requestLine} bytes`);
    // The end of the head: an empty line (CRLF CRLF, or bare LFs).
    let headEnd = -1;
    let bodyAt = -1;
    let p = lineEnd + 1;
    while (p < to) {
      const nl = buf.indexOf(LF, p);
      if (nl < 0 || nl >= to) break;
      const lineLen = nl - p;
      if (lineLen === 0 || (lineLen === 1 && buf[p] === CR)) {
        headEnd = p;
        bodyAt = nl + 1;
        break;
      }
      p = nl + 1;
      if (p - from > L.head) throw new RtspParseError(400, `request headers longer than ${L.head} bytes`);
    }
    if (headEnd < 0) {
      if (to - from > L.head) throw new RtspParseError(400, `request headers longer than ${L.head} bytes`);
      return -1;
    }
    if (headEnd - from > L.head) throw new RtspParseError(400, `request headers longer than ${L.head} bytes`);
    const head = buf.toString('latin1', from, headEnd);
    const lines = head.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    const [method, uri] = parseRequestLine(lines[0]!);
    const headers = new Map<string, string>();
    let count = 0;
    let last = '';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      if (line[0] === ' ' || line[0] === '\t') {
        // Obsolete line folding: the value continues.
        if (last === '') throw new RtspParseError(400, 'a header continuation line comes first');
        headers.set(last, `${headers.get(last)!} ${line.trim()}`);
        continue;
      }
      if (++count > L.headerCount) throw new RtspParseError(400, `more than ${L.headerCount} headers`);
      const colon = line.indexOf(':');
      if (colon <= 0) throw new RtspParseError(400, `malformed header line ${JSON.stringify(line.slice(0, 64))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!TOKEN.test(name)) throw new RtspParseError(400, `malformed header name ${JSON.stringify(name.slice(0, 64))}`);
      const value = line.slice(colon + 1).trim();
      const prev = headers.get(name);
      headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
      last = name;
    }
    let length = 0;
    const cl = headers.get('content-length');
    if (cl !== undefined) {
      if (!/^[0-9]{1,10}$/.test(cl)) throw new RtspParseError(400, `malformed Content-Length ${JSON.stringify(cl.slice(0, 32))}`);
      length = Number(cl);
      if (length > L.body) throw new RtspParseError(413, `body of ${length} bytes is over the limit of ${L.body}`);
    }
    if (to - bodyAt < length) return -1;
    // The body is copied: the request outlives this segment (it goes to the control plane).
    const body = Buffer.from(buf.subarray(bodyAt, bodyAt + length));
    this.sink.request({ method, uri, headers, body });
    return bodyAt + length;
  }
}

function parseRequestLine(line: string): [string, string] {
  const parts = line.split(' ');
  if (parts.length !== 3) throw new RtspParseError(400, `malformed request line ${JSON.stringify(line.slice(0, 64))}`);
  const [method, uri, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) throw new RtspParseError(400, `malformed method ${JSON.stringify(method.slice(0, 32))}`);
  if (uri === '' || hasControl(uri)) throw new RtspParseError(400, 'malformed request URI');
  if (!/^RTSP\/[0-9]\.[0-9]$/.test(version)) {
    if (/^RTSP\/[0-9]+\.[0-9]+$/.test(version) || /^HTTP\//.test(version)) throw new RtspParseError(505, `${version} is not supported (RTSP/1.0 only)`);
    throw new RtspParseError(400, `malformed version ${JSON.stringify(version.slice(0, 16))}`);
  }
  if (version !== 'RTSP/1.0') throw new RtspParseError(505, `${version} is not supported (RTSP/1.0 only)`);
  return [method, uri];
}

/** A control character or space (not allowed in a request URI). */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}
