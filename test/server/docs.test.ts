// The API reference: /openapi.json is a valid OpenAPI document (checked by a
// real validator), it names every route Fastify registered, and it and /docs
// are served without the token while the API still asks for it.
import t from 'tap';
import { validate, compileErrors } from '@readme/openapi-parser';
import { hasOperation, operationKey, routesOf } from '../../server/docs.js';
import { startServer } from '../helpers/server.js';
import type { ApiDoc } from '../helpers/apiTypes.js';

/** What the validator takes: the test's loose view of the document is one. */
type OpenApiInput = Parameters<typeof validate>[0];

const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;

t.test('the document is valid OpenAPI 3.1 and covers every route, status and body', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const res = await server.api<ApiDoc>('GET', '/openapi.json');
  t.equal(res.status, 200);
  const doc = res.body;
  t.match(doc.openapi, /^3\.1\./);

  // structuredClone: the validator dereferences in place.
  const result = await validate(structuredClone(doc) as unknown as OpenApiInput);
  t.ok(result.valid, result.valid ? 'valid' : compileErrors(result));
  const broken: { paths: Record<string, Record<string, { responses: unknown }>> } = structuredClone(doc);
  broken.paths['/v1/sessions'].post.responses = 'none';
  t.notOk((await validate(broken as unknown as OpenApiInput)).valid, 'the validator does reject a broken document');

  const routes = routesOf(server.app).filter((r) => !r.hidden && r.method !== 'HEAD' && r.method !== 'OPTIONS');
  t.ok(routes.length >= 17, `${routes.length} routes registered`);
  for (const r of routes) {
    const key = operationKey(r.method, r.url);
    const op = doc.paths[key.split(' ')[1]!]?.[r.method.toLowerCase()];
    t.ok(op, `${key} is in the document`);
    if (!op) continue;
    t.ok(hasOperation(key), `${key} has a summary and a tag`);
    t.type(op.summary, 'string');
    const statuses = Object.keys(op.responses ?? {});
    t.ok(
      statuses.some((s) => /^2/.test(s)),
      `${key} documents its success answer`,
    );
    if (r.url !== '/healthz' && r.url !== '/metrics') {
      for (const s of ['400', '401', '404', '500']) t.ok(op.responses[s], `${key} documents ${s}`);
      const err = op.responses['404'].content['application/json'].schema;
      t.same(err.required, ['statusCode', 'code', 'message'], `${key}: errors have the shared shape`);
      t.same(op.security, [{ bearer: [] }]);
    }
  }
  // The reverse: nothing in the document that the server does not answer.
  const known = new Set(routes.map((r) => operationKey(r.method, r.url)));
  for (const [p, item] of Object.entries<Record<string, unknown>>(doc.paths)) {
    for (const m of METHODS) if (item[m] !== undefined) t.ok(known.has(`${m.toUpperCase()} ${p}`), `${m} ${p} is a real route`);
  }

  const create = doc.paths['/v1/sessions'].post.requestBody.content;
  const examples = Object.values<{ value: { mode: string } }>(create['application/json'].examples).map((e) => e.value);
  t.ok(
    examples.some((e) => e.mode === 'play'),
    'a play example',
  );
  t.ok(
    examples.some((e) => e.mode === 'record'),
    'a record example',
  );
  t.match(create['application/sdp'].example, /^v=0\r\n/, 'the SDP body is documented, with an example');
  t.ok(doc.paths['/v1/sessions/{id}'].patch.requestBody.content['application/json'].examples, 'PATCH examples');
  t.ok(doc.paths['/v1/media/{name}'].put.responses['413'], 'upload limit documented');
  t.same(
    doc.paths['/v1/media/{name}'].put.responses['408'].content['application/json'].schema.required,
    ['statusCode', 'code', 'message'],
    'the upload timeout documented',
  );
});

t.test('the examples in the document are accepted by the server', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const doc = (await server.api<ApiDoc>('GET', '/openapi.json')).body;
  const examples = Object.values<{ value: { mode: string } }>(doc.paths['/v1/sessions'].post.requestBody.content['application/json'].examples);
  t.ok(examples.length >= 3);
  for (const { value: ex } of examples) {
    // No media named sample.wav and port 5004 may be busy: what matters is that validation passes (not 400).
    const res = await server.api('POST', '/v1/sessions', ex);
    t.not(res.status, 400, `${ex.mode} example passes validation: ${res.text}`);
    if (res.status === 201) await server.api('DELETE', `/v1/sessions/${res.body.id}`);
  }
});

t.test('with api.token, the reference is public and the API is not', async (t) => {
  const server = await startServer({ 'api.token': 's3cret' });
  t.teardown(() => server.stop());
  const doc = await server.api<ApiDoc>('GET', '/openapi.json');
  t.equal(doc.status, 200, '/openapi.json without a token');
  t.ok(doc.body.components.securitySchemes.bearer);
  const ui = await fetch(server.url + '/docs/');
  t.equal(ui.status, 200, '/docs/ without a token');
  t.match(await ui.text(), /swagger/i);
  const redirect = await fetch(server.url + '/docs', { redirect: 'manual' });
  t.ok(redirect.status === 200 || (redirect.status >= 300 && redirect.status < 400), `/docs answers ${redirect.status}`);
  t.equal((await server.api('GET', '/v1/sessions')).status, 401, 'the API still needs the token');
  t.equal((await server.api('GET', '/docs/../v1/sessions')).status, 401, 'no way around the token through /docs/..');
  t.equal((await server.api('GET', '/v1/sessions', undefined, { authorization: 'Bearer s3cret' })).status, 200);
});
