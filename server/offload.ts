/**
 * The control plane's side of the offload: starts the worker threads, speaks
 * the channel (requests tracked by id in a Map, responses settle them,
 * notifications fan out as typed events) and counts the binary bytes that cross
 * it — which for media stay 0.
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import {
  binaryBytes,
  OffloadError,
  type Method,
  type Notifications,
  type PeerPortMessage,
  type Requests,
  type WorkerInit,
  type WorkerMessage,
} from '../offload/channel.js';

/**
 * The offload's hot path allocates (nearly) nothing, so its young generation
 * only fills during bursts (a cache load, many sessions created at once). V8
 * grows it to fit (tens of MB) and hands the pages back only when its memory
 * reducer runs, ~100 s later: a 12 MiB step in RSS. Capped, a burst costs a few
 * more sub-millisecond scavenges and RSS stays flat (bench scenario 4).
 */
const WORKER_YOUNG_GENERATION_MB = 4;

export interface OffloadOptions {
  workers: number;
  nativeSend: boolean;
  bindHost: string;
  rtcpIntervalMs: number;
  /** Default timeout of a request (ms); cache loads get longer. */
  timeoutMs?: number;
  /** Old-generation heap cap per worker, MB (V8's default when unset). A worker over it dies and is replaced. */
  maxOldGenerationMb?: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  worker: number;
}

export interface OffloadEvents {
  'session.ended': [worker: number, data: Notifications['session.ended']];
  'flow.new': [worker: number, data: Notifications['flow.new']];
  'record.ended': [worker: number, data: Notifications['record.ended']];
  'rtsp.request': [worker: number, data: Notifications['rtsp.request']];
  'rtsp.closed': [worker: number, data: Notifications['rtsp.closed']];
  'worker.exit': [worker: number, error: Error];
}

export class OffloadClient extends EventEmitter<OffloadEvents> {
  private readonly opts: OffloadOptions;
  private readonly workers: (Worker | null)[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;
  /** Binary bytes that crossed the channel (both directions). Stays 0 for media. */
  payloadBytes = 0;
  messages = 0;
  /** Workers restarted after a crash. */
  restarts = 0;
  /** The worker of each placed session (play, live, record), for placing new ones. */
  private readonly placed = new Map<string, number>();
  private readonly counts: number[] = [];

  constructor(opts: OffloadOptions) {
    super();
    this.opts = opts;
  }

  get size(): number {
    return this.opts.workers;
  }

  async start(): Promise<void> {
    const n = this.opts.workers;
    // One MessageChannel per pair of workers, so they can share cache entries directly.
    const peers: (MessagePort | null)[][] = Array.from({ length: n }, () => new Array<MessagePort | null>(n).fill(null));
    for (let a = 0; a < n; a++)
      for (let b = a + 1; b < n; b++) {
        const ch = new MessageChannel();
        peers[a]![b] = ch.port1;
        peers[b]![a] = ch.port2;
      }
    const ready: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      this.counts.push(0);
      ready.push(this.spawn(i, peers[i]!));
    }
    await Promise.all(ready);
  }

  private spawn(index: number, peers: (MessagePort | null)[]): Promise<void> {
    const init: WorkerInit = { index, nativeSend: this.opts.nativeSend, bindHost: this.opts.bindHost, rtcpIntervalMs: this.opts.rtcpIntervalMs, peers };
    const w = new Worker(workerUrl(), {
      workerData: init,
      transferList: peers.filter((p): p is MessagePort => p !== null),
      execArgv: process.execArgv,
      name: `offload-${index}`,
      resourceLimits: {
        maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB,
        ...(this.opts.maxOldGenerationMb === undefined ? {} : { maxOldGenerationSizeMb: this.opts.maxOldGenerationMb }),
      },
    });
    this.workers[index] = w;
    return new Promise<void>((resolve, reject) => {
      let died: Error | null = null;
      const onEarlyExit = (code: number): void => reject(new Error(`offload worker ${index} exited with code ${code} while starting`));
      w.once('exit', onEarlyExit);
      w.on('message', (msg: WorkerMessage) => {
        this.messages++;
        this.payloadBytes += binaryBytes(msg);
        if (msg.kind === 'ready') {
          w.off('exit', onEarlyExit);
          w.on('exit', (code) => this.onExit(index, died ?? new Error(`offload worker ${index} exited with code ${code}`)));
          resolve();
        } else if (msg.kind === 'response') {
          const p = this.pending.get(msg.id);
          if (p === undefined) return;
          this.pending.delete(msg.id);
          clearTimeout(p.timer);
          if (msg.ok) p.resolve(msg.result);
          else p.reject(new OffloadError(msg.error.code, msg.error.message, msg.error.statusCode ?? 500));
        } else if (msg.kind === 'notification') {
          (this.emit as (e: string, w: number, d: unknown) => boolean)(msg.event, index, msg.data);
        }
      });
      w.on('error', (err) => {
        // An uncaught error (or its heap cap) ends the worker; 'exit' follows once its
        // sockets are closed, and reports it with this error: only then are its ports free.
        died = err;
      });
    });
  }

  private onExit(index: number, err: Error): void {
    this.workers[index] = null;
    // Its sessions are gone (their managers report them failed).
    for (const [id, w] of this.placed) if (w === index) this.placed.delete(id);
    this.counts[index] = 0;
    for (const [id, p] of this.pending) {
      if (p.worker !== index) continue;
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new OffloadError('OFFCAST_OFFLOAD_DOWN', 'the offload worker stopped', 503));
    }
    if (this.closed) return;
    this.emit('worker.exit', index, err);
    this.respawn(index);
  }

  /** A worker that died is replaced, with fresh ports to its peers; its sessions are gone (reported failed). */
  private respawn(index: number): void {
    this.restarts++;
    const peers: (MessagePort | null)[] = new Array<MessagePort | null>(this.opts.workers).fill(null);
    this.workers.forEach((w, i) => {
      if (i === index || w === null) return;
      const ch = new MessageChannel();
      peers[i] = ch.port1;
      w.postMessage({ kind: 'peer', index, port: ch.port2 } satisfies PeerPortMessage, [ch.port2]);
    });
    this.spawn(index, peers).catch((e: unknown) => this.emit('worker.exit', index, e as Error));
  }

  request<M extends Method>(worker: number, method: M, params: Requests[M]['params'], timeoutMs?: number): Promise<Requests[M]['result']> {
    const w = this.workers[worker];
    if (w === null || w === undefined) return Promise.reject(new OffloadError('OFFCAST_OFFLOAD_DOWN', 'the offload worker is not running', 503));
    const id = ++this.nextId;
    const msg = { kind: 'request' as const, id, method, params };
    this.messages++;
    this.payloadBytes += binaryBytes(params);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.pending.delete(id);
          reject(new OffloadError('OFFCAST_OFFLOAD_TIMEOUT', `offload did not answer ${method} in time`, 503));
        },
        timeoutMs ?? this.opts.timeoutMs ?? 10000,
      );
      this.pending.set(id, { resolve, reject, timer, worker });
      w.postMessage(msg);
    });
  }

  /** The same request to every worker. */
  all<M extends Method>(method: M, params: Requests[M]['params']): Promise<Requests[M]['result'][]> {
    return Promise.all(this.workers.map((_, i) => this.request(i, method, params)));
  }

  /** Sessions placed on each worker. */
  get load(): readonly number[] {
    return this.counts;
  }

  /**
   * Places session `id` on the worker with the fewest sessions, counted from
   * now on (so creates in flight spread out). `prefer` (the worker that holds
   * the session's cached media) wins a tie, so a play needs no peer fetch
   * unless another worker is less loaded.
   */
  place(id: string, prefer?: number): number {
    let best = prefer !== undefined && prefer >= 0 && prefer < this.counts.length ? prefer : 0;
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]! < this.counts[best]!) best = i;
    this.pin(id, best);
    return best;
  }

  /** Places session `id` on a given worker (a live relay runs where its recording runs). */
  pin(id: string, worker: number): void {
    if (this.placed.has(id)) return;
    this.placed.set(id, worker);
    this.counts[worker]!++;
  }

  /** The session ended or its create failed; idempotent. */
  unplace(id: string): void {
    const w = this.placed.get(id);
    if (w === undefined) return;
    this.placed.delete(id);
    this.counts[w] = Math.max(0, this.counts[w]! - 1);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new OffloadError('OFFCAST_OFFLOAD_DOWN', 'the server is shutting down', 503));
    }
    this.pending.clear();
    await Promise.all(this.workers.filter((w) => w !== null).map((w) => w.terminate()));
    this.workers.fill(null);
  }
}

/** The worker entry: compiled .js next to us in production, the .ts source under a TS loader (tests). */
function workerUrl(): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`../offload/worker${ext}`, import.meta.url);
}
