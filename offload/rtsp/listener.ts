/**
 * The RTSP listener, run by one offload worker: it terminates the TCP
 * connections, parses requests (`parser.ts`) and asks the control plane to
 * decide each one (`rtsp.request` notification, answered by `rtsp.respond`),
 * as the record path's slow path asks about a new flow. Media never leaves the
 * offload: interleaved RTP goes from the play and live tracks of this worker
 * straight into the connection (`interleaved.ts`), and interleaved RTCP from
 * the client goes to the track it belongs to.
 *
 * Requests of one connection reach the control plane one at a time and in
 * order (a pipelined PLAY must follow its SETUP); the next goes when the
 * previous is answered. A connection that sends a malformed or oversized
 * request is answered (400, 413, 505) and closed; one whose request does not
 * complete within `requestTimeoutMs` (slowloris), or that stays idle without
 * a session for `idleTimeoutMs`, is closed (one whose answers named a session
 * stays: its client may keep the session alive by RTCP alone).
 */
import net, { type Server, type Socket } from 'node:net';
import type { RtspAnswer, RtspListenParams, RtspRequestNote, RtspWorkerStats } from '../channel.js';
import { RtspParser, RtspParseError, type RtspRequest, type RtspSink } from './parser.js';
import { InterleavedWriter, type FlushList } from './interleaved.js';

/** Requests parsed but not yet answered, per connection; beyond it the connection stops reading. */
const MAX_QUEUED = 16;

/** What receives interleaved frames of a channel (a track's RTCP). */
export interface InterleavedReceiver {
  receive(buf: Buffer, off: number, len: number): void;
}

export interface ListenerHooks {
  request(note: RtspRequestNote): void;
  closed(conn: number, reason: string): void;
}

export class RtspConnection implements RtspSink {
  readonly id: number;
  readonly socket: Socket;
  readonly writer: InterleavedWriter;
  private readonly listener: RtspListener;
  private readonly parser: RtspParser;
  private readonly queue: RtspRequestNote[] = [];
  private nextSeq = 0;
  /** The request the control plane is deciding (-1: none). */
  private inFlight = -1;
  private readonly receivers = new Map<number, InterleavedReceiver>();
  /** The control plane said a session lives on this connection: no idle close. */
  private startedAt = 0;
  private lastByte = performance.now();
  closed = false;
  private closing = false;
  /** Requests and frames completed (the slowloris clock restarts with each). */
  private messages = 0;
  /** An answer named an RTSP session: the client has state here, the connection never idles out. */
  private hasSession = false;

  constructor(id: number, socket: Socket, listener: RtspListener) {
    this.id = id;
    this.socket = socket;
    this.listener = listener;
    this.writer = new InterleavedWriter(socket, listener);
    this.parser = new RtspParser(this);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.destroy('socket error'));
    socket.on('close', () => this.destroy('closed by the client'));
    socket.on('end', () => socket.end());
  }

  private onData(chunk: Buffer): void {
    // After a refused request nothing more is read: the answer is on its way, then the close.
    if (this.closing || this.closed) return;
    const done = this.messages;
    this.lastByte = performance.now();
    try {
      this.parser.feed(chunk);
    } catch (err) {
      if (!(err instanceof RtspParseError)) throw err;
      this.listener.stats.badRequests++;
      this.fail(err.status, err.message);
      return;
    }
    // The clock of the message in progress (slowloris) starts with its first byte: now, unless the
    // one it started with is still incomplete. A stream of frames whose segments end mid-frame
    // completes messages all the time, so its clock keeps restarting.
    if (this.parser.pending === 0) this.startedAt = 0;
    else if (this.startedAt === 0 || this.messages !== done) this.startedAt = this.lastByte;
  }

  request(req: RtspRequest): void {
    this.messages++;
    this.listener.stats.requests++;
    const headers: Record<string, string> = {};
    for (const [k, v] of req.headers) headers[k] = v;
    const remote = this.socket.remoteAddress ?? '';
    this.queue.push({
      conn: this.id,
      seq: this.nextSeq++,
      method: req.method,
      uri: req.uri,
      headers,
      body: req.body.toString('utf8'),
      peer: { address: remote, port: this.socket.remotePort ?? 0, family: this.socket.remoteFamily === 'IPv6' ? 6 : 4 },
      local: { address: this.socket.localAddress ?? '', port: this.socket.localPort ?? 0 },
    });
    if (this.queue.length >= MAX_QUEUED) this.socket.pause();
    this.next();
  }

  frame(channel: number, buf: Buffer, off: number, len: number): void {
    this.messages++;
    const r = this.receivers.get(channel);
    if (r === undefined) {
      this.listener.stats.unknownChannel++;
      return;
    }
    r.receive(buf, off, len);
  }

  /** Sends the next queued request to the control plane, if none is being decided. */
  private next(): void {
    if (this.inFlight >= 0 || this.closed || this.closing) return;
    const note = this.queue.shift();
    if (note === undefined) return;
    this.inFlight = note.seq;
    this.writer.hold();
    if (this.queue.length < MAX_QUEUED / 2 && this.socket.isPaused()) this.socket.resume();
    this.listener.hooks.request(note);
  }

  /** Writes the control plane's answer; false when the connection is gone or the answer is stale. */
  respond(a: RtspAnswer): boolean {
    if (this.closed || a.seq !== this.inFlight) return false;
    this.inFlight = -1;
    if (!this.hasSession && a.headers.some(([k]) => k === 'Session')) this.hasSession = true;
    this.writeResponse(a.status, a.reason, a.headers, a.body ?? '');
    if (a.close === true) {
      this.closing = true;
      this.socket.end();
      return true;
    }
    this.next();
    return true;
  }

  private writeResponse(status: number, reason: string, headers: [string, string][], body: string): void {
    // What was staged while the request was decided goes right after the answer (unhold).
    this.writer.flush();
    let head = `RTSP/1.0 ${status} ${reason}\r\n`;
    for (const [k, v] of headers) head += `${k}: ${v}\r\n`;
    const bytes = Buffer.byteLength(body);
    if (bytes > 0) head += `Content-Length: ${bytes}\r\n`;
    head += '\r\n';
    this.socket.write(bytes > 0 ? head + body : head);
    this.writer.unhold();
  }

  /** A request the listener refuses by itself (malformed, too large, too slow): answer, close. */
  fail(status: number, message: string): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    const reason = REASONS[status] ?? 'Bad Request';
    this.writeResponse(
      status,
      reason,
      [
        ['Connection', 'close'],
        ['Content-Type', 'text/plain'],
      ],
      message + '\n',
    );
    this.socket.end();
    // A peer that does not read its answer must not hold the socket open.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  bind(channel: number, r: InterleavedReceiver): void {
    this.receivers.set(channel, r);
  }

  unbind(channel: number, r: InterleavedReceiver): void {
    if (this.receivers.get(channel) === r) this.receivers.delete(channel);
  }

  /** Called every second: closes a connection whose request is too slow, or that idles. */
  checkTimeouts(now: number, p: RtspListenParams): void {
    if (this.closed) return;
    if (this.startedAt > 0 && now - this.startedAt > p.requestTimeoutMs) {
      this.listener.stats.timeouts++;
      this.fail(408, 'request timeout');
      return;
    }
    if (!this.hasSession && this.receivers.size === 0 && this.inFlight < 0 && this.queue.length === 0 && now - this.lastByte > p.idleTimeoutMs) {
      this.listener.stats.timeouts++;
      this.destroy('idle');
    }
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.close();
    this.receivers.clear();
    this.queue.length = 0;
    this.socket.destroy();
    this.listener.forget(this, reason);
  }
}

export class RtspListener implements FlushList {
  readonly hooks: ListenerHooks;
  readonly connections = new Map<number, RtspConnection>();
  readonly stats: RtspWorkerStats = {
    connections: 0,
    connectionsTotal: 0,
    refused: 0,
    requests: 0,
    badRequests: 0,
    timeouts: 0,
    unknownChannel: 0,
    interleavedPackets: 0,
    interleavedDropped: 0,
  };
  private server: Server | null = null;
  private nextId = 0;
  private readonly dirtyWriters: InterleavedWriter[] = [];
  private flushScheduled = false;
  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
  private timer: NodeJS.Timeout | null = null;
  private maxConnections = Infinity;
  /** Interleaved totals of connections that are gone. */
  private retired = { packets: 0, dropped: 0 };

  constructor(hooks: ListenerHooks) {
    this.hooks = hooks;
  }

  async listen(p: RtspListenParams): Promise<number> {
    if (this.server !== null) throw new Error('the RTSP listener is already running');
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: p.host, port: p.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.maxConnections = p.maxConnections;
    this.timer = setInterval(
      () => {
        const now = performance.now();
        for (const c of this.connections.values()) c.checkTimeouts(now, p);
      },
      Math.max(50, Math.min(1000, Math.floor(Math.min(p.requestTimeoutMs, p.idleTimeoutMs) / 4))),
    );
    this.timer.unref();
    const addr = server.address();
    return typeof addr === 'object' && addr !== null ? addr.port : p.port;
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= this.maxConnections) {
      // Full: say so (no CSeq: nothing was asked yet) and close. The socket is gone within a
      // second even if the peer never reads, so a flood of connections holds no descriptors.
      this.stats.refused++;
      socket.on('error', () => socket.destroy());
      socket.end('RTSP/1.0 503 Service Unavailable\r\nServer: offcast\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const id = ++this.nextId;
    this.connections.set(id, new RtspConnection(id, socket, this));
    this.stats.connections++;
    this.stats.connectionsTotal++;
  }

  get(conn: number): RtspConnection | undefined {
    return this.connections.get(conn);
  }

  respond(a: RtspAnswer): boolean {
    return this.connections.get(a.conn)?.respond(a) ?? false;
  }

  forget(c: RtspConnection, reason: string): void {
    if (!this.connections.delete(c.id)) return;
    this.stats.connections--;
    this.retired.packets += c.writer.packets;
    this.retired.dropped += c.writer.dropped;
    this.hooks.closed(c.id, reason);
  }

  /** FlushList: a writer has packets staged this tick. */
  dirty(w: InterleavedWriter): void {
    this.dirtyWriters.push(w);
    // Written outside a tick (RTCP, a live relay): flush after this turn of the event loop.
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
  }

  /** Hands every staged chunk to its socket (once per tick). */
  flush(): void {
    const list = this.dirtyWriters;
    for (let i = 0; i < list.length; i++) list[i]!.flush();
    list.length = 0;
  }

  snapshot(): RtspWorkerStats {
    let packets = this.retired.packets;
    let dropped = this.retired.dropped;
    for (const c of this.connections.values()) {
      packets += c.writer.packets;
      dropped += c.writer.dropped;
    }
    return { ...this.stats, interleavedPackets: packets, interleavedDropped: dropped };
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    for (const c of [...this.connections.values()]) c.destroy('server closing');
    this.server?.close();
    this.server = null;
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  505: 'RTSP Version Not Supported',
};
