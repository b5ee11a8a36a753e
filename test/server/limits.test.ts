// Limits with nothing half-allocated: upload size, session count, RTP port
// pairs (including pairs another program holds) and the cache budget.
import dgram from 'node:dgram';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import { RtpSink } from '../helpers/rtp.js';
import { waitState } from '../helpers/play.js';
import type { ApiBody } from '../helpers/apiTypes.js';

const MiB = 1024 * 1024;

function isError(t: Test, res: { status: number; body: ApiBody; text: string }, status: number, code: string, message?: RegExp, what = ''): void {
  const label = what === '' ? '' : `${what}: `;
  t.equal(res.status, status, `${label}status ${status} (${res.text.slice(0, 300)})`);
  t.same(
    res.body !== null && typeof res.body === 'object' ? Object.keys(res.body).sort() : res.body,
    ['code', 'message', 'statusCode'],
    `${label}{statusCode, code, message}`,
  );
  t.equal(res.body?.statusCode, status, `${label}statusCode in the body`);
  t.equal(res.body?.code, code, `${label}code ${code}`);
  if (message !== undefined) t.match(res.body?.message, message, `${label}message says ${message}`);
}

/** A valid 8 kHz mono PCM WAV of exactly `total` bytes (total - 44 even). */
function wavOfSize(total: number): Buffer {
  const frames = Math.ceil((total - 44) / 2 / 8000) + 1;
  const wav = Buffer.from(makeWav(8000, 1, frames).subarray(0, total));
  wav.writeUInt32LE(total - 8, 4);
  wav.writeUInt32LE(total - 44, 40);
  return wav;
}

async function upload(server: TestServer, name: string, body: Uint8Array): Promise<void> {
  const res = await server.api('PUT', `/v1/media/${name}`, body);
  if (res.status !== 201 && res.status !== 200) throw new Error(`upload ${name}: ${res.status} ${res.text}`);
}

function play(server: TestServer, media: string, extra: Record<string, unknown> = {}): Promise<ApiResponse> {
  return server.api('POST', '/v1/sessions', { mode: 'play', media, state: 'paused', destination: { host: '127.0.0.1', port: 29998 }, ...extra });
}

async function sessionIds(server: TestServer): Promise<string[]> {
  return (await server.api('GET', '/v1/sessions')).body.sessions.map((s) => s.id).sort();
}

async function counter(server: TestServer, name: string): Promise<number> {
  const text = (await server.api('GET', '/metrics')).text;
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (m === null) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

/** An even port P with P..P+3 free on 127.0.0.1 (checked by binding, no traffic). */
async function freeFourPorts(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 30000 + 2 * Math.floor(Math.random() * 14000);
    const socks: dgram.Socket[] = [];
    let ok = true;
    for (let i = 0; i < 4 && ok; i++) {
      const s = dgram.createSocket('udp4');
      socks.push(s);
      ok = await new Promise<boolean>((resolve) => {
        s.once('error', () => resolve(false));
        s.bind(base + i, '127.0.0.1', () => resolve(true));
      });
    }
    await Promise.all(
      socks.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve();
            }
          }),
      ),
    );
    if (ok) return base;
  }
  throw new Error('no four free ports');
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

t.test('uploads over limits.uploadBytes get 413 and leave nothing', async (t) => {
  const limit = 100_000;
  const server = await startServer({ 'limits.uploadBytes': limit });
  t.teardown(() => server.stop());
  const atLimit = wavOfSize(limit);
  const over = wavOfSize(limit + 2);
  const big = makeWav(48000, 2, 2); // 384 KB

  const exact = await server.api('PUT', '/v1/media/exact.wav', atLimit);
  t.equal(exact.status, 201, `exactly limits.uploadBytes is accepted (${exact.text.slice(0, 200)})`);
  const kept = await readFile(path.join(server.mediaRoot, 'exact.wav'));
  const dirBefore = (await readdir(server.mediaRoot)).sort();

  const chunked = (body: Buffer, chunk = 8192): ReadableStream<Uint8Array> => {
    let at = 0;
    return new ReadableStream({
      pull(controller) {
        if (at >= body.length) controller.close();
        else {
          controller.enqueue(new Uint8Array(body.subarray(at, at + chunk)));
          at += chunk;
        }
      },
    });
  };
  const put = async (name: string, body: Buffer, how: 'length' | 'chunked', type?: string): Promise<{ status: number; body: ApiBody; text: string }> => {
    const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
    // A bound on a hang (no answer at all), not on speed: a healthy server answers in milliseconds.
    const init: RequestInit & { duplex?: string } = {
      method: 'PUT',
      headers,
      body: (how === 'length' ? body : chunked(body)) as BodyInit,
      signal: AbortSignal.timeout(10_000),
    };
    if (how === 'chunked') init.duplex = 'half';
    let res: Response;
    try {
      res = await fetch(`${server.url}/v1/media/${name}`, init);
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return { status: 0, body: undefined as unknown as ApiBody, text: `no answer: ${e.name} ${e.cause?.code ?? e.message}` };
    }
    const text = await res.text().catch((err: Error) => `body cut off: ${err.message}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed as ApiBody, text };
  };

  for (const how of ['length', 'chunked'] as const) {
    for (const [what, body] of [
      ['2 bytes over', over],
      ['4x over', big],
    ] as const) {
      for (const name of ['new.wav', 'exact.wav']) {
        const res = await put(name, body, how);
        isError(t, res, 413, 'OFFCAST_UPLOAD_TOO_LARGE', new RegExp(`limits\\.uploadBytes \\(${limit} bytes\\)`), `${how}, ${what}, as ${name}`);
        t.same((await readdir(server.mediaRoot)).sort(), dirBefore, `${how}, ${what}, as ${name}: no file or temp file left`);
      }
    }
    const ok = await put('chunked-ok.wav', atLimit, how);
    t.equal(ok.status, 201, `${how}: an upload at the limit still works afterwards`);
    await server.api('DELETE', '/v1/media/chunked-ok.wav');
  }
  t.ok((await readFile(path.join(server.mediaRoot, 'exact.wav'))).equals(kept), 'the existing file survived the refused replacements');
  isError(t, await server.api('GET', '/v1/media/new.wav'), 404, 'OFFCAST_MEDIA_NOT_FOUND');

  // The limit holds whatever the declared type: a JSON or text body must not be
  // buffered whole in memory before the size check.
  for (const type of ['application/json', 'text/plain']) {
    for (const how of ['length', 'chunked'] as const) {
      const res = await put('typed.wav', big, how, type);
      isError(t, res, 413, 'OFFCAST_UPLOAD_TOO_LARGE', undefined, `${type}, ${how}`);
    }
  }
  t.same((await readdir(server.mediaRoot)).sort(), dirBefore, 'nothing left after the typed uploads');
});

t.test('limits.maxSessions: 503 at the limit, room again after a delete', async (t) => {
  const server = await startServer({ 'limits.maxSessions': 2 });
  t.teardown(() => server.stop());
  await upload(server, 'a.wav', makeWav(8000, 1, 1));
  await upload(server, 'blip.wav', makeWav(8000, 1, 0.1));
  const free = server.ports.free;
  const first = await play(server, 'a.wav');
  const second = await play(server, 'a.wav');
  t.equal(first.status, 201);
  t.equal(second.status, 201);
  const ids = await sessionIds(server);
  const third = await play(server, 'a.wav');
  isError(t, third, 503, 'OFFCAST_SESSION_LIMIT', /limits\.maxSessions \(2\)/, 'third session');
  t.same(await sessionIds(server), ids, 'the refused session does not exist');
  t.equal(server.ports.free, free - 2, 'only the two sessions hold ports');
  t.equal((await server.api('DELETE', `/v1/sessions/${first.body.id}`)).status, 200);
  const again = await play(server, 'a.wav');
  t.equal(again.status, 201, 'a create succeeds after a delete');
  await server.api('DELETE', `/v1/sessions/${again.body.id}`);
  await server.api('DELETE', `/v1/sessions/${second.body.id}`);
  t.equal(server.ports.free, free, 'every port back');

  // Concurrent creates: exactly the limit succeeds.
  const burst = await Promise.all(Array.from({ length: 5 }, () => play(server, 'a.wav')));
  const statuses = burst.map((r) => r.status).sort();
  t.same(statuses, [201, 201, 503, 503, 503], 'five at once: two created, three refused');
  for (const r of burst) if (r.status === 503) isError(t, r, 503, 'OFFCAST_SESSION_LIMIT');
  for (const r of burst) if (r.status === 201) await server.api('DELETE', `/v1/sessions/${r.body.id}`);

  // Ended sessions stay visible but hold nothing and do not count.
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const short = await Promise.all([1, 2].map(() => play(server, 'blip.wav', { state: 'playing', destination: { host: '127.0.0.1', port: sink.port } })));
  t.same(
    short.map((r) => r.status),
    [201, 201],
  );
  for (const r of short) await waitState(server, r.body.id, 'ended', 20000);
  const afterEnd = await play(server, 'a.wav');
  t.equal(afterEnd.status, 201, 'ended sessions do not count toward the limit');
  t.equal(server.ports.free, free - 1, 'ended sessions released their ports');
});

t.test('port range of exactly two pairs: the third session gets 503, deletes free everything', async (t) => {
  const base = await freeFourPorts();
  const server = await startServer({ 'rtp.portMin': base, 'rtp.portMax': base + 3 });
  t.teardown(() => server.stop());
  await upload(server, 'a.wav', makeWav(8000, 1, 1));
  t.equal(server.ports.capacity, 2, 'two pairs');
  const a = await play(server, 'a.wav');
  const b = await play(server, 'a.wav');
  t.equal(a.status, 201);
  t.equal(b.status, 201);
  t.same([a.body.tracks[0].sourcePort, b.body.tracks[0].sourcePort].sort(), [base, base + 2], 'the two pairs of the range');
  const ids = await sessionIds(server);
  for (let i = 0; i < 3; i++) {
    const c = await play(server, 'a.wav');
    isError(t, c, 503, 'OFFCAST_PORTS_EXHAUSTED', new RegExp(`${base}-${base + 3}`), `create ${i + 3}`);
  }
  t.same(await sessionIds(server), ids, 'no session was added');
  t.equal(server.ports.free, 0);
  await server.api('DELETE', `/v1/sessions/${a.body.id}`);
  t.equal(server.ports.free, 1, 'a delete frees its pair');
  const c = await play(server, 'a.wav');
  t.equal(c.status, 201, 'create works again');
  t.equal(c.body.tracks[0].sourcePort, a.body.tracks[0].sourcePort, 'on the freed pair');
  await server.api('DELETE', `/v1/sessions/${b.body.id}`);
  await server.api('DELETE', `/v1/sessions/${c.body.id}`);
  t.equal(server.ports.free, 2, 'everything free after the deletes');
  const both = await Promise.all([play(server, 'a.wav'), play(server, 'a.wav')]);
  t.same(
    both.map((r) => r.status),
    [201, 201],
    'both pairs usable again',
  );
});

t.test('a port pair held by another socket is skipped', async (t) => {
  const base = await freeFourPorts();
  const server = await startServer({ 'rtp.portMin': base, 'rtp.portMax': base + 3 });
  t.teardown(() => server.stop());
  await upload(server, 'a.wav', makeWav(8000, 1, 1));
  // Someone else holds the RTP port of the first pair (the one the allocator tries first).
  const squatter = await bindUdp(base);
  t.teardown(() => squatter.close());
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const res = await play(server, 'a.wav', { state: 'playing', loop: true, destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(res.status, 201, `created despite the busy pair (${res.text.slice(0, 200)})`);
  t.equal(res.body.tracks?.[0]?.sourcePort, base + 2, 'on the other pair');
  await sink.waitFor(5);
  t.ok(sink.packets.length >= 5, 'and it sends');
  // Now neither pair is usable: a clean 503, nothing half set up.
  const ids = await sessionIds(server);
  const refused = await play(server, 'a.wav');
  isError(t, refused, 503, 'OFFCAST_PORTS_EXHAUSTED', undefined, 'no usable pair left');
  t.same(await sessionIds(server), ids, 'no session added');
  await server.api('DELETE', `/v1/sessions/${res.body.id}`);
  const again = await play(server, 'a.wav');
  t.equal(again.status, 201, 'the freed pair is used again');
  t.equal(again.body.tracks?.[0]?.sourcePort, base + 2);
});

t.test('cache: five sessions of uncached media at once load it once', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  await upload(server, 'burst.wav', makeWav(16000, 2, 2));
  const misses = await counter(server, 'offcast_cache_misses_total');
  const hits = await counter(server, 'offcast_cache_hits_total');
  const all = await Promise.all(Array.from({ length: 5 }, () => play(server, 'burst.wav')));
  t.same(
    all.map((r) => r.status),
    [201, 201, 201, 201, 201],
    'all five created',
  );
  t.equal((await counter(server, 'offcast_cache_misses_total')) - misses, 1, 'exactly one miss: one load');
  t.equal((await counter(server, 'offcast_cache_hits_total')) - hits, 4, 'four hits');
  t.equal(await counter(server, 'offcast_cache_entries'), 1, 'one cache entry');
  t.equal(await counter(server, 'offcast_channel_payload_bytes_total'), 0, 'no payload bytes on the channel');
  for (const r of all) await server.api('DELETE', `/v1/sessions/${r.body.id}`);
});

t.test('cache.maxBytes smaller than the media: 503 OFFCAST_CACHE_FULL, no session', async (t) => {
  const server = await startServer({ 'cache.maxBytes': MiB });
  t.teardown(() => server.stop());
  const free = server.ports.free;
  await upload(server, 'huge.wav', makeWav(48000, 2, 6)); // 1.15 MB > 1 MiB
  await upload(server, 'half.wav', wavOfSize(600_000));
  await upload(server, 'half2.wav', wavOfSize(600_002));
  const huge = await play(server, 'huge.wav');
  isError(t, huge, 503, 'OFFCAST_CACHE_FULL', /cache\.maxBytes is 1048576/, 'media larger than the cache');
  t.same(await sessionIds(server), [], 'no session');
  t.equal(server.ports.free, free, 'no port held');
  t.equal(await counter(server, 'offcast_cache_entries'), 0, 'nothing cached');
  t.equal(await counter(server, 'offcast_cache_bytes'), 0);

  // One media held by a session, the other cannot evict it: 503, then fine once released.
  const a = await play(server, 'half.wav');
  t.equal(a.status, 201, a.text.slice(0, 200));
  const b = await play(server, 'half2.wav');
  isError(t, b, 503, 'OFFCAST_CACHE_FULL', undefined, 'the cache is full of media in use');
  t.same(await sessionIds(server), [a.body.id], 'only the first session exists');
  t.equal(server.ports.free, free - 1, 'only its pair is held');
  t.ok((await counter(server, 'offcast_cache_bytes')) <= MiB, 'the cache stays within cache.maxBytes');
  await server.api('DELETE', `/v1/sessions/${a.body.id}`);
  const b2 = await play(server, 'half2.wav');
  t.equal(b2.status, 201, 'after the delete the idle entry is evicted and the other media fits');
  t.equal(await counter(server, 'offcast_cache_entries'), 1, 'one entry: the idle one was evicted');
  t.ok((await counter(server, 'offcast_cache_evictions_total')) >= 1, 'an eviction counted');
  // PCMU halves the size: a file a bit over the budget as L16 fits as G.711.
  await upload(server, 'phone.wav', wavOfSize(1_200_000));
  await server.api('DELETE', `/v1/sessions/${b2.body.id}`);
  const ulaw = await play(server, 'phone.wav', { codec: 'PCMU' });
  t.equal(ulaw.status, 201, `1.2 MB of 16-bit PCM fits as PCMU (${ulaw.text.slice(0, 200)})`);
});
