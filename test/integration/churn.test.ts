// Churn: 10,000 create/delete cycles of play and record sessions (real
// sockets, real files, the API through inject) leave no file descriptor, port
// or cache reference behind: /proc/self/fd, the port pool and the cache's
// reference counts are compared before and after.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import { RtpSink } from '../helpers/rtp.js';
import { waitFor } from '../helpers/ready.js';
import type { ApiBody } from '../helpers/apiTypes.js';

const CYCLES = Number(process.env.OFFCAST_CHURN_CYCLES ?? 10000);
/** Time bound: on a shared, loaded machine the cycles stop here (and say how many ran); at least MIN_CYCLES must. */
const MAX_MS = Number(process.env.OFFCAST_CHURN_MS ?? 50000);
const MIN_CYCLES = Math.min(CYCLES, 1000);
const PARALLEL = 8;

let server: TestServer;
let sink: RtpSink;
t.before(async () => {
  server = await startServer({ 'limits.maxSessions': 64 });
  const put = await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 0.2));
  if (put.status !== 201) throw new Error(put.text);
  sink = await RtpSink.open();
});
t.teardown(async () => {
  sink.close();
  await server.stop();
});

const fds = (): number => readdirSync('/proc/self/fd').length;
/** Sum of the cache entries' reference counts (a private field: what a leak would leave non-zero). */
const cacheRefs = (): number => [...(server.cache as unknown as { entries: Map<string, { refs: number }> }).entries.values()].reduce((n, e) => n + e.refs, 0);

async function inject(method: 'POST' | 'DELETE', url: string, payload?: unknown): Promise<{ status: number; body: ApiBody }> {
  const res = await server.app.inject({ method, url, payload: payload as object | undefined });
  return { status: res.statusCode, body: res.body === '' ? undefined : JSON.parse(res.body) };
}

/** One cycle: a play session (playing, to our sink) or a record session, created and deleted. */
async function cycle(i: number): Promise<string | null> {
  if (i % 2 === 0) {
    const c = await inject('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', loop: true, destination: { host: '127.0.0.1', port: sink.port } });
    if (c.status !== 201) return `play ${i}: create ${c.status} ${JSON.stringify(c.body)}`;
    const d = await inject('DELETE', `/v1/sessions/${c.body.id}`);
    return d.status === 200 ? null : `play ${i}: delete ${d.status}`;
  }
  const name = `churn${i}`;
  const c = await inject('POST', '/v1/sessions', { mode: 'record', name, tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }] });
  if (c.status !== 201) return `record ${i}: create ${c.status} ${JSON.stringify(c.body)}`;
  const d = await inject('DELETE', `/v1/sessions/${c.body.id}`);
  if (d.status !== 200) return `record ${i}: delete ${d.status}`;
  const r = await inject('DELETE', `/v1/recordings/${name}`);
  return r.status === 204 || r.status === 200 ? null : `record ${i}: delete recording ${r.status} ${JSON.stringify(r.body)}`;
}

t.test(`up to ${CYCLES} create/delete cycles leak no descriptor, port or cache reference`, async (t) => {
  // Warm up: the first sessions open what lives as long as the server (the cache entry, lazy modules).
  const warm: (string | null)[] = [];
  for (let i = 0; i < 2 * PARALLEL; i++) warm.push(await cycle(i));
  t.same(
    warm.filter((e) => e !== null),
    [],
    'warm-up cycles',
  );
  const before = {
    fds: fds(),
    ports: server.ports.free,
    refs: cacheRefs(),
    entries: server.cache.size,
    heap: process.memoryUsage().heapUsed,
    rss: process.memoryUsage().rss,
  };
  t.equal(before.refs, 0, 'no cache reference held between sessions');
  const started = performance.now();
  const errors: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < CYCLES && performance.now() - started < MAX_MS) {
        const err = await cycle(next++);
        if (err !== null && errors.length < 20) errors.push(err);
      }
    }),
  );
  const took = performance.now() - started;
  t.same(errors, [], 'every create and delete answered as it should');
  t.ok(next >= MIN_CYCLES, `${next} cycles ran (${CYCLES} wanted, ${MIN_CYCLES} at least within ${MAX_MS / 1000} s)`);
  t.comment(
    `${next} cycles in ${(took / 1000).toFixed(1)} s; main-thread heap ${(before.heap / 1e6).toFixed(0)} -> ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB, rss ${(before.rss / 1e6).toFixed(0)} -> ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`,
  );
  // Sockets and files close asynchronously after the answers: wait (bounded) for the count to settle.
  await waitFor(() => fds() <= before.fds, 10000, 50);
  t.ok(fds() <= before.fds, `file descriptors: ${before.fds} before, ${fds()} after`);
  // A pair that another process (a parallel test, an ephemeral port) happened to hold is quarantined
  // for a minute, not leaked: it counts as back in the pool.
  t.equal(server.ports.free + server.ports.quarantined, before.ports, `every port back in the pool (${server.ports.quarantined} quarantined)`);
  t.equal(cacheRefs(), 0, 'no cache reference left');
  t.equal(server.cache.size, before.entries, 'no cache entry added');
  const list = await inject('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', state: 'paused', destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(list.status, 201, 'and a new session is still accepted');
});
