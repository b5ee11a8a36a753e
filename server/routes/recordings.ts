/** /v1/recordings: finished (and unfinished) recordings on disk, and their files. */
import type { FastifyPluginAsync } from 'fastify';
import type { Manifest } from '../../storage/recording/manifest.js';
import type { RecordingStore } from '../recordingStore.js';
import { errors, nameParams, recordingSummarySchema } from './schemas.js';

export interface RecordingRoutesOptions {
  store: RecordingStore;
}

function view(m: Manifest): Record<string, unknown> {
  const v: Record<string, unknown> = {
    name: m.name,
    state: m.state,
    createdAt: m.createdAt,
    durationMs: m.durationMs,
    tracks: m.tracks,
  };
  if (m.finishedAt !== undefined) v.finishedAt = m.finishedAt;
  if (m.reason !== undefined) v.reason = m.reason;
  if (m.error !== undefined) v.error = m.error;
  if (m.recovered !== undefined) v.recovered = m.recovered;
  return v;
}

const trackParams = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 1024 }, index: { type: 'integer', minimum: 0, maximum: 63 } },
  required: ['name', 'index'],
} as const;

export const recordingRoutes: FastifyPluginAsync<RecordingRoutesOptions> = async (app, opts) => {
  const { store } = opts;

  app.get(
    '/v1/recordings',
    {
      schema: {
        response: { 200: { type: 'object', properties: { recordings: { type: 'array', items: recordingSummarySchema } } }, ...errors },
      },
    },
    async () => ({ recordings: (await store.list()).map(view) }),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/recordings/:name',
    { schema: { params: nameParams, response: { 200: recordingSummarySchema, ...errors } } },
    async (req) => view(await store.manifest(req.params.name)),
  );

  app.delete<{ Params: { name: string } }>('/v1/recordings/:name', { schema: { params: nameParams, response: { ...errors } } }, async (req, reply) => {
    await store.delete(req.params.name);
    return reply.code(204).send();
  });

  app.get<{ Params: { name: string; index: number } }>(
    '/v1/recordings/:name/tracks/:index',
    { schema: { params: trackParams, response: { ...errors } } },
    async (req, reply) => {
      const f = await store.trackFile(req.params.name, req.params.index, 'playable');
      return reply
        .type(f.contentType)
        .header('content-length', f.bytes)
        .header('content-disposition', `inline; filename="${req.params.name}-${f.fileName}"`)
        .send(f.stream);
    },
  );

  app.get<{ Params: { name: string; index: number } }>(
    '/v1/recordings/:name/tracks/:index/rtpdump',
    { schema: { params: trackParams, response: { ...errors } } },
    async (req, reply) => {
      const f = await store.trackFile(req.params.name, req.params.index, 'rtpdump');
      return reply
        .type(f.contentType)
        .header('content-length', f.bytes)
        .header('content-disposition', `attachment; filename="${req.params.name}-${f.fileName}"`)
        .send(f.stream);
    },
  );
};
