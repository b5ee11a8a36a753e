/** /v1/sessions: create, list, inspect, control and end sessions. */
import type { FastifyPluginAsync } from 'fastify';
import type { SessionManager, PlayRequest } from '../sessions.js';
import { badRequest, invalidName } from '../errors.js';
import { fromJson, fromSdp, MAX_RECORD_TRACKS, type RecordJsonBody } from '../recordRequest.js';
import { isValidMediaName } from '../../storage/library.js';
import { errors, idParams, recordingResultSchema, sessionSchema } from './schemas.js';

export interface SessionRoutesOptions {
  sessions: SessionManager;
}

const hostSchema = { type: 'string', minLength: 1, maxLength: 255 } as const;
const portSchema = { type: 'integer', minimum: 1, maximum: 65535 } as const;

export const playBodySchema = {
  type: 'object',
  properties: {
    mode: { const: 'play' },
    media: { type: 'string', minLength: 1, maxLength: 1024 },
    live: { type: 'string', minLength: 1, maxLength: 200 },
    destination: {
      type: 'object',
      properties: { host: hostSchema, port: portSchema },
      required: ['host', 'port'],
      additionalProperties: false,
    },
    codec: { enum: ['L16', 'PCMU', 'PCMA'] },
    loop: { type: 'boolean' },
    state: { enum: ['playing', 'paused'] },
    startMs: { type: 'number', minimum: 0 },
    speed: { anyOf: [{ type: 'number', exclusiveMinimum: 0, maximum: 100 }, { const: 'max' }] },
    frameRate: { type: 'number', minimum: 1, maximum: 240 },
  },
  required: ['mode', 'destination'],
  additionalProperties: false,
} as const;

export const recordBodySchema = {
  type: 'object',
  properties: {
    mode: { const: 'record' },
    name: { type: 'string', minLength: 1, maxLength: 1024 },
    tracks: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_RECORD_TRACKS,
      items: {
        type: 'object',
        properties: {
          kind: { enum: ['audio', 'video'] },
          codec: { type: 'string', minLength: 1, maxLength: 32 },
          payloadType: { type: 'integer', minimum: 0, maximum: 127 },
          clockRate: { type: 'integer', minimum: 1000, maximum: 200000 },
          channels: { type: 'integer', minimum: 1, maximum: 2 },
          fmtp: {
            anyOf: [
              { type: 'string', maxLength: 4096 },
              { type: 'object', additionalProperties: { anyOf: [{ type: 'string', maxLength: 4096 }, { type: 'number' }] } },
            ],
          },
        },
        required: ['kind', 'codec', 'payloadType', 'clockRate'],
        additionalProperties: false,
      },
    },
    source: {
      type: 'object',
      properties: { host: hostSchema, port: portSchema },
      required: ['host'],
      additionalProperties: false,
    },
    rtcpMux: { type: 'boolean' },
  },
  required: ['mode', 'name', 'tracks'],
  additionalProperties: false,
} as const;

const createBodySchema = {
  type: 'object',
  properties: { mode: { enum: ['play', 'record'] } },
  required: ['mode'],
  allOf: [
    { if: { properties: { mode: { const: 'play' } } }, then: playBodySchema },
    { if: { properties: { mode: { const: 'record' } } }, then: recordBodySchema },
  ],
} as const;

export const sessionRoutes: FastifyPluginAsync<SessionRoutesOptions> = async (app, opts) => {
  const { sessions } = opts;

  // A sender's SDP (e.g. ffmpeg's -sdp_file) creates a record session.
  // Only as application/sdp, which a browser cannot send cross-origin without a preflight (text/plain it can):
  // Fastify's own text/plain parser goes too, so such a body is 415.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/sdp', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => done(null, body));

  app.post<{ Body: PlayRequest | (RecordJsonBody & { rtcpMux?: boolean }) | string; Querystring: { name?: string; rtcpMux?: string } }>(
    '/v1/sessions',
    {
      schema: {
        body: {
          content: {
            'application/json': { schema: createBodySchema },
            'application/sdp': { schema: { type: 'string', minLength: 1 } },
          },
        },
        querystring: {
          type: 'object',
          properties: { name: { type: 'string', maxLength: 1024 }, rtcpMux: { enum: ['true', 'false', '1', '0'] } },
        },
        response: { 201: sessionSchema, ...errors },
      },
    },
    async (req, reply) => {
      const body = req.body;
      let view;
      if (typeof body === 'string') {
        const name = req.query.name;
        if (name === undefined) throw badRequest('a record session from an SDP needs ?name=NAME');
        if (!isValidMediaName(name)) throw invalidName('recording', name);
        const request = fromSdp(name, body);
        const mux = req.query.rtcpMux === 'true' || req.query.rtcpMux === '1' || /^a=rtcp-mux\s*$/m.test(body);
        view = await sessions.recordings.create(request, mux);
      } else if (body.mode === 'record') {
        const rec = body;
        if (!isValidMediaName(rec.name)) throw invalidName('recording', rec.name);
        view = await sessions.recordings.create(fromJson(rec), rec.rtcpMux ?? false);
      } else {
        view = await sessions.createPlay(body);
      }
      return reply.code(201).header('location', `/v1/sessions/${view.id}`).send(view);
    },
  );

  app.get(
    '/v1/sessions',
    {
      schema: {
        response: { 200: { type: 'object', properties: { sessions: { type: 'array', items: sessionSchema } } }, ...errors },
      },
    },
    async () => ({ sessions: await sessions.list() }),
  );

  app.get<{ Params: { id: string } }>('/v1/sessions/:id', { schema: { params: idParams, response: { 200: sessionSchema, ...errors } } }, async (req) =>
    sessions.get(req.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/sessions/:id/sdp',
    { schema: { params: idParams, response: { 200: { type: 'string' }, ...errors } } },
    async (req, reply) => {
      const view = await sessions.get(req.params.id);
      return reply.type('application/sdp').send(view.sdp);
    },
  );

  app.patch<{ Params: { id: string }; Body: { state?: 'playing' | 'paused'; positionMs?: number } }>(
    '/v1/sessions/:id',
    {
      schema: {
        params: idParams,
        body: {
          type: 'object',
          properties: { state: { enum: ['playing', 'paused'] }, positionMs: { type: 'number', minimum: 0 } },
          additionalProperties: false,
          minProperties: 1,
        },
        response: { 200: sessionSchema, ...errors },
      },
    },
    async (req) => sessions.update(req.params.id, req.body),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/sessions/:id',
    {
      schema: {
        params: idParams,
        response: { 200: { anyOf: [recordingResultSchema, sessionSchema] }, ...errors },
      },
    },
    async (req) => sessions.delete(req.params.id),
  );
};
