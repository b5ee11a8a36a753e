/**
 * The control plane: a Fastify app whose plugins are the HTTP resources, over
 * the offload client, the cache directory, the media catalog and the session
 * manager. `buildServer` wires them from one config; `close()` tears down in
 * order (sessions, HTTP, workers).
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import client from 'prom-client';
import { mkdir } from 'node:fs/promises';
import type { Config } from '../config/index.js';
import { OffloadError } from '../offload/channel.js';
import { MediaError } from '../storage/errors.js';
import { tokenMatches } from './auth.js';
import { CacheDirectory } from './cache.js';
import { Catalog } from './catalog.js';
import { crossOrigin, HttpError, unauthorized } from './errors.js';
import { createMetrics } from './metrics.js';
import { isDocsPath, registerDocs } from './docs.js';
import { isDashboardPath, registerDashboard } from './dashboardRoutes.js';
import { packageVersion } from './assets.js';
import { loggerOptions } from './logger.js';
import { OffloadClient } from './offload.js';
import { PortAllocator } from './ports.js';
import { mediaRoutes } from './routes/media.js';
import { sessionRoutes } from './routes/sessions.js';
import { SessionManager } from './sessions.js';
import { RecordSessions } from './recordSessions.js';
import { RecordingStore } from './recordingStore.js';
import { recordingRoutes } from './routes/recordings.js';
import { DEFAULT_RETENTION, SessionSlots, type Retention } from './sessionSupport.js';
import { RtspService } from './rtsp/service.js';

export interface Server {
  app: FastifyInstance;
  recordings: RecordSessions;
  store: RecordingStore;
  recovered: { name: string }[];
  config: Config;
  offload: OffloadClient;
  cache: CacheDirectory;
  catalog: Catalog;
  sessions: SessionManager;
  ports: PortAllocator;
  /** RTSP (null when rtsp.port is 0); `rtsp.port` is where it listens. */
  rtsp: RtspService | null;
  close(): Promise<void>;
}

export interface BuildOptions {
  /** Pino logger options or false (tests). */
  logger?: boolean | object;
  /** Address the offload binds RTP sockets to. */
  bindHost?: string;
  /** How long, and how many, ended sessions stay listed (per kind; tests shrink it). */
  retention?: Retention;
  /** Old-generation heap cap of each offload worker, MB (V8's default when unset; tests shrink it). */
  offloadHeapMb?: number;
  /** RTSP port instead of rtsp.port's; 0 here is any free port (tests), null no RTSP. */
  rtspPort?: number | null;
}

export async function buildServer(config: Config, opts: BuildOptions = {}): Promise<Server> {
  const logger = opts.logger ?? loggerOptions(config.log);
  const app = Fastify({
    logger,
    bodyLimit: 1024 * 1024,
    // close() ends keep-alive connections too, so shutdown never waits for idle clients.
    forceCloseConnections: true,
    // Every request (headers and body) must arrive in time; Fastify's default is no limit.
    // Uploads have their own, finer limits (limits.uploadTimeoutMs, limits.uploadIdleMs): this is the backstop.
    requestTimeout: config.limits.uploadTimeoutMs + 60_000,
    // Media names may have 128 characters (ids 200): the router must not cut them at its default 100.
    routerOptions: { maxParamLength: 1024 },
    // Unknown fields are errors, not silently dropped (Fastify's default removeAdditional: true).
    ajv: { customOptions: { removeAdditional: false } },
    // Router-level failures (bad percent-escapes, over-long params) in our error shape.
    frameworkErrors: (err, _req, reply) => {
      const status: number = err.statusCode ?? 400;
      void (reply as FastifyReply).code(status).send({ statusCode: status, code: `OFFCAST_${err.code.replace(/^FST_ERR_/, '')}`, message: err.message });
    },
  });

  const offload = new OffloadClient({
    workers: config.offload.workers,
    nativeSend: config.offload.nativeSend,
    bindHost: opts.bindHost ?? '0.0.0.0',
    rtcpIntervalMs: config.rtp.rtcpIntervalMs,
    ...(opts.offloadHeapMb === undefined ? {} : { maxOldGenerationMb: opts.offloadHeapMb }),
  });
  await offload.start();
  const catalog = new Catalog(config.mediaRoot, offload);
  await catalog.init();
  const cache = new CacheDirectory(offload, config.cache.maxBytes);
  const ports = new PortAllocator(config.rtp.portMin, config.rtp.portMax);
  const slots = new SessionSlots(config.limits.maxSessions);
  const retention = opts.retention ?? DEFAULT_RETENTION;
  // The store asks the record sessions whether a name is being written; they use the store for folders.
  const store: RecordingStore = new RecordingStore(config.recordingsRoot, (name): boolean => recordings.isRecording(name));
  const recordings: RecordSessions = new RecordSessions(config, offload, ports, slots, store, retention);
  const sessions = new SessionManager(config, offload, cache, catalog, ports, slots, recordings, retention);
  catalog.recordingsRoot = store.root;
  // One namespace for media and recordings: each side asks the other before it takes a name.
  catalog.recordingName = async (name) =>
    recordings.isRecording(name) ? `recording ${name} is in progress` : (await store.exists(name)) ? `a recording named ${name} exists` : null;
  recordings.mediaUploading = (name) => catalog.isUploading(name);
  await mkdir(store.root, { recursive: true });
  // Recordings a crash left unfinished are finalized before anything is served.
  const recovery = await recordings.recover();
  for (const r of recovery.recovered) app.log.warn({ recording: r.name, durationMs: r.durationMs }, 'recovered an unfinished recording');
  for (const e of recovery.errors) app.log.error({ recording: e.name, error: e.error }, 'could not recover a recording');
  offload.on('worker.exit', (worker, err) => app.log.error({ worker, err: err.message }, 'offload worker stopped'));

  // RTSP: the listener runs in the offload; this side decides its requests.
  const rtspPort = opts.rtspPort === undefined ? (config.rtsp.port === 0 ? null : config.rtsp.port) : opts.rtspPort;
  let rtsp: RtspService | null = null;
  if (rtspPort !== null) {
    rtsp = new RtspService(config, offload, { catalog, sessions, recordings, ports, slots }, { port: rtspPort, host: config.http.host, log: app.log });
    try {
      await rtsp.start();
    } catch (err) {
      // Nothing is served: the workers must not outlive the failed start.
      await offload.close();
      throw err;
    }
    app.log.info({ port: rtsp.port }, 'RTSP listening');
  }

  // Cross-site requests (CSRF, DNS rebinding aside): a browser sends Origin with
  // every cross-origin request and every non-GET; one that is not this server's
  // own origin is refused before anything else runs. Clients that are not
  // browsers send no Origin and are not affected.
  app.addHook('onRequest', async (req) => {
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, req.headers.host, req.protocol)) throw crossOrigin(origin);
  });

  const token = config.api.token;
  if (token !== undefined) {
    app.addHook('onRequest', async (req, reply) => {
      if (req.url === '/healthz' || req.url.startsWith('/healthz?') || isDocsPath(req.url) || isDashboardPath(req.url)) return;
      if (!tokenMatches(req.headers.authorization, token)) {
        reply.header('www-authenticate', 'Bearer realm="offcast"');
        throw unauthorized();
      }
    });
  }

  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    const e = err as FastifyError & { statusCode?: number; code?: string };
    if (err instanceof HttpError || err instanceof MediaError || err instanceof OffloadError) {
      const status = err.statusCode;
      // The cause under its own key: pino's `msg` would be replaced by the message argument.
      if (status >= 500) req.log.warn({ code: err.code, cause: err.message }, 'request failed');
      // Offload and storage 500s carry raw causes (paths, errno): keep them in the log only.
      const message = status === 500 && !(err instanceof HttpError) ? 'internal server error' : err.message;
      return reply.code(status).send({ statusCode: status, code: err.code, message });
    }
    if (e.validation !== undefined) {
      return reply.code(400).send({ statusCode: 400, code: 'OFFCAST_BAD_REQUEST', message: err.message });
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      const code =
        e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'OFFCAST_BODY_TOO_LARGE' : e.code?.startsWith('FST_') ? `OFFCAST_${e.code.slice(4)}` : 'OFFCAST_BAD_REQUEST';
      return reply.code(e.statusCode).send({ statusCode: e.statusCode, code, message: err.message });
    }
    req.log.error({ err }, 'internal error');
    return reply.code(500).send({ statusCode: 500, code: 'OFFCAST_INTERNAL', message: 'internal server error' });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ statusCode: 404, code: 'OFFCAST_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  const metrics = createMetrics({
    offload,
    cache,
    ...(rtsp === null ? {} : { rtsp }),
    sessions,
    extra(registry) {
      new client.Counter({
        name: 'offcast_record_flow_decisions_total',
        help: 'Slow-path decisions on new flows of record sessions, by reason (ok = installed)',
        labelNames: ['reason'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [reason, n] of Object.entries(recordings.decisions)) this.inc({ reason }, n);
        },
      });
    },
  });
  // Before every route, so that each one is in the document (a test checks it).
  await registerDocs(app, { version: packageVersion() });
  await registerDashboard(app);
  app.get('/healthz', async () => ({ status: 'ok', workers: offload.size }));
  app.get('/metrics', async (_req, reply) => {
    await metrics.refresh();
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  await app.register(mediaRoutes, {
    catalog,
    cache,
    upload: {
      bytes: config.limits.uploadBytes,
      concurrent: config.limits.uploads,
      timeoutMs: config.limits.uploadTimeoutMs,
      idleMs: config.limits.uploadIdleMs,
    },
  });
  await app.register(sessionRoutes, { sessions });
  await app.register(recordingRoutes, { store });

  let closed = false;
  return {
    app,
    config,
    offload,
    cache,
    catalog,
    sessions,
    ports,
    recordings,
    store,
    rtsp,
    recovered: recovery.recovered,
    async close() {
      if (closed) return;
      closed = true;
      rtsp?.close();
      await sessions.closeAll();
      await app.close();
      await offload.close();
    },
  };
}

/** Whether a request's Origin header names the host it was sent to (scheme's default port ignored). */
export function sameOrigin(origin: string, host: string | undefined, protocol: string): boolean {
  if (host === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed pages, file:) and garbage
  }
  if (url.protocol !== `${protocol}:`) return false;
  const strip = (h: string): string => h.toLowerCase().replace(protocol === 'https' ? /:443$/ : /:80$/, '');
  return strip(url.host) === strip(host);
}
