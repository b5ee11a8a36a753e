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

/**
 * Every route Fastify serves, as [method, url pattern], read from its own route tree
 * (`printRoutes`): a route added later is covered without touching this file.
 */
function fastifyRoutes(app: TestServer['app']): [string, string][] {
  const out: [string, string][] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    // "│   └── /:id (GET, HEAD, PATCH, DELETE)": 4 columns of tree art per level, then the segment
    // (a child's text continues its parent's: "/" + "v1/media" + "/:name").
    const m = /^([│├└─\s]*?)(\S+)(?: \(([^)]*)\))?\s*$/u.exec(line);
    if (m === null) continue;
    const depth = [...m[1]!].length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    for (const method of (m[3] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''))
      out.push([method, stack.join('')]);
  }
  return out;
}

/** The routes the README says are served without the token: the health check, the API reference and the dashboard's static files. */
const PUBLIC = /^\/(healthz|openapi\.json|docs(\/.*)?|dashboard\/[\w.-]+)?$/;

let server: TestServer;
let sessionId = '';
/** A finished recording, for the recordings routes. */
const REC = 'rec1';
t.before(async () => {
  server = await startServer({ 'api.token': TOKEN });
  const put = await server.api('PUT', '/v1/media/a.wav', makeWav(8000, 1, 1), good);
  if (put.status !== 201) throw new Error(`upload: ${put.status} ${put.text}`);
  const s = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'a.wav', state: 'paused', destination: { host: '127.0.0.1', port: 29998 } }, good);
  if (s.status !== 201) throw new Error(`session: ${s.status} ${s.text}`);
  sessionId = s.body.id;
  const r = await server.api(
    'POST',
    '/v1/sessions',
    { mode: 'record', name: REC, tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }] },
    good,
  );
  if (r.status !== 201) throw new Error(`record session: ${r.status} ${r.text}`);
  const stop = await server.api('DELETE', `/v1/sessions/${r.body.id}`, undefined, good);
  if (stop.status !== 200) throw new Error(`record stop: ${stop.status} ${stop.text}`);
});

/** A concrete URL for a route pattern: the session, the media file and the recording made above. */
function concrete(pattern: string): string {
  return pattern
    .replace(/^\/v1\/media\/:name/, '/v1/media/a.wav')
    .replace(/^\/v1\/recordings\/:name/, `/v1/recordings/${REC}`)
    .replace(':id', sessionId)
    .replace(':index', '0');
}

/** A body a route would accept with the right token (none for the others). */
function bodyFor(method: string, pattern: string): unknown {
  if (method === 'PUT' && pattern === '/v1/media/:name') return makeWav(8000, 1, 0.1);
  if (method === 'POST' && pattern === '/v1/sessions') return { mode: 'play', media: 'a.wav', destination: { host: '127.0.0.1', port: 29998 } };
  if (method === 'PATCH') return { state: 'playing' };
  return undefined;
}

t.test('the route list comes from Fastify and holds every resource', async (t) => {
  const routes = fastifyRoutes(server.app);
  const patterns = new Set(routes.map(([, url]) => url));
  for (const url of [
    '/healthz',
    '/metrics',
    '/v1/media',
    '/v1/media/:name',
    '/v1/sessions',
    '/v1/sessions/:id',
    '/v1/sessions/:id/sdp',
    '/v1/recordings',
    '/v1/recordings/:name',
    '/v1/recordings/:name/tracks/:index',
    '/v1/recordings/:name/tracks/:index/rtpdump',
  ]) {
    t.ok(patterns.has(url), `${url} is listed`);
  }
  t.ok(
    routes.some(([m, u]) => m === 'DELETE' && u === '/v1/recordings/:name'),
    'with its methods (DELETE /v1/recordings/:name)',
  );
  t.ok(
    routes.every(([m]) => /^[A-Z]+$/.test(m)),
    'every method parsed',
  );
});

t.test('the public routes answer without a token', async (t) => {
  const open = fastifyRoutes(server.app).filter(([m, url]) => PUBLIC.test(url) && (m === 'GET' || m === 'HEAD'));
  t.ok(open.some(([, u]) => u === '/healthz') && open.some(([, u]) => u === '/openapi.json'), 'the health check and the API reference are among them');
  for (const [method, pattern] of open) {
    const res = await server.api(method, pattern.replace('*', 'index.html'));
    t.not(res.status, 401, `${method} ${pattern}: ${res.status}`);
  }
});

t.test('every route Fastify serves but the public ones answers 401 without the right token', async (t) => {
  const routes = fastifyRoutes(server.app).filter(([, url]) => !PUBLIC.test(url));
  t.ok(routes.length >= 20, `${routes.length} method and route pairs`);
  const wrong: [string, Record<string, string>][] = [
    ['no header', {}],
    ['wrong token', { authorization: 'Bearer tok-0000000000000000' }],
    ['Basic scheme', { authorization: `Basic ${Buffer.from(`offcast:${TOKEN}`).toString('base64')}` }],
  ];
  for (const [method, pattern] of routes) {
    const url = concrete(pattern);
    for (const [name, headers] of wrong) {
      const res = await server.api(method, url, bodyFor(method, pattern), headers);
      t.equal(res.status, 401, `${method} ${pattern} with ${name}: 401`);
      if (method !== 'HEAD') t.equal(res.body?.code, 'OFFCAST_UNAUTHORIZED', `${method} ${pattern} with ${name}: the error code`);
    }
  }
  t.same((await readdir(server.mediaRoot)).sort(), ['a.wav'], 'no upload stored, no media deleted');
  t.equal((await server.api('GET', `/v1/recordings/${REC}`, undefined, good)).status, 200, 'the recording is still there');
  const list = await server.api('GET', '/v1/sessions', undefined, good);
  t.same(
    list.body.sessions.filter((s) => s.mode === 'play').map((s) => [s.id, s.state]),
    [[sessionId, 'paused']],
    'no play session created, changed or deleted',
  );
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
      t.same(
        res.body,
        { statusCode: 401, code: 'OFFCAST_UNAUTHORIZED', message: 'missing or wrong bearer token' },
        `${method} ${url()} with ${name}: the error body`,
      );
    }
  }
  // Nothing happened behind the refusals.
  t.same((await readdir(server.mediaRoot)).sort(), ['a.wav'], 'no upload stored, no media deleted');
  const list = await server.api('GET', '/v1/sessions', undefined, good);
  t.same(
    list.body.sessions.map((s) => [s.id, s.state]),
    [[sessionId, 'paused']],
    'no session created, changed or deleted',
  );
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
    ['POST', '/v1/sessions', { mode: 'play', media: 'a.wav', state: 'paused', destination: { host: '127.0.0.1', port: 29996 } }, 201],
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
  // Every route Fastify serves, GET routes with HEAD too, opens with the token (the recording last: DELETE removes it).
  const routes = fastifyRoutes(server.app).sort(([m1, u1], [m2, u2]) => Number(m1 === 'DELETE') - Number(m2 === 'DELETE') || u1.localeCompare(u2));
  const untested: string[] = [];
  for (const [method, pattern] of routes) {
    if (PUBLIC.test(pattern)) continue; // checked without a token above
    if (pattern.startsWith('/v1/sessions') || pattern.startsWith('/v1/media')) {
      const re = new RegExp(`^${pattern.replace(/:\w+/g, '[^/]+')}$`);
      if (!checks.some(([m, u]) => (m === method || (method === 'HEAD' && m === 'GET')) && re.test(u))) untested.push(`${method} ${pattern}`);
      continue; // done above, in an order that keeps the session alive
    }
    const res = await server.api(method, concrete(pattern), bodyFor(method, pattern), good);
    t.ok(res.status < 400, `${method} ${pattern}: ${res.status}`);
  }
  t.same(untested, [], 'the table above covers every media and session route Fastify serves');
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
