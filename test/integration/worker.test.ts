// A crashed offload worker: its sessions are reported failed, it is restarted,
// and new sessions work (including across workers sharing a cache entry).
import t from 'tap';
import type { Worker } from 'node:worker_threads';
import { startServer } from '../helpers/server.js';
import { RtpSink } from '../helpers/rtp.js';
import { makeWav } from '../helpers/media.js';
import type { ApiBody } from '../helpers/apiTypes.js';
import { waitFor } from '../helpers/ready.js';
import type { ApiResponse } from '../helpers/server.js';

t.test('two workers share one cache entry; a dead worker is replaced', async (t) => {
  const server = await startServer({ 'offload.workers': 2 });
  t.teardown(() => server.stop());
  t.equal((await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 3))).status, 201);
  const sinks = [await RtpSink.open(), await RtpSink.open()];
  t.teardown(() => sinks.forEach((s) => s.close()));
  const ids: string[] = [];
  for (const sink of sinks) {
    const r = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', loop: true, destination: { host: '127.0.0.1', port: sink.port } });
    t.equal(r.status, 201, r.text);
    ids.push(r.body.id);
  }
  for (const sink of sinks) await sink.waitFor(20);
  t.same(server.offload.load, [1, 1], 'one session per worker');
  t.ok(sinks[0]!.packets[5]!.payload.equals(sinks[1]!.packets[5]!.payload), 'both workers play the same cached packets');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  t.match(metrics, /^offcast_cache_misses_total 1$/m, 'loaded once');
  t.match(metrics, /^offcast_cache_hits_total 1$/m, 'the second worker got it from the first');

  const workers = (server.offload as unknown as { workers: Worker[] }).workers;
  await workers[0]!.terminate();
  let failed: ApiBody | undefined;
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const views = await Promise.all(ids.map((id) => server.api('GET', `/v1/sessions/${id}`)));
    failed = views.find((v) => v.body.state === 'failed')?.body;
    if (failed !== undefined) break;
  }
  t.ok(failed, 'the session on the dead worker is failed');
  t.match(failed!.error, /worker/);
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  // Until the replacement worker takes a session (readiness, not a fixed sleep).
  let again!: ApiResponse;
  await waitFor(
    async () => {
      again = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', destination: { host: '127.0.0.1', port: sink.port } });
      return again.status === 201;
    },
    10000,
    50,
  );
  t.equal(again.status, 201, again.text);
  await sink.waitFor(10);
  t.pass('a new session plays after the restart');
  t.match(await (await fetch(`${server.url}/metrics`)).text(), /^offcast_offload_worker_restarts_total 1$/m);
});
