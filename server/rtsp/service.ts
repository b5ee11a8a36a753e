/**
 * The control plane's side of RTSP: it decides every request the offload's
 * listener parsed (`rtsp.request`) and answers it (`rtsp.respond`). It holds
 * the RTSP sessions — which stream, which tracks with which transport, their
 * keep-alive — and turns them into ordinary sessions of `SessionManager`, so
 * each is also in /v1/sessions with its stats, SDP and metrics, under the same
 * limits (limits.maxSessions, the port pool, destinations.allow applied to the
 * client's address). No media byte comes here: only requests, as text.
 *
 * Methods: reading (DESCRIBE, SETUP, PLAY, PAUSE) are in `reader.ts`;
 * publishing (ANNOUNCE, SETUP with mode=record, RECORD) in `publish.ts`; what
 * both roles share (the sessions, TEARDOWN, GET_PARAMETER, SET_PARAMETER) in
 * `sessions.ts`; OPTIONS here.
 */
import type { Config } from '../../config/index.js';
import type { RtspAnswer, RtspRequestNote } from '../../offload/channel.js';
import { HttpError } from '../errors.js';
import type { OffloadClient } from '../offload.js';
import { RtspAuth } from './auth.js';
import { REASONS, RtspError, type RtspReply } from './messages.js';
import { PUBLISH_METHODS, RtspPublisher } from './publish.js';
import { READER_METHODS, RtspReader, type ReaderDeps } from './reader.js';
import { RtspSessionTable } from './sessions.js';

import { RTSP_WORKER } from '../sessionSupport.js';

export { RTSP_WORKER };

export const SERVER_NAME = 'offcast';

/** A request as the method handlers see it. */
export interface RtspCall {
  note: RtspRequestNote;
  method: string;
  uri: string;
  header(name: string): string | undefined;
  cseq: string;
}

export type MethodHandler = (call: RtspCall) => Promise<RtspReply> | RtspReply;

export interface RtspServiceOptions {
  /** Port to listen on; 0 in the config is "off", the build option 0 is "any free port" (tests). */
  port: number;
  host: string;
  /** Where a 5xx answer's cause goes (the client gets no internals). */
  log?: { warn(obj: object, msg: string): void };
}

export class RtspService {
  private readonly offload: OffloadClient;
  private readonly auth: RtspAuth;
  readonly reader: RtspReader;
  readonly publisher: RtspPublisher;
  /** The RTSP sessions of both roles. */
  readonly sessions: RtspSessionTable;
  private readonly handlers = new Map<string, MethodHandler>();
  /** The listener's port once it listens (null: RTSP off). */
  port: number | null = null;
  private readonly opts: RtspServiceOptions;
  private readonly cfg: Config;
  /** Answers by status, for /metrics. */
  readonly answers: Record<string, number> = {};

  constructor(cfg: Config, offload: OffloadClient, deps: ReaderDeps, opts: RtspServiceOptions) {
    this.cfg = cfg;
    this.offload = offload;
    this.opts = opts;
    this.auth = new RtspAuth(cfg.api.token);
    this.sessions = new RtspSessionTable(cfg);
    this.reader = new RtspReader(cfg, offload, deps, this.sessions);
    this.publisher = new RtspPublisher(cfg, offload, deps, this.sessions);
    this.handlers.set('OPTIONS', () => ({ status: 200, headers: [['Public', [...READER_METHODS, ...PUBLISH_METHODS].join(', ')]] }));
    for (const [m, h] of this.reader.methods()) this.handlers.set(m, h);
    for (const [m, h] of this.publisher.methods()) this.handlers.set(m, h);
    for (const [m, h] of this.sessions.methods()) this.handlers.set(m, h);
    this.handlers.set('SETUP', (c) => (this.publisher.takesSetup(c) ? this.publisher.setup(c) : this.reader.setup(c)));
    offload.on('rtsp.request', (worker, note) => void this.onRequest(worker, note));
    offload.on('rtsp.closed', (_worker, data) => this.sessions.connectionClosed(data.conn));
    // A restarted listener worker lost its connections: their sessions go with them.
    offload.on('worker.exit', (worker) => {
      if (worker !== RTSP_WORKER || this.port === null) return;
      this.sessions.connectionsLost();
      void this.listenAgain();
    });
  }

  async start(): Promise<void> {
    const { port } = await this.offload.request(RTSP_WORKER, 'rtsp.listen', {
      host: this.opts.host,
      port: this.opts.port,
      requestTimeoutMs: this.cfg.rtsp.requestTimeoutMs,
      idleTimeoutMs: this.cfg.rtsp.sessionTimeoutMs,
      maxConnections: this.cfg.rtsp.maxConnections,
    });
    this.port = port;
    this.reader.start(port);
    this.sessions.start();
  }

  private async listenAgain(): Promise<void> {
    // The new worker announces itself ready before this resolves; retry briefly while it starts.
    for (let i = 0; i < 50; i++) {
      try {
        await this.offload.request(RTSP_WORKER, 'rtsp.listen', {
          host: this.opts.host,
          port: this.port!,
          requestTimeoutMs: this.cfg.rtsp.requestTimeoutMs,
          idleTimeoutMs: this.cfg.rtsp.sessionTimeoutMs,
          maxConnections: this.cfg.rtsp.maxConnections,
        });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  close(): void {
    this.sessions.close();
  }

  private async onRequest(worker: number, note: RtspRequestNote): Promise<void> {
    const cseq = note.headers.cseq ?? '';
    const call: RtspCall = { note, method: note.method, uri: note.uri, header: (n) => note.headers[n], cseq };
    let r: RtspReply;
    try {
      if (!/^[0-9]{1,10}$/.test(cseq)) throw new RtspError(400, 'a request needs a CSeq header');
      const handler = this.handlers.get(note.method);
      if (handler === undefined) {
        r = { status: 501, headers: [['Public', [...READER_METHODS, ...PUBLISH_METHODS].join(', ')]] };
      } else if (note.method !== 'OPTIONS' && !this.auth.check(note.method, note.headers.authorization)) {
        r = { status: 401, headers: this.auth.challenges().map((c): [string, string] => ['WWW-Authenticate', c]) };
      } else {
        r = await handler(call);
      }
    } catch (err) {
      r = errorReply(err);
      if (r.status >= 500) this.opts.log?.warn({ method: note.method, uri: note.uri, status: r.status, cause: (err as Error).message }, 'RTSP request failed');
    }
    this.answers[r.status] = (this.answers[r.status] ?? 0) + 1;
    const headers: [string, string][] = [];
    if (cseq !== '') headers.push(['CSeq', cseq]);
    headers.push(['Server', SERVER_NAME], ...r.headers);
    if (r.status >= 400 && r.body === undefined && r.message !== undefined) {
      // The reason in words, for people reading a client's log (RTSP has no error format).
      headers.push(['Content-Type', 'text/plain']);
      r.body = r.message + '\n';
    }
    const answer: RtspAnswer = { conn: note.conn, seq: note.seq, status: r.status, reason: REASONS[r.status] ?? 'Error', headers };
    if (r.body !== undefined) answer.body = r.body;
    if (r.close === true) answer.close = true;
    try {
      await this.offload.request(worker, 'rtsp.respond', answer);
    } catch {
      // The worker stopped: its connections are gone.
    }
  }
}

/** The RTSP answer to an error a handler threw: HTTP statuses of the shared code map onto RTSP's. */
export function errorReply(err: unknown): RtspReply {
  if (err instanceof RtspError) return { status: err.status, headers: err.headers, message: err.message };
  if (err instanceof HttpError || (err instanceof Error && typeof (err as { statusCode?: unknown }).statusCode === 'number')) {
    const status = (err as unknown as { statusCode: number }).statusCode;
    const mapped = REASONS[status] !== undefined && status !== 500 ? status : status >= 500 ? 503 : 400;
    // Offload 500s carry raw causes (paths, errno): not for the client.
    return { status: mapped, headers: [], message: status >= 500 && !(err instanceof HttpError) ? 'internal error' : err.message };
  }
  return { status: 500, headers: [], message: 'internal error' };
}
