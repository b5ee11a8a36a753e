/** /v1/sessions: create, list, inspect, control and end sessions. */
import type { FastifyPluginAsync } from 'fastify';
import type { SessionManager, PlayRequest } from '../sessions.js';
import { badRequest } from '../errors.js';
import { errors, idParams, sessionSchema } from './schemas.js';

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

export const sessionRoutes: FastifyPluginAsync<SessionRoutesOptions> = async (app, opts) => {
  const { sessions } = opts;

  app.post<{ Body: PlayRequest }>(
    '/v1/sessions',
    { schema: { body: playBodySchema, response: { 201: sessionSchema, ...errors } } },
    async (req, reply) => {
      const body = req.body;
      if (body.media === undefined) throw badRequest('body must have "media" (the name of a media file)');
      const view = await sessions.createPlay(body);
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

  app.get<{ Params: { id: string } }>(
    '/v1/sessions/:id',
    { schema: { params: idParams, response: { 200: sessionSchema, ...errors } } },
    async (req) => sessions.get(req.params.id),
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
    { schema: { params: idParams, response: { 200: sessionSchema, ...errors } } },
    async (req) => sessions.delete(req.params.id),
  );
};
