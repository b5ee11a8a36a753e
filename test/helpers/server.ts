/**
 * A real offcast server for tests: real config, worker threads, HTTP on a free
 * port of 127.0.0.1, media and recordings in a fresh temp folder, and a local
 * RTP port range of its own so parallel test files don't collide.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../config/index.js';
import { buildServer, type BuildOptions, type Server } from '../../server/app.js';
import type { ApiBody } from './apiTypes.js';

/** An answer of the API: its JSON body (undefined if none or not JSON) and its text. */
export interface ApiResponse<T = ApiBody> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface TestServer extends Server {
  url: string;
  dir: string;
  mediaRoot: string;
  /** fetch() against the server, JSON in and out. */
  api<T = ApiBody>(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>;
  stop(): Promise<void>;
}

/** A random even base for a block of `span` ports, away from other test files. */
export function randomPortBlock(span: number): number {
  const lo = 30000;
  const hi = 60000 - span;
  return lo + 2 * Math.floor((Math.random() * (hi - lo)) / 2);
}

/**
 * The send path under test: OFFCAST_TEST_SEND=dgram runs the server on the dgram
 * fallback (offload.nativeSend: false; test/run.mjs runs the play, video and
 * interop tests a second time so); unset or "native", the default native sender.
 */
function sendPath(): Record<string, unknown> {
  const v = process.env.OFFCAST_TEST_SEND;
  if (v === undefined || v === '' || v === 'native') return {};
  if (v === 'dgram') return { 'offload.nativeSend': false };
  throw new Error(`OFFCAST_TEST_SEND=${v}: use native or dgram`);
}

export async function startServer(overrides: Record<string, unknown> = {}, build: BuildOptions = {}): Promise<TestServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'offcast-test-'));
  const base = randomPortBlock(400);
  const config = loadConfig({
    argv: [],
    env: {},
    overrides: {
      'http.port': 0,
      mediaRoot: path.join(dir, 'media'),
      recordingsRoot: path.join(dir, 'recordings'),
      'rtp.portMin': base,
      'rtp.portMax': base + 399,
      'log.level': 'silent',
      ...sendPath(),
      ...overrides,
    },
  });
  // RTSP only where a test asks for it (BuildOptions.rtspPort: 0 is any free port): parallel files would fight over 8554.
  const server = await buildServer(config, { logger: false, rtspPort: null, ...build });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = server.app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const url = `http://127.0.0.1:${port}`;
  const api = async <T = ApiBody>(method: string, u: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      if (body instanceof Uint8Array || typeof body === 'string') init.body = body as BodyInit;
      else {
        init.body = JSON.stringify(body);
        (init.headers as Record<string, string>)['content-type'] = 'application/json';
      }
    }
    const res = await fetch(url + u, init);
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed as T, text, headers: res.headers };
  };
  return Object.assign(server, {
    url,
    dir,
    mediaRoot: config.mediaRoot,
    api,
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  });
}
