// Guards around sessions and recordings: names that could escape the
// recordings folder, live-relay mistakes, the H.264 warning, cross-origin
// requests, metric names and 5xx logging (issue 9: items 6, 8, 13 and §4).
import { readdir } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import type { ApiBody } from '../helpers/apiTypes.js';

function isError(t: Test, res: { status: number; body: ApiBody; text: string }, status: number, code: string | RegExp, message?: RegExp, what = ''): void {
  const label = what === '' ? '' : `${what}: `;
  t.equal(res.status, status, `${label}status ${status} (${res.text.slice(0, 300)})`);
  t.equal(res.body?.statusCode, status, `${label}statusCode in the body`);
  t.match(res.body?.code, code, `${label}code ${String(code)}`);
  if (message !== undefined) t.match(res.body?.message, message, `${label}message says ${String(message)}`);
}

const sdpHead = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n';

function postSdp(server: TestServer, name: string, sdp: string, type = 'application/sdp'): Promise<ApiResponse> {
  return server.api('POST', `/v1/sessions?name=${encodeURIComponent(name)}`, sdp, { 'content-type': type });
}

function postJson(server: TestServer, name: string, tracks: unknown[]): Promise<ApiResponse> {
  return server.api('POST', '/v1/sessions', { mode: 'record', name, tracks });
}

t.test('recording names cannot leave the recordings folder', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const before = await readdir(server.dir);
  const names = ['../escape', '..', '.', '.hidden', 'a/b', 'a\\b', '%2e%2e', 'x'.repeat(129), 'ünïcode', 'sp ace', 'semi;colon', '-dash', 'nul\u0000byte', ''];
  const pcmu = [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }];
  for (const name of names) {
    if (name !== '')
      isError(t, await postJson(server, name, pcmu), 400, /^OFFCAST_(INVALID_NAME|BAD_REQUEST)$/, undefined, `JSON name ${JSON.stringify(name)}`);
    isError(
      t,
      await postSdp(server, name, sdpHead + 'm=audio 5000 RTP/AVP 0\r\n'),
      400,
      /^OFFCAST_(INVALID_NAME|BAD_REQUEST)$/,
      undefined,
      `?name=${JSON.stringify(name)}`,
    );
  }
  // Encoded slashes and dots in the path: never a file outside the folder, never a 5xx.
  for (const raw of ['..%2f..%2fetc%2fpasswd', '%2e%2e', '..%5c..', 'a%2fb', '%00', 'x'.repeat(300), '.hidden', '%2e']) {
    for (const suffix of ['', '/tracks/0', '/tracks/0/rtpdump']) {
      const res = await server.api('GET', `/v1/recordings/${raw}${suffix}`);
      t.ok(res.status === 400 || res.status === 404, `GET /v1/recordings/${raw.slice(0, 40)}${suffix}: 400 or 404 (${res.status})`);
    }
    const del = await server.api('DELETE', `/v1/recordings/${raw}`);
    t.ok(del.status === 400 || del.status === 404, `DELETE /v1/recordings/${raw.slice(0, 40)}: 400 or 404 (${del.status})`);
  }
  isError(t, await server.api('GET', '/v1/recordings/..%2f..%2fetc'), 400, 'OFFCAST_INVALID_NAME', undefined, 'traversal by encoded slashes');
  t.same(await readdir(server.dir), before, 'no folder created next to the recordings');
  t.same(await readdir(server.store.root), [], 'none inside either');
});

t.test('live relays: what they cannot follow, and options that do not apply', async (t) => {
  const server = await startServer({ 'record.idleTimeoutMs': 100 });
  t.teardown(() => server.stop());
  const live = (id: string, extra: Record<string, unknown> = {}) =>
    server.api('POST', '/v1/sessions', { mode: 'play', live: id, destination: { host: '127.0.0.1', port: 40000 }, ...extra });
  isError(t, await live('no-such-session'), 404, 'OFFCAST_SESSION_NOT_FOUND', /no recording session/, 'an unknown id');
  const rec = await postJson(server, 'followed', [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }]);
  t.equal(rec.status, 201, rec.text);
  for (const [field, value] of [
    ['loop', true],
    ['speed', 2],
    ['speed', 'max'],
    ['startMs', 0],
  ] as const) {
    isError(
      t,
      await live(rec.body.id, { [field]: value }),
      400,
      'OFFCAST_BAD_REQUEST',
      new RegExp(`${field} does not apply to a live session`),
      `${field}: ${String(value)}`,
    );
  }
  // A play session is not a recording.
  await server.api('PUT', '/v1/media/x.wav', (await import('../helpers/media.js')).makeWav(8000, 1, 1));
  const play = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'x.wav', state: 'paused', destination: { host: '127.0.0.1', port: 40010 } });
  t.equal(play.status, 201, play.text);
  isError(t, await live(play.body.id), 404, 'OFFCAST_SESSION_NOT_FOUND', /no recording session/, 'a play session id');
  // An ended recording (idle, no media): listed, but nothing to follow.
  for (let i = 0; i < 200 && (await server.api('GET', `/v1/sessions/${rec.body.id}`)).body.state === 'recording'; i++)
    await new Promise((r) => setTimeout(r, 25));
  t.not((await server.api('GET', `/v1/sessions/${rec.body.id}`)).body.state, 'recording', 'the recording ended by itself');
  isError(t, await live(rec.body.id), 404, 'OFFCAST_SESSION_NOT_FOUND', /no recording session/, 'an ended record session');
  await server.api('DELETE', `/v1/sessions/${rec.body.id}`);
  isError(t, await live(rec.body.id), 404, 'OFFCAST_SESSION_NOT_FOUND', /no recording session/, 'a deleted record session');
});

t.test('H.264 without sprop-parameter-sets: a warning at creation', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const bare = await postJson(server, 'bare', [{ kind: 'video', codec: 'H264', payloadType: 96, clockRate: 90000, fmtp: 'packetization-mode=1' }]);
  t.equal(bare.status, 201, bare.text);
  t.equal(bare.body.warnings?.length, 1, 'one warning');
  t.match(bare.body.warnings?.[0], /track 0: H\.264 without sprop-parameter-sets/);
  const sets = 'Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==';
  const full = await postJson(server, 'full', [
    { kind: 'video', codec: 'H264', payloadType: 96, clockRate: 90000, fmtp: `packetization-mode=1;sprop-parameter-sets=${sets}` },
  ]);
  t.equal(full.status, 201, full.text);
  t.equal(full.body.warnings, undefined, 'no warning with the parameter sets');
  const audio = await postJson(server, 'audio', [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }]);
  t.equal(audio.body.warnings, undefined, 'none for audio');
});

t.test('cross-origin requests are refused; same-origin and non-browser clients pass', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const u = new URL(server.url);
  const sdp = sdpHead + 'm=audio 5000 RTP/AVP 0\r\n';
  for (const origin of ['http://evil.example', 'null', `https://${u.host}`, `http://${u.hostname}:${Number(u.port) + 1}`, 'garbage']) {
    const res = await server.api('POST', '/v1/sessions?name=csrf', sdp, { 'content-type': 'application/sdp', origin });
    isError(t, res, 403, 'OFFCAST_CROSS_ORIGIN', /origin/, `Origin ${origin}`);
    isError(t, await server.api('DELETE', '/v1/media/x.wav', undefined, { origin }), 403, 'OFFCAST_CROSS_ORIGIN', undefined, `DELETE from ${origin}`);
  }
  t.same((await server.api('GET', '/v1/sessions')).body.sessions, [], 'nothing was created');
  const same = await server.api('POST', '/v1/sessions?name=same', sdp, { 'content-type': 'application/sdp', origin: server.url });
  t.equal(same.status, 201, `same origin passes (${same.text.slice(0, 200)})`);
  const none = await server.api('POST', '/v1/sessions?name=none', sdp, { 'content-type': 'application/sdp' });
  t.equal(none.status, 201, 'no Origin (curl, ffmpeg scripts) passes');
});

t.test('/metrics: prom-client defaults under their standard names; 5xx causes logged', async (t) => {
  const lines: string[] = [];
  const server = await startServer({ 'limits.maxSessions': 1 }, { logger: { level: 'warn', stream: { write: (l: string) => void lines.push(l) } } });
  t.teardown(() => server.stop());
  const text = (await server.api('GET', '/metrics')).text;
  t.match(text, /^process_cpu_seconds_total /m, 'process_cpu_seconds_total');
  t.match(text, /^nodejs_eventloop_lag_seconds /m, 'nodejs_eventloop_lag_seconds');
  t.notMatch(text, /offcast_process_/, 'no doubled prefix');
  const pcmu = [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }];
  t.equal((await postJson(server, 'one', pcmu)).status, 201);
  isError(t, await postJson(server, 'two', pcmu), 503, 'OFFCAST_SESSION_LIMIT');
  const logged = lines.map((l) => JSON.parse(l)).find((l) => l.code === 'OFFCAST_SESSION_LIMIT');
  t.ok(logged, 'the 503 is logged');
  t.equal(logged?.msg, 'request failed');
  t.match(logged?.cause, /limits\.maxSessions/, 'with its cause');
});
