// The offcast server under test, as a child process of the benchmark (so the
// measuring processes are separate from it): built dist/server/main.js, HTTP on
// a free 127.0.0.1 port, configured through OFFCAST_* variables.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdir, readdir, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMetrics } from './metrics.mjs';
import { exitOf, rssBytes, rssFloor, rssMedian, runBounded, sleep, stopChild, track } from './proc.mjs';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const mainJs = path.join(repoRoot, 'dist', 'server', 'main.js');

/** The server's local RTP port range: 5000 pairs. */
export const SERVER_PORT_MIN = 20000;
export const SERVER_PORT_MAX = 29999;

/**
 * Compiles the server with `tsc -p .` unless dist/ is newer than every source
 * file (tsc takes ~30 s here). Type errors do not stop the emit; they are
 * returned so the report can mention them.
 * @param {{force?: boolean}} [opts]
 * @returns {Promise<{built: boolean, ms: number, typeErrors: number}>}
 */
export async function buildServer(opts = {}) {
  const started = performance.now();
  if (!opts.force && (await distIsCurrent())) return { built: false, ms: 0, typeErrors: 0 };
  const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
  const r = await runBounded(tsc, ['-p', '.'], { cwd: repoRoot, timeoutMs: 180_000 });
  if (r.timedOut) throw new Error('tsc -p . did not finish in 180 s');
  const typeErrors = (r.stdout.match(/error TS\d+/g) ?? []).length;
  try {
    await stat(mainJs);
  } catch {
    throw new Error(`tsc emitted no ${path.relative(repoRoot, mainJs)}:\n${r.stdout.slice(-2000)}`);
  }
  return { built: true, ms: Math.round(performance.now() - started), typeErrors };
}

async function distIsCurrent() {
  let built;
  try {
    built = (await stat(mainJs)).mtimeMs;
  } catch {
    return false;
  }
  for (const dir of ['server', 'offload', 'storage', 'config']) {
    if ((await newestTs(path.join(repoRoot, dir))) > built) return false;
  }
  return true;
}

/** @param {string} dir @returns {Promise<number>} */
async function newestTs(dir) {
  let newest = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, await newestTs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, (await stat(p)).mtimeMs);
  }
  return newest;
}

/** A free TCP port on 127.0.0.1 (closed again; the server takes it right after). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * @typedef {object} OffcastOptions
 * @property {string} dir            working folder: media/ and recordings/ inside
 * @property {number} [workers]      offload.workers (default 1)
 * @property {number} [maxSessions]  limits.maxSessions (default 6000)
 * @property {Record<string, string>} [env]  more OFFCAST_* variables
 */

/**
 * @typedef {object} ApiResult
 * @property {number} status
 * @property {any} body
 * @property {number} ms   request latency (send to body parsed)
 */

/**
 * @typedef {object} Offcast
 * @property {number} pid
 * @property {string} url
 * @property {string} mediaRoot
 * @property {string} recordingsRoot
 * @property {(method: string, url: string, body?: unknown) => Promise<ApiResult>} api
 * @property {() => Promise<Map<string, number>>} metrics   parsed /metrics
 * @property {() => Promise<number | null>} rss
 * @property {(count?: number, everyMs?: number) => Promise<number | null>} rssMedian
 * @property {(count?: number, everyMs?: number) => Promise<number | null>} rssFloor
 * @property {() => string} logTail
 * @property {() => string | null} exited   how the process ended, or null while it runs
 * @property {() => Promise<void>} stop
 */

/**
 * Starts `node dist/server/main.js` and waits for /healthz (15 s at most).
 * @param {OffcastOptions} opts
 * @returns {Promise<Offcast>}
 */
export async function startOffcast(opts) {
  const mediaRoot = path.join(opts.dir, 'media');
  const recordingsRoot = path.join(opts.dir, 'recordings');
  await mkdir(mediaRoot, { recursive: true });
  await mkdir(recordingsRoot, { recursive: true });
  const port = await freePort();
  /** @type {NodeJS.ProcessEnv} */
  const env = {
    ...process.env,
    OFFCAST_HTTP_HOST: '127.0.0.1',
    OFFCAST_HTTP_PORT: String(port),
    // The benchmark measures RTP; no RTSP listener to collide with one on 8554.
    OFFCAST_RTSP_PORT: '0',
    OFFCAST_MEDIA_ROOT: mediaRoot,
    OFFCAST_RECORDINGS_ROOT: recordingsRoot,
    OFFCAST_RTP_PORT_MIN: String(SERVER_PORT_MIN),
    OFFCAST_RTP_PORT_MAX: String(SERVER_PORT_MAX),
    OFFCAST_LIMITS_MAX_SESSIONS: String(opts.maxSessions ?? 6000),
    OFFCAST_OFFLOAD_WORKERS: String(opts.workers ?? 1),
    OFFCAST_LOG_LEVEL: 'warn',
    ...opts.env,
  };
  // NODE_OPTIONS of the bench (e.g. a loader) must not leak into the server.
  delete env.NODE_OPTIONS;
  const child = track(spawn(process.execPath, [mainJs], { cwd: opts.dir, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let log = '';
  const keepLog = (/** @type {string} */ c) => {
    log = (log + c).slice(-32 * 1024);
  };
  child.stdout?.setEncoding('utf8').on('data', keepLog);
  child.stderr?.setEncoding('utf8').on('data', keepLog);
  const url = `http://127.0.0.1:${port}`;
  const exited = exitOf(child);
  let up = false;
  for (const deadline = performance.now() + 15_000; performance.now() < deadline;) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.text();
      if (res.ok) {
        up = true;
        break;
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  if (!up) {
    await stopChild(child, 'SIGKILL', 1000);
    throw new Error(`offcast did not come up on ${url}: ${log.trim().slice(-2000)}`);
  }
  const pid = /** @type {number} */ (child.pid);

  // node:http with a keep-alive agent: fetch (undici) costs ~0.5 ms of client CPU per request
  // here, which would cap the request rate the bench can drive well below the server's.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const { hostname, port: httpPort } = new URL(url);

  /** @type {Offcast['api']} */
  async function api(method, u, body) {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const t0 = performance.now();
    const { status, text } = await new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: hostname,
          port: Number(httpPort),
          agent,
          method,
          path: u,
          timeout: 30_000,
          headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          /** @type {Buffer[]} */
          const chunks = [];
          res.on('data', (d) => chunks.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${u}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
    const ms = performance.now() - t0;
    let parsed;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status, body: parsed, ms };
  }

  return {
    pid,
    url,
    mediaRoot,
    recordingsRoot,
    api,
    async metrics() {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(30_000) });
      return parseMetrics(await res.text());
    },
    rss: () => rssBytes(pid),
    rssMedian: (count, everyMs) => rssMedian(pid, count, everyMs),
    rssFloor: (count, everyMs) => rssFloor(pid, count, everyMs),
    logTail: () => log.trim().slice(-2000),
    exited: () => (child.exitCode === null && child.signalCode === null ? null : `code ${child.exitCode}, signal ${child.signalCode}`),
    async stop() {
      // SIGTERM closes every session first (BYE each); thousands take a few seconds.
      await stopChild(child, 'SIGTERM', 20_000);
      await exited;
      agent.destroy();
    },
  };
}
