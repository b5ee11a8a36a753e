// An offload worker that dies from inside, not only by terminate(): an exception thrown
// in one of its handlers, and a resourceLimits overflow (its heap cap). The play, record
// and live sessions it ran are reported failed, their ports are free again, the worker
// is replaced and new sessions work.
import t from 'tap';
import dgram from 'node:dgram';
import type { Worker } from 'node:worker_threads';
import { startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import { RtpSink } from '../helpers/rtp.js';
import { makeWav } from '../helpers/media.js';
import { TestSender, rtpPacket, payloadFor, sleep } from '../helpers/sender.js';
import type { ApiBody } from '../helpers/apiTypes.js';

const HEAP_MB = 160;

/** Binds `port` on 127.0.0.1 (exclusively): true when nothing holds it. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind({ port, address: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

async function waitState(server: TestServer, id: string, state: string): Promise<ApiBody> {
  let body!: ApiBody;
  for (let i = 0; i < 300; i++) {
    body = (await server.api('GET', `/v1/sessions/${id}`)).body;
    if (body?.state === state) break;
    await sleep(20);
  }
  return body;
}

const deaths: Record<string, (server: TestServer) => Promise<void>> = {
  // A malformed control message makes the worker's message handler throw: uncaught, the thread dies.
  async 'a throw in a handler'(server) {
    const worker = (server.offload as unknown as { workers: Worker[] }).workers[0]!;
    worker.postMessage({ kind: 'peer', index: 0, port: null });
  },
  // A request whose parameters take more heap than the worker may have.
  async 'a resourceLimits overflow'(server) {
    const huge = Array.from({ length: 6_000_000 }, (_, i) => `session-${i}`);
    await server.offload.request(0, 'session.stats', { sessionIds: huge }).then(
      () => t.fail('the worker took it'),
      () => undefined,
    );
  },
};

for (const [how, kill] of Object.entries(deaths)) {
  t.test(`the worker dies of ${how}: its play, record and live sessions fail, and it is replaced`, async (t) => {
    const server = await startServer({ 'record.idleTimeoutMs': 60000 }, { offloadHeapMb: HEAP_MB });
    t.teardown(() => server.stop());
    t.equal((await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 2))).status, 201);
    const playSink = await RtpSink.open();
    const liveSink = await RtpSink.open();
    t.teardown(() => {
      playSink.close();
      liveSink.close();
    });
    const play = await server.api('POST', '/v1/sessions', {
      mode: 'play',
      media: 'tone.wav',
      loop: true,
      destination: { host: '127.0.0.1', port: playSink.port },
    });
    t.equal(play.status, 201, play.text);
    const rec = await server.api('POST', '/v1/sessions', {
      mode: 'record',
      name: 'feed',
      tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
    });
    t.equal(rec.status, 201, rec.text);
    const live = await server.api('POST', '/v1/sessions', { mode: 'play', live: rec.body.id, destination: { host: '127.0.0.1', port: liveSink.port } });
    t.equal(live.status, 201, live.text);
    const tx = await TestSender.open();
    t.teardown(() => tx.close());
    for (let i = 0; i < 10; i++) await tx.send(rtpPacket(0, i, i * 160, 9, payloadFor(i, 160)), rec.body.tracks[0].port);
    await playSink.waitFor(5);
    await liveSink.waitFor(10);
    t.pass('all three sessions run on the worker');
    const exited = new Promise<Error>((resolve) => server.offload.once('worker.exit', (_w, err) => resolve(err)));

    await kill(server);
    const err = await exited;
    t.ok(err instanceof Error, `the worker died: ${err.message}`);

    const playView = await waitState(server, play.body.id, 'failed');
    t.equal(playView.state, 'failed', 'the play session is failed');
    t.match(playView.error, /worker/);
    const liveView = await waitState(server, live.body.id, 'failed');
    t.equal(liveView.state, 'failed', 'the live session is failed');
    const recView = await waitState(server, rec.body.id, 'failed');
    t.equal(recView.state, 'failed', 'the record session is failed');
    t.match(recView.error, /worker/);
    for (const [what, port] of [
      ['play', play.body.tracks[0].sourcePort],
      ['record', rec.body.tracks[0].port],
      ['live', live.body.tracks[0].sourcePort],
    ] as const) {
      // Reported once the thread is gone, so its sockets are closed by then.
      t.ok((await portFree(port)) && (await portFree(port + 1)), `the ${what} session's ports are free again`);
    }

    // The replacement takes new sessions.
    let again: ApiResponse | undefined;
    for (let i = 0; i < 100; i++) {
      again = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', destination: { host: '127.0.0.1', port: playSink.port } });
      if (again.status === 201) break;
      await sleep(50);
    }
    t.equal(again?.status, 201, again?.text ?? 'no answer');
    const before = playSink.packets.length;
    await playSink.waitFor(before + 5);
    t.pass('a new session plays on the replacement');
    t.match(await (await fetch(`${server.url}/metrics`)).text(), /^offcast_offload_worker_restarts_total 1$/m);
  });
}
