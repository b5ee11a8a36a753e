// limits.maxSessions under concurrent requests over real HTTP (issue 9, item 1),
// and ended record sessions pruned like play sessions (item 7).
import net from 'node:net';
import t from 'tap';
import { startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import type { ApiSession } from '../helpers/apiTypes.js';

const PCMU = [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }];

function record(server: TestServer, name: string): Promise<ApiResponse> {
  return server.api('POST', '/v1/sessions', { mode: 'record', name, tracks: PCMU });
}

/**
 * `n` requests that reach the server together: every connection is open
 * first, then all requests are written in one go, so the handlers run
 * before any of them gets its answer from the offload. Returns the statuses.
 */
async function together(server: TestServer, n: number, method: string, path: string): Promise<number[]> {
  const u = new URL(server.url);
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(Number(u.port), u.hostname, () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  const answers = sockets.map(
    (s) =>
      new Promise<number>((resolve, reject) => {
        let text = '';
        s.setEncoding('latin1');
        s.on('data', (d: string) => (text += d));
        s.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
        s.on('error', reject);
      }),
  );
  for (const s of sockets) s.write(`${method} ${path} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`);
  return Promise.all(answers);
}

function tally(statuses: number[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}

t.test('60 concurrent record creates with the limit at 20: exactly 20 run', async (t) => {
  const server = await startServer({ 'limits.maxSessions': 20 });
  t.teardown(() => server.stop());
  const free = server.ports.free;
  const res = await Promise.all(Array.from({ length: 60 }, (_, i) => record(server, `race${i}`)));
  t.same(tally(res.map((r) => r.status)), { 201: 20, 503: 40 }, 'twenty created, forty refused');
  for (const r of res.filter((r) => r.status === 503)) t.equal(r.body.code, 'OFFCAST_SESSION_LIMIT');
  t.equal(server.ports.free, free - 20, 'ports held by the twenty only');
  const listed = (await server.api('GET', '/v1/sessions')).body.sessions;
  t.equal(listed.length, 20, 'twenty sessions listed');
  await Promise.all(listed.map((s) => server.api('DELETE', `/v1/sessions/${s.id}`)));
  t.equal(server.ports.free, free, 'every port back');
  t.same(server.offload.load, [0], 'no session placed');
  // Live relays count too: one record session, then concurrent relays up to the limit.
  const rec = await record(server, 'followed');
  t.equal(rec.status, 201, rec.text);
  const lives = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      server.api('POST', '/v1/sessions', { mode: 'play', live: rec.body.id, destination: { host: '127.0.0.1', port: 40000 + 2 * i } }),
    ),
  );
  t.same(tally(lives.map((r) => r.status)), { 201: 19, 503: 11 }, 'live creates in flight count: 1 record + 19 relays');
});

t.test('concurrent record creates of one name: one wins', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const res = await Promise.all(Array.from({ length: 8 }, () => record(server, 'same')));
  t.same(tally(res.map((r) => r.status)), { 201: 1, 409: 7 });
});

t.test('4 concurrent DELETEs of one play session release it once', async (t) => {
  const server = await startServer({ 'limits.maxSessions': 5 });
  t.teardown(() => server.stop());
  t.equal((await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 1))).status, 201);
  const play = (port: number) =>
    server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', state: 'paused', destination: { host: '127.0.0.1', port } });
  const free = server.ports.free;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await play(41000 + 2 * i);
    t.equal(r.status, 201, r.text);
    ids.push(r.body.id);
  }
  const deletes = await together(server, 4, 'DELETE', `/v1/sessions/${ids[0]}`);
  // DELETEs that meet the first in flight share its answer; later ones would find the session gone.
  t.comment(`statuses ${deletes.join(',')}`);
  t.ok(deletes.includes(200), 'a DELETE answers with the ended session');
  for (const d of deletes) t.ok(d === 200 || d === 404, `200 or 404, got ${d}`);
  t.equal(server.ports.free, free - 4, 'one session’s ports released, once');
  t.same(server.offload.load, [4], 'the worker runs four');
  const more = await Promise.all(Array.from({ length: 6 }, (_, i) => play(42000 + 2 * i)));
  t.same(tally(more.map((r) => r.status)), { 201: 1, 503: 5 }, 'room for exactly one more');
  // The cache entry is still referenced by five sessions: deleting the others ends its use exactly then.
  const cache = server.cache as unknown as { entries: Map<string, { refs: number }> };
  t.same(
    [...cache.entries.values()].map((e) => e.refs),
    [5],
    'five references to the cached media',
  );
  const created = more.find((r) => r.status === 201)!.body.id as string;
  for (const id of [...ids.slice(1), created]) await together(server, 3, 'DELETE', `/v1/sessions/${id}`);
  t.same(
    [...cache.entries.values()].map((e) => e.refs),
    [0],
    'no reference left, none below zero',
  );
  t.equal(server.ports.free, free, 'every port back');
});

t.test('ended record sessions are pruned like play sessions', async (t) => {
  const server = await startServer({ 'record.idleTimeoutMs': 100 }, { retention: { max: 3, ttlMs: 60_000 } });
  t.teardown(() => server.stop());
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    const r = await record(server, `idle${i}`);
    t.equal(r.status, 201, r.text);
    ids.push(r.body.id);
    // Each ends by itself (idle, no media) before the next is created, so they end in
    // creation order (timers of sessions created together may fire in any order on a busy machine).
    for (let k = 0; k < 400; k++) {
      const state = (await server.api('GET', `/v1/sessions/${r.body.id}`)).body.state;
      if (state === 'ended' || state === 'failed') break;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  // Wait until none is recording.
  let sessions: ApiSession[] = [];
  for (let i = 0; i < 200; i++) {
    sessions = (await server.api('GET', '/v1/sessions')).body.sessions;
    if (sessions.every((s) => s.state === 'ended' || s.state === 'failed') && server.recordings.active === 0) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  t.equal(server.recordings.active, 0, 'all ended by themselves');
  t.same(sessions.map((s) => s.id).sort(), ids.slice(4).sort(), 'the three most recently ended stay listed, the older are forgotten');
  const gone = await server.api('GET', `/v1/sessions/${ids[0]}`);
  t.equal(gone.status, 404, 'a pruned session is gone');
  const recordings = (await server.api('GET', '/v1/recordings')).body.recordings;
  t.equal(recordings.length, 7, 'the recordings themselves stay on disk');
});
