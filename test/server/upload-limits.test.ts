// Slow and stalled upload bodies over real TCP: cut off with 408, their temp
// files removed, and concurrent uploads capped (503), with short limits
// configured so the test runs in seconds.
import net from 'node:net';
import { readdir } from 'node:fs/promises';
import t from 'tap';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';

const IDLE_MS = 400;
const TIMEOUT_MS = 2000;

let server: TestServer;
t.before(async () => {
  server = await startServer({ 'limits.uploadIdleMs': IDLE_MS, 'limits.uploadTimeoutMs': TIMEOUT_MS, 'limits.uploads': 2 });
});
t.teardown(() => server?.stop());

async function tempFiles(): Promise<string[]> {
  return (await readdir(server.mediaRoot)).filter((n) => n.startsWith('.upload-'));
}

/** Polls `check` every 20 ms until it holds, or fails after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 10000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface SlowClient {
  /** The server's answer (status line and body) once the connection ends, and when it ended. */
  done: Promise<{ status: number; text: string; closedAt: number }>;
  stop(): void;
}

/**
 * A client that sends the headers of a 1e9-byte upload and a first chunk, then
 * one byte every `everyMs` (never, when null) — the slow-loris upload.
 */
function slowUpload(name: string, everyMs: number | null): SlowClient {
  const u = new URL(server.url);
  const socket = net.connect(Number(u.port), u.hostname);
  let timer: NodeJS.Timeout | undefined;
  const chunks: Buffer[] = [];
  const done = new Promise<{ status: number; text: string; closedAt: number }>((resolve) => {
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, text, closedAt: performance.now() });
    });
  });
  socket.on('connect', () => {
    socket.write(`PUT /v1/media/${name} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: 1000000000\r\nContent-Type: application/octet-stream\r\n\r\n`);
    socket.write(Buffer.from('RIFF'));
    if (everyMs !== null) timer = setInterval(() => socket.write(Buffer.from([0])), everyMs);
  });
  return { done, stop: () => socket.destroy() };
}

t.test('a body trickling one byte at a time is cut off at limits.uploadTimeoutMs: 408, connection closed, temp file removed', async (t) => {
  const started = performance.now();
  const c = slowUpload('trickle.wav', IDLE_MS / 4);
  t.teardown(() => c.stop());
  await until('the upload temp file', async () => (await tempFiles()).length === 1);
  const res = await c.done;
  const took = res.closedAt - started;
  t.equal(res.status, 408, `408 (${res.text.split('\r\n')[0]})`);
  t.match(res.text, /OFFCAST_UPLOAD_TIMEOUT/, 'the error code');
  t.match(res.text, /limits\.uploadTimeoutMs/, 'the message names the limit');
  t.ok(took >= TIMEOUT_MS - 100 && took < TIMEOUT_MS + 5000, `closed after ${Math.round(took)} ms (limit ${TIMEOUT_MS})`);
  await until('the temp file to go', async () => (await tempFiles()).length === 0);
  t.pass('the temp file is gone');
});

t.test('a body that stops is cut off at limits.uploadIdleMs', async (t) => {
  const started = performance.now();
  const c = slowUpload('stalled.wav', null);
  t.teardown(() => c.stop());
  const res = await c.done;
  const took = res.closedAt - started;
  t.equal(res.status, 408, `408 (${res.text.split('\r\n')[0]})`);
  t.match(res.text, /limits\.uploadIdleMs/, 'the message names the limit');
  t.ok(took < TIMEOUT_MS, `closed after ${Math.round(took)} ms, before the total limit`);
  await until('the temp file to go', async () => (await tempFiles()).length === 0);
  t.pass('the temp file is gone');
});

t.test('concurrent uploads are capped at limits.uploads: 503 while slow ones hold the slots, then uploads work again', async (t) => {
  const a = slowUpload('a.wav', IDLE_MS / 4);
  const b = slowUpload('b.wav', IDLE_MS / 4);
  t.teardown(() => {
    a.stop();
    b.stop();
  });
  await until('two upload temp files', async () => (await tempFiles()).length === 2);
  const wav = makeWav(8000, 1, 0.2);
  const busy = await server.api('PUT', '/v1/media/third.wav', wav);
  t.equal(busy.status, 503, `503 (${busy.text})`);
  t.equal(busy.body?.code, 'OFFCAST_UPLOADS_BUSY');
  t.match(busy.body?.message, /limits\.uploads \(2\)/, 'the message names the limit');
  const health = await server.api('GET', '/healthz');
  t.equal(health.status, 200, 'the server answers other requests meanwhile');
  const [ra, rb] = await Promise.all([a.done, b.done]);
  t.equal(ra.status, 408, 'the first slow upload timed out');
  t.equal(rb.status, 408, 'the second slow upload timed out');
  const ok = await server.api('PUT', '/v1/media/third.wav', wav);
  t.equal(ok.status, 201, `a slot is free again (${ok.text.slice(0, 200)})`);
  await until('no temp files', async () => (await tempFiles()).length === 0);
  t.same((await readdir(server.mediaRoot)).sort(), ['third.wav'], 'only the complete upload is stored');
});
