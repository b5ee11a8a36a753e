/**
 * The API reference: an OpenAPI 3.1 document at /openapi.json built by
 * @fastify/swagger from the routes' own schemas, and Swagger UI at /docs.
 *
 * The route files stay as they are: what a document needs beyond their schemas
 * (a summary and a tag per operation, the bearer scheme, the error shape named
 * on each error status, examples of session bodies, the 2xx answers that are
 * not JSON) is added here, in the document only — never to the schemas Fastify
 * validates and serializes with.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { errorSchema } from './errors.js';

/** A route as Fastify registered it (HEAD twins included). */
export interface RegisteredRoute {
  method: string;
  url: string;
  /** Left out of the document on purpose (the docs' own routes). */
  hidden: boolean;
}

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route registered on `app` after registerDocs ran (for the test that nothing is undocumented). */
export function routesOf(app: FastifyInstance): readonly RegisteredRoute[] {
  return registered.get(app) ?? [];
}

/** Paths served without the API token: the reference itself (the API it describes still needs it). */
export function isDocsPath(url: string): boolean {
  const path = url.split('?')[0]!;
  return path === '/openapi.json' || path === '/docs' || path.startsWith('/docs/');
}

interface Operation {
  summary: string;
  tag: 'media' | 'sessions' | 'recordings' | 'service';
  /** Answers the route schema does not declare (no body, or not JSON). */
  success?: Record<string, { description: string; content?: Record<string, unknown> }>;
  public?: boolean;
  /** Error statuses the route answers that its schema does not list. */
  moreErrors?: number[];
}

const binary = { schema: { type: 'string', format: 'binary' } };

/** One entry per operation; the docs test fails when a route has none. */
const OPERATIONS: Record<string, Operation> = {
  'GET /healthz': {
    summary: 'Liveness: the process answers and how many offload workers run',
    tag: 'service',
    public: true,
    success: {
      200: {
        description: 'up',
        content: {
          'application/json': {
            schema: { type: 'object', properties: { status: { const: 'ok' }, workers: { type: 'integer' } }, required: ['status', 'workers'] },
          },
        },
      },
    },
  },
  'GET /metrics': {
    summary: 'Prometheus metrics (text exposition format)',
    tag: 'service',
    success: { 200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } } },
  },
  'PUT /v1/media/{name}': { summary: 'Upload a media file (the raw body); answers with its probe', tag: 'media', moreErrors: [408] },
  'GET /v1/media': { summary: 'List the media library', tag: 'media' },
  'GET /v1/media/{name}': { summary: 'Probe one media file: format, duration, tracks', tag: 'media' },
  'DELETE /v1/media/{name}': { summary: 'Delete a media file', tag: 'media', success: { 204: { description: 'deleted' } } },
  'POST /v1/sessions': { summary: 'Start a play session, or a record session (JSON, or a sender’s SDP with ?name=)', tag: 'sessions' },
  'GET /v1/sessions': { summary: 'List sessions with their live statistics', tag: 'sessions' },
  'GET /v1/sessions/{id}': { summary: 'One session with its live statistics', tag: 'sessions' },
  'GET /v1/sessions/{id}/sdp': {
    summary: 'The session’s SDP (what a receiver opens, or what a sender sends to)',
    tag: 'sessions',
    success: { 200: { description: 'SDP', content: { 'application/sdp': { schema: { type: 'string' } } } } },
  },
  'PATCH /v1/sessions/{id}': { summary: 'Pause, resume or seek a play session', tag: 'sessions' },
  'DELETE /v1/sessions/{id}': { summary: 'End a session (a record session answers with its recording)', tag: 'sessions' },
  'GET /v1/recordings': { summary: 'List recordings on disk', tag: 'recordings' },
  'GET /v1/recordings/{name}': { summary: 'One recording’s manifest', tag: 'recordings' },
  'DELETE /v1/recordings/{name}': { summary: 'Delete a recording and its files', tag: 'recordings', success: { 204: { description: 'deleted' } } },
  'GET /v1/recordings/{name}/tracks/{index}': {
    summary: 'Download a recorded track as a playable file (wav, ogg, h264, aac)',
    tag: 'recordings',
    success: { 200: { description: 'the track file; content-type names its format', content: { 'application/octet-stream': binary } } },
  },
  'GET /v1/recordings/{name}/tracks/{index}/rtpdump': {
    summary: 'Download a recorded track as received, in rtpdump format',
    tag: 'recordings',
    success: { 200: { description: 'rtpdump file', content: { 'application/octet-stream': binary } } },
  },
};

/** `/v1/media/:name` -> `/v1/media/{name}` (the document's spelling). */
export function openapiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

export function operationKey(method: string, url: string): string {
  return `${method} ${openapiPath(url)}`;
}

export function hasOperation(key: string): boolean {
  return Object.hasOwn(OPERATIONS, key);
}

const ERROR_DESCRIPTIONS: Record<string, string> = {
  400: 'bad request: a field is invalid (the message names it)',
  401: 'missing or wrong bearer token (when api.token is set)',
  403: 'destination or source outside the allowed CIDRs',
  404: 'no such media, session, recording or route',
  409: 'conflict with the current state (a name in use, a session ended)',
  408: 'the upload body paused longer than limits.uploadIdleMs or took longer than limits.uploadTimeoutMs',
  413: 'upload larger than limits.uploadBytes',
  415: 'unsupported media type',
  422: 'the media cannot be played or the tracks cannot be recorded',
  500: 'internal error (details only in the server log)',
  503: 'over a limit (limits.maxSessions, ports, cache); try again later',
};

const SESSION_EXAMPLES = [
  { mode: 'play', media: 'sample.wav', destination: { host: '127.0.0.1', port: 5004 }, loop: true },
  { mode: 'play', media: 'sample.wav', destination: { host: '127.0.0.1', port: 5004 }, codec: 'PCMU', state: 'paused', startMs: 1000 },
  {
    mode: 'record',
    name: 'mic',
    tracks: [{ kind: 'audio', codec: 'opus', payloadType: 97, clockRate: 48000, channels: 2 }],
    source: { host: '127.0.0.1' },
  },
];
const SDP_EXAMPLE = 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=sender\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n';

type Schema = Record<string, unknown>;

/** The document's view of one route: the route's schemas plus what OPERATIONS adds. */
function documentRoute(method: string, url: string, schema: Schema | undefined): Schema {
  const op = OPERATIONS[operationKey(method, url)];
  const out: Schema = { ...(schema ?? {}) };
  if (op === undefined) return out;
  out.summary = op.summary;
  out.tags = [op.tag];
  if (!op.public) out.security = [{ bearer: [] }];
  const response: Schema = {};
  for (const [status, s] of Object.entries((schema?.response as Schema | undefined) ?? {})) {
    const desc = ERROR_DESCRIPTIONS[status];
    response[status] = desc === undefined ? s : { ...(s as Schema), description: desc };
  }
  for (const status of op.moreErrors ?? []) response[status] = { ...errorSchema, description: ERROR_DESCRIPTIONS[status] };
  for (const [status, s] of Object.entries(op.success ?? {})) {
    // A declared JSON schema for a non-JSON answer (the SDP's `type: string`) gives way to the real content type.
    response[status] = { description: s.description, ...(s.content ? { content: s.content } : {}) };
  }
  out.response = response;
  if (method === 'POST' && url === '/v1/sessions' && out.body !== undefined) {
    const content = (out.body as { content: Record<string, { schema: Schema }> }).content;
    const json = content['application/json']!;
    const sdp = content['application/sdp']!;
    out.body = {
      content: {
        ...content,
        'application/json': { schema: { ...json.schema, examples: SESSION_EXAMPLES } },
        'application/sdp': { schema: { ...sdp.schema, examples: [SDP_EXAMPLE] } },
      },
    };
  }
  if (method === 'PATCH' && out.body !== undefined) {
    out.body = { ...(out.body as Schema), examples: [{ state: 'paused' }, { state: 'playing' }, { positionMs: 5000 }] };
  }
  return out;
}

/**
 * Registers the document and the UI on the root app. Call it before the API's
 * routes, so that all of them are recorded and documented.
 */
export async function registerDocs(app: FastifyInstance, opts: { version: string }): Promise<void> {
  const list: RegisteredRoute[] = [];
  registered.set(app, list);
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const hidden = route.schema?.hide === true;
    for (const method of methods) list.push({ method, url: route.url, hidden });
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'offcast',
        version: opts.version,
        description:
          'UDP/RTP media streaming server: upload media, play it to RTP receivers, record RTP senders. ' +
          'Errors are `{statusCode, code, message}`. With `api.token` set, every route but /healthz (and this reference) needs `Authorization: Bearer TOKEN`.',
      },
      tags: [
        { name: 'media', description: 'the media library' },
        { name: 'sessions', description: 'play and record sessions' },
        { name: 'recordings', description: 'recordings on disk' },
        { name: 'service', description: 'health and metrics' },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'api.token' } } },
    },
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- tsc needs it: route.method may be an array
    transform: ({ schema, url, route }) => ({ schema: documentRoute(route.method as string, url, schema as Schema | undefined) as never, url }),
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true, persistAuthorization: false } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
