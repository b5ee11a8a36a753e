// api.token: every route but /healthz needs `Authorization: Bearer <token>`.
import { readdir } from 'node:fs/promises';
import t from 'tap';
import { tokenMatches } from '../../server/auth.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';

const TOKEN = 'tok-3f2a9c1e0b7d4e8a';
const good = { authorization: `Bearer ${TOKEN}` };

t.test('tokenMatches', async (t) => {
  const cases: [string | undefined, boolean][] = [
    [`Bearer ${TOKEN}`, true],
    [`bearer ${TOKEN}`, true],
    [`BEARER ${TOKEN}`, true],
    [`Bearer   ${TOKEN}  `, true],
    [undefined, false],
    ['', false],
    ['Bearer', false],
    ['Bearer ', false],
    [TOKEN, false],
    [`Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`, false],
    [`Basic ${TOKEN}`, false],
    [`Token ${TOKEN}`, false],
    [`Bearer ${TOKEN.slice(0, -1)}`, false],
    [`Bearer ${TOKEN}x`, false],
    [`Bearer ${TOKEN} ${TOKEN}`, false],
    [`Bearer ${TOKEN.toUpperCase()}`, false],
    ['Bearer x', false],
    [`Bearer ${'a'.repeat(10000)}`, false],
  ];
  for (const [header, want] of cases) t.equal(tokenMatches(header, TOKEN), want, `${JSON.stringify(header?.slice(0, 60))} -> ${want}`);
  t.notOk(tokenMatches('Bearer ', ''), 'an empty token never matches an empty credential');
});

let server: TestServer;
let sessionId = '';
t.before(async () => {
  server = await startServer({ 'api.token': TOKEN });
  const put = await server.api('PUT', '/v1/media/a.wav', makeWav(8000, 1, 1), good);
  if (put.status !== 201) throw new Error(`upload: ${put.status} ${put.text}`);
  const s = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'a.wav', state: 'paused', destination: { host: '127.0.0.1', port: 29998 } }, good);
  if (s.status !== 201) throw new Error(`session: ${s.status} ${s.text}`);
  sessionId = s.body.id;
});
t.teardown(() => server?.stop());

t.test('/healthz needs no token', async (t) => {
  for (const url of ['/healthz', '/healthz?probe=1']) {
    const res = await server.api('GET', url);
    t.equal(res.status, 200, url);
    t.same(res.body, { status: 'ok', workers: 1 });
  }
  t.equal((await server.api('GET', '/healthz', undefined, { authorization: 'Bearer wrong' })).status, 200, 'a wrong token does not matter there');
});

t.test('every other route answers 401 without the right token', async (t) => {
  const routes: [string, () => string, unknown?][] = [
    ['GET', () => '/v1/media'],
    ['GET', () => '/v1/media/a.wav'],
    ['PUT', () => '/v1/media/b.wav', makeWav(8000, 1, 0.1)],
    ['DELETE', () => '/v1/media/a.wav'],
    ['GET', () => '/v1/sessions'],
    ['POST', () => '/v1/sessions', { mode: 'play', media: 'a.wav', destination: { host: '127.0.0.1', port: 29998 } }],
    ['GET', () => `/v1/sessions/${sessionId}`],
    ['GET', () => `/v1/sessions/${sessionId}/sdp`],
    ['PATCH', () => `/v1/sessions/${sessionId}`, { state: 'playing' }],
    ['DELETE', () => `/v1/sessions/${sessionId}`],
    ['GET', () => '/metrics'],
    ['GET', () => '/nope'],
    ['GET', () => '/healthz/'],
    ['GET', () => '/v1/healthz'],
  ];
  const wrong: [string, Record<string, string>][] = [
    ['no header', {}],
    ['wrong token', { authorization: 'Bearer tok-0000000000000000' }],
    ['shorter token', { authorization: `Bearer ${TOKEN.slice(0, 5)}` }],
    ['longer token', { authorization: `Bearer ${TOKEN}0` }],
    ['Basic scheme', { authorization: `Basic ${Buffer.from(`offcast:${TOKEN}`).toString('base64')}` }],
    ['token without a scheme', { authorization: TOKEN }],
    ['empty Bearer', { authorization: 'Bearer' }],
    ['token in another header', { 'x-api-token': TOKEN }],
  ];
  for (const [method, url, body] of routes) {
    for (const [name, headers] of wrong) {
      const res = await server.api(method, url(), body, headers);
      t.equal(res.status, 401, `${method} ${url()} with ${name}: 401`);
      t.same(res.body, { statusCode: 401, code: 'OFFCAST_UNAUTHORIZED', message: 'missing or wrong bearer token' }, `${method} ${url()} with ${name}: the error body`);
    }
  }
  // Nothing happened behind the refusals.
  t.same((await readdir(server.mediaRoot)).sort(), ['a.wav'], 'no upload stored, no media deleted');
  const list = await server.api('GET', '/v1/sessions', undefined, good);
  t.same(list.body.sessions.map((s: any) => [s.id, s.state]), [[sessionId, 'paused']], 'no session created, changed or deleted');
});

t.test('a 401 tells the client which scheme to use', async (t) => {
  const res = await server.api('GET', '/v1/media');
  t.equal(res.status, 401);
  t.match(res.headers.get('www-authenticate') ?? '', /^Bearer\b/, 'WWW-Authenticate: Bearer (RFC 9110 11.6.1, RFC 6750 3)');
});

t.test('the right token opens every route', async (t) => {
  const checks: [string, string, unknown, number][] = [
    ['GET', '/v1/media', undefined, 200],
    ['GET', '/v1/media/a.wav', undefined, 200],
    ['PUT', '/v1/media/b.wav', makeWav(8000, 1, 0.1), 201],
    ['DELETE', '/v1/media/b.wav', undefined, 204],
    ['GET', '/v1/sessions', undefined, 200],
    ['GET', `/v1/sessions/${sessionId}`, undefined, 200],
    ['GET', `/v1/sessions/${sessionId}/sdp`, undefined, 200],
    ['PATCH', `/v1/sessions/${sessionId}`, { state: 'paused' }, 200],
    ['GET', '/metrics', undefined, 200],
    ['GET', '/nope', undefined, 404],
    ['DELETE', `/v1/sessions/${sessionId}`, undefined, 200],
  ];
  for (const [method, url, body, status] of checks) {
    const res = await server.api(method, url, body, good);
    t.equal(res.status, status, `${method} ${url}: ${status}`);
  }
  const lower = await server.api('GET', '/v1/media', undefined, { authorization: `bearer ${TOKEN}` });
  t.equal(lower.status, 200, 'the scheme name is case-insensitive (RFC 9110 11.1)');
});

t.test('an unauthenticated upload is refused before its body is stored', async (t) => {
  const big = makeWav(48000, 2, 5);
  const res = await server.api('PUT', '/v1/media/big.wav', big);
  t.equal(res.status, 401);
  t.same((await readdir(server.mediaRoot)).sort(), ['a.wav'], 'no file, no temp file');
});

t.test('without api.token no header is needed', async (t) => {
  const open = await startServer();
  t.teardown(() => open.stop());
  t.equal((await open.api('GET', '/v1/media')).status, 200, 'no header');
  t.equal((await open.api('GET', '/v1/media', undefined, { authorization: 'Bearer anything' })).status, 200, 'a stray header is ignored');
  const empty = await startServer({ 'api.token': '' });
  t.teardown(() => empty.stop());
  t.equal((await empty.api('GET', '/v1/media')).status, 200, 'an empty api.token means no token');
});
