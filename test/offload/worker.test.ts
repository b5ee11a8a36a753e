// The offload worker on its own: a real worker thread (offload/worker.ts) driven over the
// channel by the test, with the test playing the other side of its peer ports.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Method, PeerMessage, Requests, WorkerInit, WorkerMessage } from '../../offload/channel.js';
import { makeWav } from '../helpers/media.js';

const dir = mkdtempSync(join(tmpdir(), 'offcast-worker-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const wavPath = join(dir, 'tone.wav');
writeFileSync(wavPath, makeWav(8000, 1, 1));

/** A worker and a minimal channel client for it. */
class TestWorker {
  readonly worker: Worker;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error & { code?: string }): void }>();
  readonly ready: Promise<void>;

  constructor(index: number, peers: (MessagePort | null)[]) {
    const init: WorkerInit = { index, nativeSend: false, bindHost: '127.0.0.1', rtcpIntervalMs: 1000, peers };
    this.worker = new Worker(new URL('../../offload/worker.ts', import.meta.url), {
      workerData: init,
      transferList: peers.filter((p): p is MessagePort => p !== null),
      execArgv: process.execArgv,
    });
    this.ready = new Promise((resolve) => {
      this.worker.on('message', (msg: WorkerMessage) => {
        if (msg.kind === 'ready') resolve();
        if (msg.kind !== 'response') return;
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (msg.ok) w?.resolve(msg.result);
        else w?.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
      });
    });
  }

  request<M extends Method>(method: M, params: Requests[M]['params']): Promise<Requests[M]['result']> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ kind: 'request', id, method, params });
    });
  }
}

/** Settles within `ms`, else 'pending' (the bug this guards against: a fetch that never ends). */
function within<T>(p: Promise<T>, ms: number): Promise<{ ok: true; value: T } | { ok: false; error: Error & { code?: string } } | 'pending'> {
  return Promise.race([
    p.then(
      (value) => ({ ok: true as const, value }),
      (error: Error & { code?: string }) => ({ ok: false as const, error }),
    ),
    new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms).unref()),
  ]);
}

const playParams = (sessionId: string): Requests['play.create']['params'] => ({
  sessionId,
  cacheKey: 'tone',
  cacheOwner: 0,
  tracks: [],
  loop: false,
  paused: true,
  startMs: 0,
  speed: 1,
  durationMs: 1000,
  cname: 'test',
});

const loadParams: Requests['cache.load']['params'] = {
  key: 'tone',
  path: wavPath,
  format: 'wav',
  tracks: [{ source: 0, encoding: 'L16' }],
  payloadBytes: 1200,
  spread: 0.8,
};

t.test('the owner of a cache entry dies mid-fetch: the fetch fails at once and nothing stays loading', async (t) => {
  const ch = new MessageChannel();
  const owner = new Worker(new URL('./workers/dying-owner.ts', import.meta.url), {
    workerData: { port: ch.port1 },
    transferList: [ch.port1],
    execArgv: process.execArgv,
  });
  const asked = new Promise<string>((resolve) => owner.on('message', (m: { got?: string }) => m.got !== undefined && resolve(m.got)));
  const ownerExit = new Promise<number>((resolve) => owner.once('exit', resolve));
  const asker = new TestWorker(1, [ch.port2, null]);
  t.teardown(() => asker.worker.terminate());
  await asker.ready;

  const started = performance.now();
  const play = within(asker.request('play.create', playParams('a')), 3000);
  t.equal(await asked, 'tone', 'the owner got the cache.get');
  t.equal(await ownerExit, 1, 'and died without answering');
  const r = await play;
  t.not(r, 'pending', 'the play that waited on the dead owner is answered');
  if (r !== 'pending') {
    t.notOk(r.ok, 'with an error');
    if (!r.ok) t.equal(r.error.code, 'OFFCAST_OFFLOAD_DOWN', r.error.message);
  }
  t.ok(performance.now() - started < 3000, 'well before any timeout');
  // The key is not left "loading": a load of it on this worker goes through.
  const load = await within(asker.request('cache.load', loadParams), 10000);
  t.ok(load !== 'pending' && load.ok, 'the same key loads afterwards');
  // And a second fetch from the dead owner fails at once instead of waiting.
  const again = await within(asker.request('play.create', { ...playParams('b'), cacheKey: 'other' }), 2000);
  t.ok(again !== 'pending' && !again.ok, 'a later fetch from the dead owner fails at once');
});

t.test('an owner that never answers: the fetch times out', async (t) => {
  const ch = new MessageChannel();
  const asker = new TestWorker(1, [ch.port2, null]);
  t.teardown(() => {
    ch.port1.close();
    return asker.worker.terminate();
  });
  await asker.ready;
  let asked = 0;
  ch.port1.on('message', (m: PeerMessage) => {
    if (m.kind === 'cache.get') asked++;
  });
  const started = performance.now();
  const r = await within(asker.request('play.create', playParams('c')), 9000);
  t.equal(asked, 1, 'the owner was asked once');
  t.not(r, 'pending', 'the fetch ended');
  if (r !== 'pending' && !r.ok) t.equal(r.error.code, 'OFFCAST_OFFLOAD_TIMEOUT', r.error.message);
  const took = performance.now() - started;
  t.ok(took >= 4500 && took < 9000, `after the peer timeout (${Math.round(took)} ms)`);
  const load = await within(asker.request('cache.load', loadParams), 10000);
  t.ok(load !== 'pending' && load.ok, 'the key is not left loading');
});
