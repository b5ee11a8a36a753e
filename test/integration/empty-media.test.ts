// Media with nothing to send (a WAV whose data chunk is empty, an Ogg Opus file with its
// headers only) must end a session, never spin a worker: with loop and "speed": "max" the
// pump looped over zero packets forever, and a paced loop stayed "playing".
import t from 'tap';
import { copyFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { RtpSink } from '../helpers/rtp.js';
import { makeWav } from '../helpers/media.js';
import { sleep } from '../helpers/sender.js';

let server: TestServer;
t.before(async () => {
  server = await startServer();
  // Put on disk directly: media already there (an upload may refuse it).
  const wav = makeWav(8000, 1, 0);
  t.equal(wav.length, 44, 'a WAV with an empty data chunk');
  await writeFile(path.join(server.dir, 'media', 'empty.wav'), wav);
  await copyFile(fileURLToPath(new URL('../fixtures/audio/headers-only.opus', import.meta.url)), path.join(server.dir, 'media', 'headers-only.opus'));
});
t.teardown(() => server.stop());

/** The worker answers at all (a spinning one does not), and the session's state. */
async function settle(id: string): Promise<{ state: string; answeredMs: number }> {
  let state = '';
  let answeredMs = 0;
  for (let i = 0; i < 100; i++) {
    const started = performance.now();
    const r = await server.api('GET', `/v1/sessions/${id}`);
    answeredMs = Math.max(answeredMs, performance.now() - started);
    state = r.body.state;
    if (state !== 'playing') break;
    await sleep(20);
  }
  return { state, answeredMs };
}

for (const media of ['empty.wav', 'headers-only.opus']) {
  for (const speed of ['max', 1] as const) {
    t.test(`${media}, loop, speed ${speed}: the session ends, the worker stays free`, async (t) => {
      const sink = await RtpSink.open();
      t.teardown(() => sink.close());
      const res = await server.api('POST', '/v1/sessions', { mode: 'play', media, loop: true, speed, destination: { host: '127.0.0.1', port: sink.port } });
      if (res.status !== 201) {
        // Refusing empty media up front is as good as ending at once.
        t.equal(res.status, 422, res.text);
        return;
      }
      const { state } = await settle(res.body.id);
      t.equal(state, 'ended', 'ended by itself');
      t.equal(sink.packets.length, 0, 'nothing was sent');
      // The worker that ran it answers promptly: it is not pumping an empty loop.
      const started = performance.now();
      const stats = await server.api('GET', '/v1/sessions');
      t.equal(stats.status, 200);
      t.ok(performance.now() - started < 1000, 'the worker answers at once');
      t.notOk(
        (stats.body.sessions as { state: string }[]).some((s) => s.state === 'playing'),
        'no session left playing',
      );
    });
  }
}
