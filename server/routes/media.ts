/** /v1/media: the media library (upload, list, probe, delete). */
import type { FastifyPluginAsync } from 'fastify';
import type { Readable } from 'node:stream';
import type { Probe, TrackInfo } from '../../storage/types.js';
import type { Catalog, UploadLimits } from '../catalog.js';
import type { CacheDirectory } from '../cache.js';
import { tooLarge } from '../errors.js';
import { errors, nameParams, probeSchema } from './schemas.js';

/** How long the body of an upload refused for the cap (503) is read and dropped before the connection closes. */
const BUSY_LINGER_MS = 1000;

export interface MediaRoutesOptions {
  catalog: Catalog;
  cache: CacheDirectory;
  upload: UploadLimits;
}

/** The probe as JSON: codec parameters summarized, no raw bytes. */
export function probeView(name: string, bytes: number, mtimeMs: number, probe: Probe): Record<string, unknown> {
  return {
    name,
    format: probe.format,
    bytes,
    durationMs: Math.round(probe.durationMs),
    modified: new Date(mtimeMs).toISOString(),
    tracks: probe.tracks.map(trackView),
  };
}

function trackView(t: TrackInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {
    index: t.index,
    kind: t.kind,
    codec: t.codec,
    supported: t.supported,
    clockRate: t.clockRate,
    durationMs: Math.round(t.durationMs),
  };
  if (t.channels !== undefined) out.channels = t.channels;
  if (t.h264) {
    out.width = t.h264.width;
    out.height = t.h264.height;
    out.profileLevelId = t.h264.profileLevelId;
    if (t.h264.frameRate !== undefined) out.frameRate = t.h264.frameRate;
  }
  if (t.aac) out.sampleRate = t.aac.sampleRate;
  if (t.opus) out.preSkip = t.opus.preSkip;
  return out;
}

export const mediaRoutes: FastifyPluginAsync<MediaRoutesOptions> = async (app, opts) => {
  const { catalog, cache, upload } = opts;
  const uploadBytes = upload.bytes;

  // Uploads are raw bodies of any type, streamed to disk by the catalog.
  // Any declared type (even application/json) is media: no parser buffers it before the size check.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.put<{ Params: { name: string } }>(
    '/v1/media/:name',
    {
      schema: { params: nameParams, response: { 200: probeSchema, 201: probeSchema, ...errors } },
      bodyLimit: Number.MAX_SAFE_INTEGER,
    },
    async (req, reply) => {
      catalog.checkName(req.params.name);
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > uploadBytes) {
        // Refuse before reading; the connection is closed so the client stops sending.
        reply.header('connection', 'close');
        throw tooLarge(uploadBytes);
      }
      const body = req.body as Readable | undefined;
      if (body === undefined || typeof body.pipe !== 'function') {
        return reply.code(400).send({ statusCode: 400, code: 'OFFCAST_BAD_REQUEST', message: 'the request needs a body: the media file' });
      }
      const item = await catalog.put(req.params.name, body, upload).catch((e: unknown) => {
        const err = e as { statusCode?: number };
        // The rest of an oversized or too slow body is not read: close the connection after the answer.
        if (err.statusCode === 413 || err.statusCode === 408) reply.header('connection', 'close');
        else if (err.statusCode === 503) {
          // Over the upload cap, before any of the body was read. Closing at once would reset the
          // connection under the unread body (clients then see no answer, and fetch retries): read
          // and drop it for a moment, then close if it is still coming.
          body.resume();
          reply.raw.once('finish', () => {
            if (req.raw.complete) return;
            setTimeout(() => {
              if (!req.raw.complete) req.raw.socket?.destroy();
            }, BUSY_LINGER_MS).unref();
          });
        }
        throw e;
      });
      cache.forgetMedia(`${item.name}|`);
      return reply.code(item.created ? 201 : 200).send(probeView(item.name, item.bytes, item.mtimeMs, item.probe));
    },
  );

  app.get(
    '/v1/media',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              media: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { name: { type: 'string' }, bytes: { type: 'integer' }, modified: { type: 'string' }, recording: { type: 'boolean' } },
                },
              },
            },
          },
          ...errors,
        },
      },
    },
    async () => {
      const list = await catalog.list();
      return {
        media: list.map((m) => ({ name: m.name, bytes: m.bytes, modified: new Date(m.mtimeMs).toISOString(), ...(m.recording ? { recording: true } : {}) })),
      };
    },
  );

  app.get<{ Params: { name: string } }>('/v1/media/:name', { schema: { params: nameParams, response: { 200: probeSchema, ...errors } } }, async (req) => {
    const item = await catalog.get(req.params.name);
    return probeView(item.name, item.bytes, item.mtimeMs, item.probe);
  });

  app.delete<{ Params: { name: string } }>('/v1/media/:name', { schema: { params: nameParams, response: { ...errors } } }, async (req, reply) => {
    await catalog.delete(req.params.name);
    cache.forgetMedia(`${req.params.name}|`);
    return reply.code(204).send();
  });
};
