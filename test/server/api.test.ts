// The HTTP control plane against a real server: media library, session
// validation and lifecycle, error shapes, metrics and the cache counters.
import http from 'node:http';
import { mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig } from '../../config/index.js';
import { buildServer } from '../../server/app.js';
import { HttpError } from '../../server/errors.js';
import { OffloadError } from '../../offload/channel.js';
import { CorruptMediaError } from '../../storage/errors.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import { RtpSink } from '../helpers/rtp.js';
import { waitState } from '../helpers/play.js';
import type { ApiBody, ApiSession } from '../helpers/apiTypes.js';

const OPUS_FIXTURE = new URL('../fixtures/audio/sine-mono-2s.opus', import.meta.url);

let server: TestServer;
t.before(async () => {
  server = await startServer();
});
t.teardown(() => server?.stop());

interface Res {
  status: number;
  body: ApiBody;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A request sent byte for byte (fetch would normalize `..` and percent-escapes in the path). */
function rawRequest(method: string, rawPath: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: rawPath, agent: false, headers: { connection: 'close', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown;
        try {
          parsed = text === '' ? undefined : JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode!, body: parsed as ApiBody, text, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Asserts the `{statusCode, code, message}` error body, nothing more. */
function isError(t: Test, res: { status: number; body: ApiBody; text: string }, status: number, code?: string | RegExp, message?: RegExp, what = ''): void {
  const label = what === '' ? '' : `${what}: `;
  t.equal(res.status, status, `${label}status ${status} (${res.text.slice(0, 300)})`);
  t.same(
    res.body !== null && typeof res.body === 'object' ? Object.keys(res.body).sort() : res.body,
    ['code', 'message', 'statusCode'],
    `${label}body is exactly {statusCode, code, message}`,
  );
  t.equal(res.body?.statusCode, status, `${label}statusCode ${status} in the body`);
  t.match(res.body?.code, /^OFFCAST_[A-Z0-9_]+$/, `${label}an OFFCAST_ code`);
  if (code !== undefined) t.match(res.body?.code, typeof code === 'string' ? new RegExp(`^${code}$`) : code, `${label}code ${code}`);
  t.ok(typeof res.body?.message === 'string' && res.body.message.length > 0, `${label}a message`);
  if (message !== undefined) t.match(res.body?.message, message, `${label}message says ${message}`);
}

/** Every entry of the media folder, dot-files and temp files included. */
async function mediaDir(): Promise<string[]> {
  return (await readdir(server.mediaRoot)).sort();
}

/** The entries of the folder around mediaRoot (the test's temp dir) and of the OS temp dir named like our probes. */
async function outsideEntries(): Promise<string[]> {
  const around = await readdir(server.dir);
  const tmp = (await readdir(tmpdir())).filter((n) => n.startsWith('escape'));
  return [...around.map((n) => `dir/${n}`), ...tmp.map((n) => `tmp/${n}`)].sort();
}

async function upload(name: string, body: Uint8Array): Promise<void> {
  const res = await server.api('PUT', `/v1/media/${name}`, body);
  if (res.status !== 201 && res.status !== 200) throw new Error(`upload ${name}: ${res.status} ${res.text}`);
}

/** Prometheus text -> sample values by their full name with labels. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function metrics(): Promise<{ text: string; values: Map<string, number> }> {
  const res = await server.api('GET', '/metrics');
  if (res.status !== 200) throw new Error(`/metrics: ${res.status}`);
  return { text: res.text, values: parseMetrics(res.text) };
}

// --- media ---------------------------------------------------------------------------

t.test('media: upload, probe, list, get, replace, delete', async (t) => {
  const wav = makeWav(16000, 2, 1);
  const put = await server.api('PUT', '/v1/media/tone.wav', wav);
  t.equal(put.status, 201, 'created');
  const { modified, ...rest } = put.body;
  t.same(
    rest,
    {
      name: 'tone.wav',
      format: 'wav',
      bytes: wav.length,
      durationMs: 1000,
      tracks: [{ index: 0, kind: 'audio', codec: 'pcm_s16le', supported: true, clockRate: 16000, channels: 2, durationMs: 1000 }],
    },
    'the probe: format, size, duration and the track',
  );
  t.ok(Math.abs(Date.parse(modified) - Date.now()) < 60_000, 'modified is a current ISO time');
  t.ok((await readFile(path.join(server.mediaRoot, 'tone.wav'))).equals(wav), 'the stored file is the upload, byte for byte');

  const opus = await readFile(OPUS_FIXTURE);
  const putOpus = await server.api('PUT', '/v1/media/sine.opus', opus);
  t.equal(putOpus.status, 201);
  t.match(putOpus.body, {
    name: 'sine.opus',
    format: 'ogg',
    bytes: opus.length,
    tracks: [{ index: 0, kind: 'audio', codec: 'opus', supported: true, clockRate: 48000, channels: 1 }],
  });
  t.ok(Math.abs(putOpus.body.durationMs - 2000) <= 30, `opus duration about 2 s (${putOpus.body.durationMs})`);
  t.type(putOpus.body.tracks[0].preSkip, 'number', 'opus pre-skip shown');

  const list = await server.api('GET', '/v1/media');
  t.equal(list.status, 200);
  t.same(
    list.body.media.map((m) => [m.name, m.bytes]),
    [
      ['sine.opus', opus.length],
      ['tone.wav', wav.length],
    ],
    'both listed, sorted by name',
  );
  t.ok(
    list.body.media.every((m) => !Number.isNaN(Date.parse(m.modified))),
    'modified times are dates',
  );

  const one = await server.api('GET', '/v1/media/tone.wav');
  t.equal(one.status, 200);
  t.same(one.body, put.body, 'GET returns the same probe');

  const shorter = makeWav(8000, 1, 0.5);
  const replace = await server.api('PUT', '/v1/media/tone.wav', shorter);
  t.equal(replace.status, 200, 'replacing an existing name answers 200');
  t.match(replace.body, { bytes: shorter.length, durationMs: 500, tracks: [{ clockRate: 8000, channels: 1 }] }, 'the new probe');
  t.match((await server.api('GET', '/v1/media/tone.wav')).body, { bytes: shorter.length, durationMs: 500 }, 'GET sees the new file');
  await upload('tone.wav', wav);

  const del = await server.api('DELETE', '/v1/media/sine.opus');
  t.equal(del.status, 204);
  t.equal(del.text, '', '204 has no body');
  isError(t, await server.api('GET', '/v1/media/sine.opus'), 404, 'OFFCAST_MEDIA_NOT_FOUND', /sine\.opus/, 'GET after delete');
  isError(t, await server.api('DELETE', '/v1/media/sine.opus'), 404, 'OFFCAST_MEDIA_NOT_FOUND', undefined, 'DELETE twice');
  t.same(await mediaDir(), ['tone.wav'], 'the file is gone from disk');
  await upload('sine.opus', opus);
});

t.test('media names: traversal and bad names never reach the filesystem', async (t) => {
  // A playable file next to the media folder: nothing may read it through the API.
  const secret = makeWav(8000, 1, 0.25);
  await writeFile(path.join(server.dir, 'secret.wav'), secret);
  const before = await outsideEntries();
  const mediaBefore = await mediaDir();
  const wav = makeWav(8000, 1, 0.1);
  const cases: { path: string; why: string; statuses: number[]; code?: RegExp }[] = [
    { path: '/v1/media/..%2fescape.wav', why: 'encoded ../', statuses: [400] },
    { path: '/v1/media/..%2F..%2Fescape.wav', why: 'encoded ../../ (upper case)', statuses: [400] },
    { path: '/v1/media/%2e%2e', why: 'encoded ..', statuses: [400] },
    { path: '/v1/media/%2e%2e%2fescape.wav', why: 'fully encoded ../', statuses: [400] },
    { path: '/v1/media/..%5cescape.wav', why: 'encoded ..\\', statuses: [400] },
    { path: '/v1/media/sub%2fescape.wav', why: 'encoded / inside the name', statuses: [400] },
    { path: '/v1/media/%2ftmp%2fescape.wav', why: 'encoded absolute path', statuses: [400] },
    { path: '/v1/media/.escape.wav', why: 'leading dot', statuses: [400] },
    { path: '/v1/media/-escape.wav', why: 'leading dash', statuses: [400] },
    { path: '/v1/media/escape%00.wav', why: 'NUL byte', statuses: [400] },
    { path: '/v1/media/esc%20ape.wav', why: 'space', statuses: [400] },
    { path: `/v1/media/${'e'.repeat(129)}`, why: '129 characters', statuses: [400] },
    // Past the schema's maxLength (1024) the schema or the router may answer first (400 or 414).
    {
      path: `/v1/media/${'e'.repeat(2000)}`,
      why: '2000 characters',
      statuses: [400, 414],
      code: /^OFFCAST_(INVALID_NAME|BAD_REQUEST|URI_TOO_LONG|MAX_PARAM_LENGTH)$/,
    },
    // Literal dot segments: the router has no route with more segments.
    { path: '/v1/media/../escape.wav', why: 'literal ../', statuses: [404] },
    { path: '/v1/media/../../escape.wav', why: 'literal ../../', statuses: [404] },
    { path: '/v1/media/sub/escape.wav', why: 'two segments', statuses: [404] },
  ];
  for (const c of cases) {
    for (const method of ['PUT', 'GET', 'DELETE']) {
      const res = await rawRequest(method, c.path, method === 'PUT' ? wav : undefined);
      t.ok(c.statuses.includes(res.status), `${method} ${c.why}: ${res.status} in ${c.statuses} (${res.text.slice(0, 160)})`);
      isError(t, res, res.status, c.code ?? (res.status === 400 ? 'OFFCAST_INVALID_NAME' : 'OFFCAST_NOT_FOUND'), undefined, `${method} ${c.why}`);
      if (res.body?.code === 'OFFCAST_INVALID_NAME') t.match(res.body?.message, /1-128 characters/, `${method} ${c.why}: the message gives the rule`);
    }
  }
  // Names in session bodies go through the same check.
  for (const media of ['../secret.wav', '..', '/etc/passwd', `${'e'.repeat(129)}`, '.hidden']) {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', media, destination: { host: '127.0.0.1', port: 29998 } });
    isError(t, res, 400, 'OFFCAST_INVALID_NAME', undefined, `session media ${JSON.stringify(media)}`);
  }
  t.same(await outsideEntries(), before, 'nothing was created outside the media folder');
  t.same(await mediaDir(), mediaBefore, 'nothing was created inside it either');
  t.ok((await readFile(path.join(server.dir, 'secret.wav'))).equals(secret), 'the file outside is untouched');
});

t.test('media names: the longest valid name (128 characters) works', async (t) => {
  for (const length of [100, 101, 128]) {
    const name = `${'n'.repeat(length - 4)}.wav`;
    const put = await server.api('PUT', `/v1/media/${name}`, makeWav(8000, 1, 0.1));
    t.equal(put.status, 201, `PUT a ${length}-character name (${put.text.slice(0, 200)})`);
    const get = await server.api('GET', `/v1/media/${name}`);
    t.equal(get.status, 200, `GET a ${length}-character name`);
    const del = await server.api('DELETE', `/v1/media/${name}`);
    t.equal(del.status, 204, `DELETE a ${length}-character name`);
  }
});

t.test('media: a symlink in the library that leads outside is not read', async (t) => {
  const outside = path.join(server.dir, 'outside.wav');
  await writeFile(outside, makeWav(8000, 1, 0.25));
  await symlink(outside, path.join(server.mediaRoot, 'link.wav'));
  t.teardown(() => rm(path.join(server.mediaRoot, 'link.wav'), { force: true }));
  const list = await server.api('GET', '/v1/media');
  t.notOk(
    list.body.media.some((m) => m.name === 'link.wav'),
    'the list hides it (storage/library.ts rule)',
  );
  isError(t, await server.api('GET', '/v1/media/link.wav'), 404, 'OFFCAST_MEDIA_NOT_FOUND', undefined, 'GET through the link');
  isError(
    t,
    await server.api('POST', '/v1/sessions', { mode: 'play', media: 'link.wav', state: 'paused', destination: { host: '127.0.0.1', port: 29998 } }),
    404,
    'OFFCAST_MEDIA_NOT_FOUND',
    undefined,
    'play through the link',
  );
});

t.test('bad uploads: clear errors, nothing left behind', async (t) => {
  await upload('keep.wav', makeWav(8000, 1, 0.5));
  const keep = await readFile(path.join(server.mediaRoot, 'keep.wav'));
  const wav = makeWav(8000, 1, 1);
  let seed = 12345;
  const random = Buffer.alloc(4096);
  for (let i = 0; i < random.length; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    random[i] = seed >> 16;
  }
  // An MP3: ID3v2 tag, then MPEG-1 layer III frame headers.
  const mp3 = Buffer.concat([
    Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x0a', 'latin1'),
    Buffer.alloc(10),
    Buffer.from([0xff, 0xfb, 0x90, 0x64]),
    Buffer.alloc(413),
  ]);
  const float = Buffer.from(makeWav(8000, 1, 0.1));
  float.writeUInt16LE(3, 20); // IEEE float format tag
  float.writeUInt16LE(32, 34);
  const cases: { name: string; body: Buffer; status: number; code: string; message: RegExp }[] = [
    {
      name: 'truncated WAV',
      body: wav.subarray(0, 4000),
      status: 422,
      code: 'OFFCAST_CORRUPT_MEDIA',
      message: /truncated: data chunk declares 16000 bytes, file holds 3956/,
    },
    { name: 'WAV cut inside its header', body: wav.subarray(0, 30), status: 422, code: 'OFFCAST_CORRUPT_MEDIA', message: /truncated/ },
    { name: 'random bytes', body: random, status: 415, code: 'OFFCAST_UNSUPPORTED_MEDIA', message: /unrecognized media format/ },
    { name: 'MP3', body: mp3, status: 415, code: 'OFFCAST_UNSUPPORTED_MEDIA', message: /unrecognized media format \(first bytes: 49 44 33/ },
    {
      name: 'RIFF but AVI',
      body: Buffer.concat([Buffer.from('RIFF\x10\x00\x00\x00AVI LIST', 'latin1'), Buffer.alloc(64)]),
      status: 415,
      code: 'OFFCAST_UNSUPPORTED_MEDIA',
      message: /unrecognized|not WAVE/,
    },
    { name: 'float WAV', body: float, status: 415, code: 'OFFCAST_UNSUPPORTED_MEDIA', message: /WAV/ },
    { name: 'a JSON document', body: Buffer.from('{"not": "media"}'), status: 415, code: 'OFFCAST_UNSUPPORTED_MEDIA', message: /unrecognized media format/ },
  ];
  const listBefore = (await server.api('GET', '/v1/media')).body;
  const dirBefore = await mediaDir();
  for (const c of cases) {
    for (const name of ['fresh.wav', 'keep.wav']) {
      const res = await server.api('PUT', `/v1/media/${name}`, c.body);
      isError(t, res, c.status, c.code, c.message, `${c.name} as ${name}`);
      t.same(await mediaDir(), dirBefore, `${c.name} as ${name}: no file (or temp file) left in the media folder`);
    }
  }
  t.same((await server.api('GET', '/v1/media')).body, listBefore, 'the list is unchanged');
  isError(t, await server.api('GET', '/v1/media/fresh.wav'), 404, 'OFFCAST_MEDIA_NOT_FOUND');
  t.ok((await readFile(path.join(server.mediaRoot, 'keep.wav'))).equals(keep), 'a failed replace leaves the existing file intact');

  // Empty bodies: without a content type Fastify hands the route no body (400),
  // with one the empty stream is stored and probed (422). Both say what is wrong.
  isError(t, await server.api('PUT', '/v1/media/empty.wav', new Uint8Array(0)), 400, 'OFFCAST_BAD_REQUEST', /needs a body/, 'empty body');
  isError(
    t,
    await server.api('PUT', '/v1/media/empty.wav', new Uint8Array(0), { 'content-type': 'application/octet-stream' }),
    422,
    'OFFCAST_CORRUPT_MEDIA',
    /empty file/,
    'empty octet-stream',
  );
  t.same(await mediaDir(), dirBefore, 'empty uploads leave nothing');
});

t.test('uploads: any content type is stored as media', async (t) => {
  const wav = makeWav(8000, 1, 0.2);
  for (const type of ['audio/wav', 'audio/x-wav', 'application/octet-stream', 'application/x-www-form-urlencoded', 'text/plain', 'application/json']) {
    const res = await server.api('PUT', '/v1/media/typed.wav', wav, { 'content-type': type });
    t.ok(res.status === 201 || res.status === 200, `Content-Type ${type}: stored (${res.status} ${res.text.slice(0, 200)})`);
  }
  await server.api('DELETE', '/v1/media/typed.wav');
});

t.test('an upload aborted by the client leaves no file behind', async (t) => {
  const before = await mediaDir();
  const u = new URL(server.url);
  const wav = makeWav(8000, 1, 2);
  await new Promise<void>((resolve) => {
    const req = http.request({
      host: u.hostname,
      port: u.port,
      method: 'PUT',
      path: '/v1/media/aborted.wav',
      agent: false,
      headers: { 'content-length': String(wav.length) },
    });
    req.on('error', () => resolve());
    req.write(wav.subarray(0, 10000), () => setImmediate(() => req.destroy()));
    req.on('close', () => resolve());
  });
  // The server notices the close asynchronously: wait for the temp file to go (bounded).
  const deadline = Date.now() + 10_000;
  let now = await mediaDir();
  while (Date.now() < deadline && now.join() !== before.join()) {
    await new Promise((r) => setTimeout(r, 50));
    now = await mediaDir();
  }
  t.same(now, before, 'no temp file and no aborted.wav');
  isError(t, await server.api('GET', '/v1/media/aborted.wav'), 404, 'OFFCAST_MEDIA_NOT_FOUND');
});

// --- sessions ------------------------------------------------------------------------

t.test('sessions: invalid bodies get 400 {statusCode, code, message}', async (t) => {
  await upload('tone.wav', makeWav(16000, 2, 1));
  const dest = { host: '127.0.0.1', port: 29998 };
  const base = { mode: 'play', media: 'tone.wav', state: 'paused', destination: dest };
  const cases: [string, unknown, RegExp?][] = [
    ['missing destination', { mode: 'play', media: 'tone.wav' }, /destination/],
    ['missing mode', { media: 'tone.wav', destination: dest }, /mode/],
    ['mode record with a play body', { ...base, mode: 'record' }, /name|tracks|additional/],
    ['missing media', { mode: 'play', destination: dest }, /media/],
    ['destination without port', { ...base, destination: { host: '127.0.0.1' } }, /port/],
    ['destination without host', { ...base, destination: { port: 29998 } }, /host/],
    ['port above 65535', { ...base, destination: { host: '127.0.0.1', port: 70000 } }, /port/],
    ['port 0', { ...base, destination: { host: '127.0.0.1', port: 0 } }, /port/],
    ['negative port', { ...base, destination: { host: '127.0.0.1', port: -2 } }, /port/],
    ['fractional port', { ...base, destination: { host: '127.0.0.1', port: 29998.5 } }, /port/],
    ['port not a number', { ...base, destination: { host: '127.0.0.1', port: 'rtp' } }, /port/],
    ['odd destination port', { ...base, destination: { host: '127.0.0.1', port: 29997 } }, /even/],
    ['empty host', { ...base, destination: { host: '', port: 29998 } }, /host/],
    ['unknown field', { ...base, volume: 11 }, /volume|additional/],
    ['unknown field in destination', { ...base, destination: { ...dest, ttl: 4 } }, /ttl|additional/],
    ['wrong codec', { ...base, codec: 'G722' }, /codec/],
    ['codec in lower case', { ...base, codec: 'pcmu' }, /codec/],
    ['speed 0', { ...base, speed: 0 }, /speed/],
    ['negative speed', { ...base, speed: -1 }, /speed/],
    ['speed above 100', { ...base, speed: 101 }, /speed/],
    ['speed as a word', { ...base, speed: 'fast' }, /speed/],
    ['negative startMs', { ...base, startMs: -1 }, /startMs/],
    ['bad state', { ...base, state: 'stopped' }, /state/],
    ['loop not a boolean', { ...base, loop: 'sometimes' }, /loop/],
    ['frameRate 0', { ...base, frameRate: 0 }, /frameRate/],
    ['body is an array', [base], undefined],
  ];
  const sessionsBefore = (await server.api('GET', '/v1/sessions')).body.sessions;
  for (const [name, body, message] of cases) {
    const res = await server.api('POST', '/v1/sessions', body);
    isError(t, res, 400, /^OFFCAST_(BAD_REQUEST|INVALID_NAME)$/, message, name);
  }
  const malformed = await server.api('POST', '/v1/sessions', '{"mode": "play",', { 'content-type': 'application/json' });
  isError(t, malformed, 400, undefined, /JSON/i, 'malformed JSON');
  isError(t, await server.api('POST', '/v1/sessions', '"play"', { 'content-type': 'application/json' }), 400, undefined, undefined, 'body is a JSON string');
  const noType = await server.api('POST', '/v1/sessions', JSON.stringify(base), { 'content-type': 'text/plain' });
  // text/plain is no body type of this route (SDP comes only as application/sdp: issue 9, CSRF).
  isError(t, noType, 415, undefined, undefined, 'JSON sent as text/plain');
  const after = (await server.api('GET', '/v1/sessions')).body.sessions;
  t.equal(after.length, sessionsBefore.length, 'no session was created');
  for (const s of after) if (!sessionsBefore.some((b) => b.id === s.id)) await server.api('DELETE', `/v1/sessions/${s.id}`);
});

t.test('sessions: unknown media and unknown session ids get 404', async (t) => {
  isError(
    t,
    await server.api('POST', '/v1/sessions', { mode: 'play', media: 'nope.wav', destination: { host: '127.0.0.1', port: 29998 } }),
    404,
    'OFFCAST_MEDIA_NOT_FOUND',
    /nope\.wav/,
    'unknown media',
  );
  const ids = ['3f2a9c1e-0b7d-4e8a-9c1d-2b3e4f5a6b7c', 'nope'];
  for (const id of ids) {
    isError(t, await server.api('GET', `/v1/sessions/${id}`), 404, 'OFFCAST_SESSION_NOT_FOUND', new RegExp(id), `GET ${id}`);
    isError(t, await server.api('GET', `/v1/sessions/${id}/sdp`), 404, 'OFFCAST_SESSION_NOT_FOUND', undefined, `GET ${id}/sdp`);
    isError(t, await server.api('PATCH', `/v1/sessions/${id}`, { state: 'paused' }), 404, 'OFFCAST_SESSION_NOT_FOUND', undefined, `PATCH ${id}`);
    isError(t, await server.api('DELETE', `/v1/sessions/${id}`), 404, 'OFFCAST_SESSION_NOT_FOUND', undefined, `DELETE ${id}`);
  }
});

t.test('sessions: destinations outside destinations.allow get 403 and nothing is set up', async (t) => {
  const sessions = (await server.api('GET', '/v1/sessions')).body.sessions;
  const freePorts = server.ports.free;
  const cacheEntries = server.cache.size;
  const packets = (await metrics()).values.get('offcast_rtp_packets_sent_total');
  for (const host of [
    '10.1.2.3',
    '8.8.8.8',
    '0.0.0.0',
    '255.255.255.255',
    '192.168.1.1',
    '::ffff:10.1.2.3',
    '::ffff:8.8.8.8',
    '2001:4860:4860::8888',
    '::',
    'fe80::1',
  ]) {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', loop: true, destination: { host, port: 29998 } });
    isError(t, res, 403, 'OFFCAST_DESTINATION_FORBIDDEN', /destinations\.allow/, host);
  }
  t.same((await server.api('GET', '/v1/sessions')).body.sessions, sessions, 'the session list is unchanged');
  t.equal(server.ports.free, freePorts, 'no port was allocated');
  t.equal(server.cache.size, cacheEntries, 'no media was loaded');
  t.equal((await metrics()).values.get('offcast_rtp_packets_sent_total'), packets, 'no packet was sent');
  // Loopback in every spelling is allowed.
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost', '::ffff:127.0.0.1']) {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', state: 'paused', destination: { host, port: 29998 } });
    t.equal(res.status, 201, `${host} is allowed (${res.text.slice(0, 200)})`);
    if (res.status === 201) await server.api('DELETE', `/v1/sessions/${res.body.id}`);
  }
});

t.test('sessions: codec choices that cannot work', async (t) => {
  await upload('hifi.wav', makeWav(48000, 2, 0.5));
  await upload('wide.wav', makeWav(16000, 1, 0.5));
  await upload('sine.opus', await readFile(OPUS_FIXTURE));
  const freePorts = server.ports.free;
  const dest = { host: '127.0.0.1', port: 29998 };
  for (const codec of ['PCMU', 'PCMA']) {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'hifi.wav', codec, destination: dest });
    isError(
      t,
      res,
      415,
      'OFFCAST_UNSUPPORTED_MEDIA',
      new RegExp(`${codec} needs 8000 Hz mono audio; this file is 48000 Hz stereo`),
      `${codec} on 48 kHz stereo`,
    );
    t.match(res.body.message, /play it as L16, or convert it: ffmpeg -i in\.wav -ar 8000 -ac 1 out\.wav/, `${codec}: says what to do`);
    const mono = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'wide.wav', codec, destination: dest });
    isError(t, mono, 415, 'OFFCAST_UNSUPPORTED_MEDIA', /16000 Hz 1-channel/, `${codec} on 16 kHz mono`);
  }
  for (const codec of ['PCMU', 'L16']) {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'sine.opus', codec, destination: dest });
    isError(t, res, 400, 'OFFCAST_BAD_REQUEST', new RegExp(`codec ${codec} applies to WAV audio; this media is ogg \\(opus\\)`), `codec ${codec} on Opus`);
  }
  t.equal(server.ports.free, freePorts, 'no ports held after the refusals');
  const ok = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'hifi.wav', codec: 'L16', state: 'paused', destination: dest });
  t.equal(ok.status, 201, 'L16 on the same file works');
  t.match(ok.body.tracks, [{ codec: 'L16', clockRate: 48000, channels: 2 }]);
  await server.api('DELETE', `/v1/sessions/${ok.body.id}`);
});

t.test('sessions: list with stats, get, patch, delete', async (t) => {
  await upload('tone.wav', makeWav(16000, 2, 1));
  const sink = await RtpSink.open();
  const other = await RtpSink.open();
  t.teardown(() => {
    sink.close();
    other.close();
  });
  const freePorts = server.ports.free;
  const playing = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'tone.wav',
    loop: true,
    destination: { host: '127.0.0.1', port: sink.port },
  });
  t.equal(playing.status, 201, playing.text.slice(0, 200));
  t.equal(playing.headers.get('location'), `/v1/sessions/${playing.body.id}`, 'Location header');
  t.match(playing.body, {
    mode: 'play',
    state: 'playing',
    media: 'tone.wav',
    destination: { host: '127.0.0.1', port: sink.port },
    loop: true,
    speed: 1,
    durationMs: 1000,
  });
  const paused = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'tone.wav',
    state: 'paused',
    destination: { host: '127.0.0.1', port: other.port },
  });
  t.equal(paused.status, 201);
  t.equal(server.ports.free, freePorts - 2, 'one port pair per single-track session');
  await sink.waitFor(20);

  const list = await server.api('GET', '/v1/sessions');
  t.equal(list.status, 200);
  const byId = new Map<string, ApiSession>(list.body.sessions.map((s) => [s.id, s]));
  const p = byId.get(playing.body.id)!;
  const q = byId.get(paused.body.id)!;
  t.ok(p && q, 'both sessions listed');
  t.equal(p.state, 'playing');
  t.equal(q.state, 'paused');
  t.ok(p.tracks[0].stats.packets >= 20, `the playing session counts its packets (${p.tracks[0].stats.packets})`);
  t.ok(p.tracks[0].stats.octets > 0, 'and its octets');
  t.equal(p.tracks[0].stats.sendErrors, 0, 'no send errors to a listening sink');
  t.equal(q.tracks[0].stats.packets, 0, 'the paused session sent nothing');
  t.type(p.sdp, 'string', 'the SDP is part of the view');

  const get = await server.api('GET', `/v1/sessions/${paused.body.id}`);
  t.equal(get.status, 200);
  t.match(get.body, { id: paused.body.id, state: 'paused', positionMs: 0 });

  // PATCH validation.
  const badPatches: [string, unknown][] = [
    ['empty body', {}],
    ['bad state', { state: 'stopped' }],
    ['negative position', { positionMs: -1 }],
    ['position as text', { positionMs: 'start' }],
    ['unknown field', { speed: 2 }],
    ['array body', [{ state: 'paused' }]],
  ];
  for (const [name, body] of badPatches)
    isError(t, await server.api('PATCH', `/v1/sessions/${paused.body.id}`, body), 400, 'OFFCAST_BAD_REQUEST', undefined, `PATCH ${name}`);
  const seek = await server.api('PATCH', `/v1/sessions/${paused.body.id}`, { positionMs: 500 });
  t.equal(seek.status, 200);
  t.match(seek.body, { state: 'paused', positionMs: 500 }, 'a seek while paused holds the new position');
  const resume = await server.api('PATCH', `/v1/sessions/${paused.body.id}`, { state: 'playing' });
  t.equal(resume.status, 200);
  t.equal(resume.body.state, 'playing');
  const pause = await server.api('PATCH', `/v1/sessions/${playing.body.id}`, { state: 'paused' });
  t.equal(pause.body.state, 'paused');

  for (const s of [playing, paused]) {
    const del = await server.api('DELETE', `/v1/sessions/${s.body.id}`);
    t.equal(del.status, 200);
    t.equal(del.body.state, 'ended', 'DELETE answers the final view');
    isError(t, await server.api('GET', `/v1/sessions/${s.body.id}`), 404, 'OFFCAST_SESSION_NOT_FOUND', undefined, 'gone after DELETE');
  }
  t.equal(server.ports.free, freePorts, 'DELETE returned the ports');
});

t.test('sessions: PATCH on an ended session is 409; max-speed sessions refuse seeks', async (t) => {
  await upload('blip.wav', makeWav(8000, 1, 0.2));
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'blip.wav', destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(res.status, 201);
  const ended = await waitState(server, res.body.id, 'ended', 20000);
  t.equal(ended.tracks[0].stats.packets, 10, '0.2 s of 8 kHz L16 in 20 ms packets');
  isError(t, await server.api('PATCH', `/v1/sessions/${res.body.id}`, { state: 'playing' }), 409, 'OFFCAST_SESSION_ENDED', /has ended/, 'PATCH after the end');
  t.equal((await server.api('DELETE', `/v1/sessions/${res.body.id}`)).status, 200, 'an ended session can still be deleted');

  const fast = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'blip.wav',
    speed: 'max',
    state: 'paused',
    destination: { host: '127.0.0.1', port: sink.port },
  });
  t.equal(fast.status, 201, fast.text.slice(0, 200));
  t.equal(fast.body.speed, 'max');
  isError(
    t,
    await server.api('PATCH', `/v1/sessions/${fast.body.id}`, { positionMs: 100 }),
    400,
    'OFFCAST_BAD_REQUEST',
    /speed.*max/,
    'seek on a max-speed session',
  );
  await server.api('DELETE', `/v1/sessions/${fast.body.id}`);
});

// --- errors --------------------------------------------------------------------------

t.test('errors: unknown routes and methods have the same shape', async (t) => {
  isError(t, await server.api('GET', '/nope'), 404, 'OFFCAST_NOT_FOUND', /no route GET \/nope/, 'unknown route');
  isError(t, await server.api('GET', '/v1/nope?x=1'), 404, 'OFFCAST_NOT_FOUND', /^no route GET \/v1\/nope$/, 'query string left out of the message');
  isError(t, await server.api('POST', '/v1/media/tone.wav', {}), 404, 'OFFCAST_NOT_FOUND', undefined, 'unknown method on a known path');
  isError(t, await server.api('PUT', '/v1/sessions/x', {}), 404, 'OFFCAST_NOT_FOUND', undefined, 'PUT on a session');
  isError(t, await rawRequest('GET', '/v1/media/%zz'), 400, undefined, undefined, 'a malformed percent-escape');
  isError(t, await rawRequest('GET', `/v1/sessions/${'x'.repeat(300)}`), 400, undefined, undefined, 'an over-long session id');
  const health = await server.api('GET', '/healthz');
  t.same(health.body, { status: 'ok', workers: 1 }, '/healthz');
});

t.test('errors: media removed from disk under the server', async (t) => {
  // The probe is cached; the file then disappears without the API knowing.
  await upload('vanish.wav', makeWav(8000, 1, 0.5));
  t.equal((await server.api('GET', '/v1/media/vanish.wav')).status, 200);
  await rm(path.join(server.mediaRoot, 'vanish.wav'));
  isError(
    t,
    await server.api('POST', '/v1/sessions', { mode: 'play', media: 'vanish.wav', destination: { host: '127.0.0.1', port: 29998 } }),
    404,
    'OFFCAST_MEDIA_NOT_FOUND',
    undefined,
    'play after removal',
  );
  isError(t, await server.api('GET', '/v1/media/vanish.wav'), 404, 'OFFCAST_MEDIA_NOT_FOUND', undefined, 'probe after removal');

  // Same size, same mtime, same inode, new bytes: the cached probe is stale and
  // the offload finds garbage. The answer must still be a clean 4xx.
  const wav = makeWav(8000, 1, 0.5);
  await upload('stale.wav', wav);
  t.equal((await server.api('GET', '/v1/media/stale.wav')).status, 200);
  const file = path.join(server.mediaRoot, 'stale.wav');
  const st = await stat(file);
  const garbage = Buffer.alloc(wav.length, 0x5a);
  const { open } = await import('node:fs/promises');
  const fh = await open(file, 'r+');
  await fh.write(garbage, 0, garbage.length, 0);
  await fh.close();
  await utimes(file, st.atime, st.mtime);
  const stale = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'stale.wav', destination: { host: '127.0.0.1', port: 29998 } });
  t.ok(stale.status >= 400 && stale.status < 500, `a stale probe over garbage is a 4xx (${stale.status} ${stale.text.slice(0, 200)})`);
  isError(t, stale, stale.status, undefined, undefined, 'stale probe');

  // Removal racing session creation: whatever wins, never a 5xx.
  for (let i = 0; i < 8; i++) {
    await upload('race.wav', makeWav(8000, 1, 0.3));
    const [res] = await Promise.all([
      server.api('POST', '/v1/sessions', { mode: 'play', media: 'race.wav', state: 'paused', destination: { host: '127.0.0.1', port: 29998 } }),
      rm(path.join(server.mediaRoot, 'race.wav')),
    ]);
    t.ok(res.status === 201 || res.status === 404, `race ${i}: ${res.status} (${res.text.slice(0, 160)})`);
    if (res.status === 201) await server.api('DELETE', `/v1/sessions/${res.body.id}`);
    else isError(t, res, 404, /^OFFCAST_MEDIA_NOT_FOUND$/, undefined, `race ${i}`);
  }
});

t.test('errors: a 5xx carries no internals', async (t) => {
  // The media folder vanishes: uploads fail inside the server.
  await rm(server.mediaRoot, { recursive: true, force: true });
  const res = await server.api('PUT', '/v1/media/nowhere.wav', makeWav(8000, 1, 0.1));
  isError(t, res, 500, 'OFFCAST_INTERNAL', /^internal server error$/, 'upload with the media folder gone');
  t.notMatch(res.text, /ENOENT|\/tmp|offcast-test|at .*\.ts/, 'no errno, path or stack in the body');
  await mkdir(server.mediaRoot, { recursive: true });

  // Every kind of error the handler meets, through a route of our own on a private server.
  const dir = path.join(server.dir, 'private');
  const config = loadConfig({
    argv: [],
    env: {},
    overrides: {
      'http.port': 0,
      mediaRoot: path.join(dir, 'media'),
      recordingsRoot: path.join(dir, 'rec'),
      'log.level': 'silent',
      'rtp.portMin': 50000,
      'rtp.portMax': 50003,
      // No RTSP listener: parallel test files must not fight over port 8554.
      'rtsp.port': 0,
    },
  });
  const own = await buildServer(config, { logger: false });
  t.teardown(() => own.close());
  const secret = '/srv/offcast/media/x.wav: EISDIR: illegal operation on a directory, read';
  const throwers: [string, () => Error, number][] = [
    ['plain Error', () => new Error(secret), 500],
    ['TypeError', () => new TypeError(secret), 500],
    ['OffloadError 500 (a worker’s unexpected failure)', () => new OffloadError('OFFCAST_OFFLOAD_ERROR', secret, 500), 500],
    ['OffloadError LOAD_FAILED', () => new OffloadError('OFFCAST_LOAD_FAILED', `loading media failed: ${secret}`, 500), 500],
    // 4xx messages are written for the client and pass through.
    ['CorruptMediaError', () => new CorruptMediaError('truncated: data chunk declares 10 bytes, file holds 4'), 422],
    [
      'HttpError 503 (a message the control plane wrote)',
      () => new HttpError(503, 'OFFCAST_SESSION_LIMIT', 'limits.maxSessions (2) sessions are running'),
      503,
    ],
  ];
  throwers.forEach(([, make], i) =>
    own.app.get(`/boom/${i}`, async () => {
      throw make();
    }),
  );
  for (const [i, [name, make, status]] of throwers.entries()) {
    const r = await own.app.inject({ method: 'GET', url: `/boom/${i}` });
    const body = r.json();
    t.equal(r.statusCode, status, `${name}: status ${status}`);
    t.same(Object.keys(body).sort(), ['code', 'message', 'statusCode'], `${name}: the error shape`);
    if (name.startsWith('CorruptMediaError') || name.startsWith('HttpError')) t.equal(body.message, make().message, `${name}: the message is passed on`);
    else t.notMatch(body.message, /EISDIR|\/srv\//, `${name}: the message does not leak the internal error (${body.message})`);
  }
});

// --- metrics and cache ---------------------------------------------------------------

t.test('/metrics: Prometheus text with the data-plane figures', async (t) => {
  await upload('metric.wav', makeWav(8000, 1, 0.4));
  const errorsBefore = (await metrics()).values.get('offcast_send_errors_total')!;
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'metric.wav', destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(res.status, 201);
  const running = await metrics();
  t.match(running.text, /^offcast_sessions\{state="(playing|ended)"\} 1$/m, 'offcast_sessions by state');
  await waitState(server, res.body.id, 'ended', 20000);
  await sink.waitFor(20);

  const m = await metrics();
  const http = await server.api('GET', '/metrics');
  t.match(http.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/, 'Prometheus text format');
  const types: [string, string][] = [
    ['offcast_sessions', 'gauge'],
    ['offcast_rtp_packets_sent_total', 'counter'],
    ['offcast_send_errors_total', 'counter'],
    ['offcast_cache_bytes', 'gauge'],
    ['offcast_cache_hits_total', 'counter'],
    ['offcast_cache_misses_total', 'counter'],
    ['offcast_channel_payload_bytes_total', 'counter'],
    ['offcast_send_lateness_seconds', 'histogram'],
    ['offcast_scheduler_lag_seconds', 'histogram'],
  ];
  for (const [name, type] of types) t.match(m.text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${name} is a ${type}`);
  t.equal(m.values.get('offcast_sessions{state="ended"}'), 1, 'the ended session is counted');
  t.ok(m.values.get('offcast_rtp_packets_sent_total')! >= 20, `packets sent counted (${m.values.get('offcast_rtp_packets_sent_total')})`);
  t.equal(m.values.get('offcast_send_errors_total')! - errorsBefore, 0, 'no send errors to a listening sink');
  t.ok(m.values.get('offcast_cache_bytes')! > 0, 'the cache holds bytes');
  t.ok(m.values.get('offcast_cache_misses_total')! >= 1, 'a miss was counted');
  t.equal(m.values.get('offcast_channel_payload_bytes_total'), 0, 'no media bytes crossed the control/offload channel');
  for (const h of ['offcast_send_lateness_seconds', 'offcast_scheduler_lag_seconds']) {
    const buckets = [...m.values].filter(([k]) => k.startsWith(`${h}_bucket{`));
    t.ok(buckets.length >= 2, `${h}: buckets`);
    t.ok(m.values.has(`${h}_bucket{le="+Inf"}`), `${h}: +Inf bucket`);
    const counts = buckets.map(([, v]) => v);
    t.ok(
      counts.every((v, i) => i === 0 || v >= counts[i - 1]!),
      `${h}: cumulative buckets`,
    );
    t.equal(m.values.get(`${h}_bucket{le="+Inf"}`), m.values.get(`${h}_count`), `${h}: +Inf equals _count`);
    t.ok(m.values.has(`${h}_sum`), `${h}: _sum`);
  }
  t.ok(m.values.get('offcast_send_lateness_seconds_count')! >= 20, 'every send observed in the lateness histogram');
  await server.api('DELETE', `/v1/sessions/${res.body.id}`);
});

t.test('cache: the second session of the same media is a hit', async (t) => {
  await upload('cached.wav', makeWav(16000, 1, 1));
  const before = (await metrics()).values;
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const res = await server.api('POST', '/v1/sessions', {
      mode: 'play',
      media: 'cached.wav',
      state: 'paused',
      destination: { host: '127.0.0.1', port: 29998 },
    });
    t.equal(res.status, 201);
    ids.push(res.body.id);
  }
  const after = (await metrics()).values;
  const delta = (k: string): number => after.get(k)! - before.get(k)!;
  t.equal(delta('offcast_cache_misses_total'), 1, 'one miss');
  t.equal(delta('offcast_cache_hits_total'), 1, 'one hit');
  t.ok(after.get('offcast_cache_bytes')! > 0, 'cache bytes gauge > 0');
  t.ok(delta('offcast_cache_bytes') >= 32000, `the media's packets are accounted (${delta('offcast_cache_bytes')} bytes more)`);
  t.equal(after.get('offcast_channel_payload_bytes_total'), 0, 'still no payload bytes on the channel');
  // A different encoding of the same file is a different entry: a miss.
  const pcmu = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'cached.wav',
    codec: 'L16',
    state: 'paused',
    destination: { host: '127.0.0.1', port: 29998 },
  });
  t.equal(pcmu.status, 201);
  ids.push(pcmu.body.id);
  const third = (await metrics()).values;
  t.equal(third.get('offcast_cache_hits_total')! - after.get('offcast_cache_hits_total')!, 1, 'explicit L16 (the default) is the same entry: a hit');
  for (const id of ids) await server.api('DELETE', `/v1/sessions/${id}`);
});
