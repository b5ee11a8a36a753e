/** Drives a play session against a real receiver: create paused, start the receiver on the SDP, then play. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestServer } from './server.js';
import type { ApiBody } from './apiTypes.js';

export async function createPaused(server: TestServer, body: Record<string, unknown>): Promise<{ id: string; session: ApiBody; sdpPath: string }> {
  const res = await server.api('POST', '/v1/sessions', { mode: 'play', state: 'paused', ...body });
  if (res.status !== 201) throw new Error(`create failed ${res.status}: ${res.text}`);
  const sdp = await server.api('GET', `/v1/sessions/${res.body.id}/sdp`);
  if (sdp.status !== 200 || !/^application\/sdp/.test(sdp.headers.get('content-type') ?? '')) throw new Error(`sdp failed: ${sdp.status} ${sdp.text}`);
  const sdpPath = path.join(server.dir, `${res.body.id}.sdp`);
  await writeFile(sdpPath, sdp.text);
  return { id: res.body.id, session: res.body, sdpPath };
}

export async function waitState(server: TestServer, id: string, state: string, timeoutMs = 60000): Promise<ApiBody> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const res = await server.api('GET', `/v1/sessions/${id}`);
    if (res.body?.state === state) return res.body;
    if (Date.now() > end) throw new Error(`session ${id} did not reach ${state} (is ${res.body?.state})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A free even UDP port pair base for a receiver we don't control (ffmpeg). */
export async function freePortPair(): Promise<number> {
  const dgram = await import('node:dgram');
  for (let i = 0; i < 100; i++) {
    const port = 40000 + 2 * Math.floor(Math.random() * 9000);
    const ok = await new Promise<boolean>((resolve) => {
      const a = dgram.createSocket('udp4');
      const b = dgram.createSocket('udp4');
      a.once('error', () => resolve(false));
      b.once('error', () => {
        a.close();
        resolve(false);
      });
      a.bind(port, '127.0.0.1', () =>
        b.bind(port + 1, '127.0.0.1', () => {
          a.close();
          b.close();
          resolve(true);
        }),
      );
    });
    if (ok) return port;
  }
  throw new Error('no free port pair');
}

/** N free pairs spaced by 2 (for multi-track sessions: port + 2·i). */
export async function freePortBlock(tracks: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = await freePortPair();
    let ok = true;
    for (let k = 1; k < tracks && ok; k++) {
      const dgram = await import('node:dgram');
      ok = await new Promise<boolean>((resolve) => {
        const a = dgram.createSocket('udp4');
        a.once('error', () => resolve(false));
        a.bind(base + 2 * k, '127.0.0.1', () => {
          a.close();
          resolve(true);
        });
      });
    }
    if (ok) return base;
  }
  throw new Error('no free port block');
}
