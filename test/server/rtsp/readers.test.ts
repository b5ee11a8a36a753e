/**
 * 200 concurrent RTSP readers of one file over UDP, each on its own RTSP
 * connection: every reader receives the whole file exactly. The same 200
 * sessions created over HTTP in the same run give the reference for the
 * server's CPU per reader: RTSP may cost a little more (its requests and
 * keep-alives), never much more.
 */
import t from 'tap';
import { startServer, randomPortBlock } from '../../helpers/server.js';
import { makeWav, wavData } from '../../helpers/media.js';
import { RawRtsp, sessionId } from '../../helpers/rtsp.js';
import { RtpSink } from '../../helpers/rtp.js';
import { waitUntil } from '../../helpers/ready.js';

const READERS = 200;
const wav = makeWav(8000, 1, 3);
const l16 = Buffer.from(wavData(wav));
l16.swap16();

const portBase = randomPortBlock(1000);
const server = await startServer({ 'rtp.portMin': portBase, 'rtp.portMax': portBase + 999 }, { rtspPort: 0 });
t.teardown(() => server.stop());
await server.api('PUT', '/v1/media/tone.wav', wav);
const port = server.rtsp!.port!;

async function sinks(): Promise<RtpSink[]> {
  const out: RtpSink[] = [];
  for (let i = 0; i < READERS; i++) out.push(await RtpSink.open());
  return out;
}

/** The whole file arrived at every sink, in order. */
function exact(all: RtpSink[]): number {
  let ok = 0;
  for (const s of all) {
    const seqs = s.packets.map((p) => p.seq);
    const contiguous = seqs.every((q, i) => i === 0 || q === ((seqs[i - 1]! + 1) & 0xffff));
    if (contiguous && Buffer.concat(s.packets.map((p) => p.payload)).equals(l16)) ok++;
  }
  return ok;
}

/** CPU time (user + system, ms) of this process while `fn` runs: the server's threads, and the test's receivers, which are the same in both runs. */
async function cpuOf(fn: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  await fn();
  const d = process.cpuUsage(before);
  return (d.user + d.system) / 1000;
}

const expectedPackets = l16.length / 320;

t.test(`${READERS} RTSP readers over UDP, each exact; CPU per reader against HTTP-created sessions`, async (t) => {
  // RTSP: every reader on its own connection; all SETUP, then all PLAY.
  const rtspSinks = await sinks();
  const clients: RawRtsp[] = [];
  let ids: string[] = [];
  t.teardown(() => {
    for (const c of clients) c.close();
    for (const s of rtspSinks) s.close();
  });
  // Measured from the first connection to the last packet: connections, SETUPs and PLAYs included.
  const rtspCpu = await cpuOf(async () => {
    clients.push(...(await Promise.all(rtspSinks.map(() => RawRtsp.connect(port)))));
    ids = await Promise.all(
      clients.map(async (c, i) => {
        const r = await c.request('SETUP', `rtsp://127.0.0.1:${port}/tone.wav/trackID=0`, {
          Transport: `RTP/AVP;unicast;client_port=${rtspSinks[i]!.port}-${rtspSinks[i]!.port + 1}`,
        });
        if (r.status !== 200) throw new Error(`SETUP ${i}: ${r.status}`);
        return sessionId(r);
      }),
    );
    const plays = await Promise.all(clients.map((c, i) => c.request('PLAY', `rtsp://127.0.0.1:${port}/tone.wav/`, { Session: ids[i]! })));
    const failed = plays.filter((r) => r.status !== 200);
    if (failed.length > 0) t.comment(`${failed.length} failed: ${[...new Set(failed.map((r) => `${r.status} ${r.body.trim()}`))].join('; ')}`);
    t.ok(
      plays.every((r) => r.status === 200),
      'every PLAY answered 200',
    );
    await waitUntil(() => rtspSinks.every((s) => s.packets.length >= expectedPackets), 60000, 'every RTSP reader to receive the file');
  });
  t.equal(exact(rtspSinks), READERS, `all ${READERS} RTSP readers received the whole file exactly`);
  const downs = await Promise.all(clients.map((c, i) => c.request('TEARDOWN', `rtsp://127.0.0.1:${port}/tone.wav/`, { Session: ids[i]! })));
  t.ok(
    downs.every((r) => r.status === 200),
    'every TEARDOWN answered 200',
  );

  // HTTP: the same 200 sessions, created playing.
  const httpSinks = await sinks();
  t.teardown(() => {
    for (const s of httpSinks) s.close();
  });
  const httpCpu = await cpuOf(async () => {
    const created = await Promise.all(
      httpSinks.map((s) => server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', destination: { host: '127.0.0.1', port: s.port } })),
    );
    t.ok(
      created.every((r) => r.status === 201),
      'every HTTP create answered 201',
    );
    await waitUntil(() => httpSinks.every((s) => s.packets.length >= expectedPackets), 60000, 'every HTTP reader to receive the file');
  });
  t.equal(exact(httpSinks), READERS, `all ${READERS} HTTP-created sessions delivered the whole file exactly`);
  const ratio = rtspCpu / httpCpu;
  t.comment(`CPU: RTSP ${(rtspCpu / READERS).toFixed(2)} ms per reader, HTTP ${(httpCpu / READERS).toFixed(2)} ms per session, ratio ${ratio.toFixed(2)}`);
  t.ok(ratio < 1.5, `RTSP costs at most 1.5× the CPU of HTTP-created sessions per reader (${ratio.toFixed(2)}×)`);
});
