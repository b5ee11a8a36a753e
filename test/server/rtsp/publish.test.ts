/**
 * Publishing over raw RTSP sockets on 127.0.0.1 (ANNOUNCE, SETUP mode=record,
 * RECORD): every refusal with its status, the one namespace, auth, limits
 * under concurrent ANNOUNCEs, and the media itself: RTP sent over UDP or in
 * `$`-frames lands in the recording's rtpdump byte for byte (read with the
 * tests' own rtpdump reader), the publisher's RTCP too, and each way of
 * ending (TEARDOWN, the connection's close, DELETE, the keep-alive timeout)
 * leaves a finished recording.
 */
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import type { Worker } from 'node:worker_threads';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { randomPortBlock, startServer, type TestServer } from '../../helpers/server.js';
import { makeWav } from '../../helpers/media.js';
import { RawRtsp, sessionId, type RtspResponse } from '../../helpers/rtsp.js';
import { readRtpdumpRef } from '../../helpers/rtpdump-ref.js';
import { waitUntil } from '../../helpers/ready.js';

const server = await startServer({ 'rtsp.sessionTimeoutMs': 1500, 'rtp.rtcpIntervalMs': 500 }, { rtspPort: 0 });
t.teardown(() => server.stop());
const port = server.rtsp!.port!;
const base = `rtsp://127.0.0.1:${port}`;
await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 1));
const teardowns: { id: string; why: string }[] = [];
server.rtsp!.publisher.onTeardown = (id, why) => teardowns.push({ id, why });

/** One PCMU track, as a publisher announces it. */
const PCMU_SDP =
  'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:streamid=0\r\n';
const SDP = { 'Content-Type': 'application/sdp' };
/** PCMU_SDP with another media section (`m=` line and attributes) instead of its own. */
const withMedia = (media: string): string => PCMU_SDP.replace('m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000', media);
const SSRC = 0x1234abcd;

async function connect(t: Test, srv: TestServer = server): Promise<RawRtsp> {
  const c = await RawRtsp.connect(srv.rtsp!.port!);
  t.teardown(() => c.close());
  return c;
}

/** RTP packet k of the test stream: PCMU, 160 samples, a payload that differs per packet. */
function rtp(k: number): Buffer {
  const b = Buffer.alloc(12 + 160);
  b[0] = 0x80;
  b[1] = 0;
  b.writeUInt16BE((1000 + k) & 0xffff, 2);
  b.writeUInt32BE((5000 + 160 * k) >>> 0, 4);
  b.writeUInt32BE(SSRC, 8);
  for (let i = 0; i < 160; i++) b[12 + i] = (k * 7 + i) & 0xff;
  return b;
}

/** An RTCP sender report of the test stream. */
function senderReport(packets: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(SSRC, 4);
  b.writeUInt32BE(3900000000, 8);
  b.writeUInt32BE(0x80000000, 12);
  b.writeUInt32BE(5000 + 160 * packets, 16);
  b.writeUInt32BE(packets, 20);
  b.writeUInt32BE(160 * packets, 24);
  return b;
}

function frame(channel: number, p: Buffer): Buffer {
  const h = Buffer.from([0x24, channel, p.length >> 8, p.length & 0xff]);
  return Buffer.concat([h, p]);
}

interface RecordView {
  id: string;
  name: string;
  state: string;
  reason?: string;
  rtsp?: { session: string; transport: string };
  tracks: { port: number; stats?: { packets: number } }[];
  recording?: { state: string; tracks: { packets: number }[] };
}

async function recordOf(name: string, srv: TestServer = server): Promise<RecordView | undefined> {
  const all = (await srv.api<{ sessions: (RecordView & { mode: string })[] }>('GET', '/v1/sessions')).body.sessions;
  return all.find((s) => s.mode === 'record' && s.name === name);
}

/** Waits for the record session named `name` to be final (ended or failed, with its summary). */
async function finalOf(name: string): Promise<RecordView> {
  await waitUntil(async () => ['ended', 'failed'].includes((await recordOf(name))?.state ?? ''), 10000, `recording ${name} to end`);
  return (await recordOf(name))!;
}

async function dump(name: string): Promise<ReturnType<typeof readRtpdumpRef>> {
  return readRtpdumpRef(await readFile(path.join(server.dir, 'recordings', name, 'track0.rtpdump')));
}

/** The recording `name` ended for `reason`, finished, and its rtpdump holds packets 0..n-1 as sent, byte for byte. */
async function checkFinished(t: Test, name: string, reason: string, n: number): Promise<ReturnType<typeof readRtpdumpRef>> {
  const done = await finalOf(name);
  t.equal(done.state, 'ended', `the recording ended (${reason})`);
  t.equal(done.reason, reason);
  t.equal(done.recording?.state, 'finished');
  const d = await dump(name);
  const got = d.records.filter((r) => !r.rtcp).map((r) => r.data);
  t.equal(got.length, n, `${n} packets in the rtpdump`);
  t.ok(
    got.every((b, k) => b.equals(rtp(k))),
    'each the packet sent, byte for byte',
  );
  return d;
}

async function workerRtsp(): Promise<{ unknownChannel: number }> {
  const [w] = await server.offload.all('worker.stats', {});
  return w!.rtsp;
}

/** ANNOUNCE + SETUP of the PCMU track with `transport`; the session id and the SETUP's answer. */
async function announceSetup(c: RawRtsp, name: string, transport: string): Promise<{ id: string; setup: RtspResponse }> {
  const a = await c.request('ANNOUNCE', `${base}/${name}`, SDP, PCMU_SDP);
  if (a.status !== 200) throw new Error(`ANNOUNCE ${name}: ${a.status} ${a.body}`);
  const id = sessionId(a);
  const setup = await c.request('SETUP', `${base}/${name}/streamid=0`, { Transport: transport, Session: id });
  return { id, setup };
}

async function udpSender(t: Test): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  t.teardown(() => s.close());
  return s;
}

t.test('ANNOUNCE refusals: no body 400, another content type 415, a bad SDP 400/415 with the reason, a track URL 400', async (t) => {
  const c = await connect(t);
  const noBody = await c.request('ANNOUNCE', `${base}/cam-a`, SDP);
  t.equal(noBody.status, 400, 'no body: 400');
  t.match(noBody.body, /SDP/, 'saying an SDP is needed');
  const text = await c.request('ANNOUNCE', `${base}/cam-a`, { 'Content-Type': 'text/plain' }, PCMU_SDP);
  t.equal(text.status, 415, 'text/plain: 415');
  const noType = await c.request('ANNOUNCE', `${base}/cam-a`, {}, PCMU_SDP);
  t.equal(noType.status, 415, 'no Content-Type: 415');
  const vp8 = await c.request('ANNOUNCE', `${base}/cam-a`, SDP, withMedia('m=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000'));
  t.equal(vp8.status, 415, 'a codec that cannot be recorded: 415');
  t.match(vp8.body, /VP8/, 'naming it');
  const noMedia = await c.request('ANNOUNCE', `${base}/cam-a`, SDP, 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n');
  t.equal(noMedia.status, 400, 'no m= line: 400');
  const nine = await c.request('ANNOUNCE', `${base}/cam-a`, SDP, PCMU_SDP + 'm=audio 0 RTP/AVP 0\r\n'.repeat(8));
  t.equal(nine.status, 400, 'more tracks than a record session takes: 400');
  t.match(nine.body, /at most 8/);
  const h264 = await c.request('ANNOUNCE', `${base}/cam-a`, SDP, withMedia('m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2'));
  t.equal(h264.status, 415, 'an fmtp the recorder cannot take: 415');
  t.equal((await c.request('ANNOUNCE', `${base}/cam-a/streamid=0`, SDP, PCMU_SDP)).status, 400, 'a track URL: 400');
  const noSprop = await c.request(
    'ANNOUNCE',
    `${base}/cam-w`,
    SDP,
    withMedia('m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1'),
  );
  t.equal(noSprop.status, 200, 'H.264 without sprop-parameter-sets: 200');
  t.match(noSprop.headers.warning, /^199 offcast ".*sprop-parameter-sets.*"$/, 'with a Warning that the file may not play');
  await c.request('TEARDOWN', `${base}/cam-w`, { Session: sessionId(noSprop) });
  t.equal(await recordOf('cam-a'), undefined, 'no record session was created');
  // None of them holds the name.
  const ok = await c.request('ANNOUNCE', `${base}/cam-a`, SDP, PCMU_SDP);
  t.equal(ok.status, 200, 'a good ANNOUNCE of the same name: 200');
  t.match(ok.headers.session, /^[0-9A-F]{16};timeout=2$/, 'with its Session');
  t.equal((await c.request('TEARDOWN', `${base}/cam-a`, { Session: sessionId(ok) })).status, 200, 'TEARDOWN before RECORD: 200');
  t.equal(await recordOf('cam-a'), undefined, 'and nothing was recorded');
});

t.test(
  'one namespace: media, a recording in progress and an announced name refuse ANNOUNCE (403, with why); an announced name refuses HTTP (409)',
  async (t) => {
    const c = await connect(t);
    const media = await c.request('ANNOUNCE', `${base}/tone.wav`, SDP, PCMU_SDP);
    t.equal(media.status, 403, 'the name of media: 403');
    t.match(media.body, /media tone\.wav exists/);
    const http = await server.api('POST', '/v1/sessions', {
      mode: 'record',
      name: 'busy',
      tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
    });
    t.equal(http.status, 201, 'a record session over HTTP');
    const busy = await c.request('ANNOUNCE', `${base}/busy`, SDP, PCMU_SDP);
    t.equal(busy.status, 403, 'its name: 403');
    t.match(busy.body, /recording busy is in progress/);
    await server.api('DELETE', `/v1/sessions/${http.body.id}`);
    const done = await c.request('ANNOUNCE', `${base}/busy`, SDP, PCMU_SDP);
    t.equal(done.status, 403, 'a finished recording’s name: 403');
    t.match(done.body, /already exists/);
    const held = await c.request('ANNOUNCE', `${base}/held`, SDP, PCMU_SDP);
    t.equal(held.status, 200);
    const post = await server.api('POST', '/v1/sessions', {
      mode: 'record',
      name: 'held',
      tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
    });
    t.equal(post.status, 409, 'an announced name is taken for HTTP too: 409');
    const again = await (await connect(t)).request('ANNOUNCE', `${base}/held`, SDP, PCMU_SDP);
    t.equal(again.status, 403, 'and for another publisher: 403');
    await c.request('TEARDOWN', `${base}/held`, { Session: sessionId(held) });
  },
);

t.test(
  'states: RECORD before SETUP 455, SETUP mode=record without ANNOUNCE 455, PLAY on a publishing session 455, RECORD on a reading session 455, transports 461',
  async (t) => {
    const c = await connect(t);
    t.equal((await c.request('RECORD', `${base}/cam-s`)).status, 455, 'RECORD without a session: 455');
    const orphan = await c.request('SETUP', `${base}/cam-s/streamid=0`, { Transport: 'RTP/AVP;unicast;client_port=40000-40001;mode=record' });
    t.equal(orphan.status, 455, 'SETUP mode=record before ANNOUNCE: 455');
    const a = await c.request('ANNOUNCE', `${base}/cam-s`, SDP, PCMU_SDP);
    const id = sessionId(a);
    const rec = await c.request('RECORD', `${base}/cam-s`, { Session: id });
    t.equal(rec.status, 455, 'RECORD before SETUP: 455');
    t.match(rec.body, /SETUP/);
    t.equal((await c.request('PLAY', `${base}/cam-s`, { Session: id })).status, 455, 'PLAY on a publishing session: 455');
    t.equal((await c.request('PAUSE', `${base}/cam-s`, { Session: id })).status, 455, 'PAUSE on it: 455');
    t.equal((await c.request('SETUP', `${base}/cam-s/streamid=0`, { Transport: 'RTP/AVP;multicast;mode=record', Session: id })).status, 461, 'multicast: 461');
    t.equal((await c.request('SETUP', `${base}/cam-s/streamid=0`, { Session: id })).status, 461, 'no Transport: 461');
    t.equal(
      (await c.request('SETUP', `${base}/cam-s/streamid=7`, { Transport: 'RTP/AVP/TCP;interleaved=0-1;mode=record', Session: id })).status,
      404,
      'a track not announced: 404',
    );
    const receive = await c.request('SETUP', `${base}/cam-s/streamid=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1;mode="RECEIVE"', Session: id });
    t.equal(receive.status, 200, 'mode=receive (RFC 2326’s other name for it): 200');
    t.equal(
      (await c.request('SETUP', `${base}/cam-s/streamid=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=2-3;mode=record', Session: id })).status,
      455,
      'the same track again: 455',
    );
    t.equal((await c.request('GET_PARAMETER', `${base}/cam-s`, { Session: id })).status, 200, 'GET_PARAMETER keeps it alive: 200');
    t.equal((await c.request('TEARDOWN', `${base}/cam-s`, { Session: id })).status, 200);
    // A reading session refuses RECORD.
    const r = await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: 'RTP/AVP;unicast;client_port=40000-40001' });
    t.equal(r.status, 200, 'a reading session');
    t.equal((await c.request('RECORD', `${base}/tone.wav`, { Session: sessionId(r) })).status, 455, 'RECORD on it: 455');
    t.equal((await c.request('TEARDOWN', `${base}/tone.wav`, { Session: sessionId(r) })).status, 200);
  },
);

t.test('UDP: SETUP mode=record answers the record ports; RTP from the client lands in the recording byte for byte; TEARDOWN finalizes it', async (t) => {
  const c = await connect(t);
  const sender = await udpSender(t);
  const cp = sender.address().port;
  const { id, setup } = await announceSetup(c, 'cam-udp', `RTP/AVP;unicast;client_port=${cp}-${cp + 1};mode=record`);
  t.equal(setup.status, 200);
  const m = /server_port=(\d+)-(\d+)/.exec(setup.headers.transport ?? '');
  t.ok(m !== null && Number(m[2]) === Number(m[1]) + 1, `server_port is a pair: ${setup.headers.transport}`);
  t.match(setup.headers.transport, /mode=record/);
  const rec = await c.request('RECORD', `${base}/cam-udp`, { Session: id });
  t.equal(rec.status, 200, 'RECORD: 200');
  t.equal(sessionId(rec), id, 'with the Session');
  const view = (await recordOf('cam-udp'))!;
  t.same(view.rtsp, { session: id, transport: 'udp' }, 'listed in /v1/sessions with its RTSP session');
  t.equal(view.tracks[0]!.port, Number(m![1]), 'server_port is the record session’s port');
  const N = 50;
  for (let k = 0; k < N; k++) sender.send(rtp(k), Number(m![1]), '127.0.0.1');
  await waitUntil(async () => ((await recordOf('cam-udp'))?.tracks[0]?.stats?.packets ?? 0) === N, 10000, 'the packets to be recorded');
  const down = await c.request('TEARDOWN', `${base}/cam-udp`, { Session: id });
  t.equal(down.status, 200, 'TEARDOWN: 200');
  t.equal((await recordOf('cam-udp'))?.state, 'ended', 'the recording is final when TEARDOWN is answered');
  await checkFinished(t, 'cam-udp', 'teardown', N);
  t.equal((await c.request('GET_PARAMETER', `${base}/cam-udp`, { Session: id })).status, 454, 'the RTSP session is gone');
  const manifest = (await server.api('GET', '/v1/recordings/cam-udp')).body;
  t.equal(manifest.state, 'finished', 'the manifest says finished');
});

t.test('UDP: the recording latches to the publisher’s host only: RTP from another address is refused by the slow path', async (t) => {
  const c = await connect(t);
  const sender = await udpSender(t);
  const cp = sender.address().port;
  const { id, setup } = await announceSetup(c, 'cam-other', `RTP/AVP;unicast;client_port=${cp}-${cp + 1};mode=record`);
  const serverPort = Number(/server_port=(\d+)/.exec(setup.headers.transport ?? '')![1]);
  t.equal((await c.request('RECORD', `${base}/cam-other`, { Session: id })).status, 200);
  const recordId = (await recordOf('cam-other'))!.id;
  const mismatches = server.recordings.decisions['source-mismatch'] ?? 0;
  // Another host (127.0.0.2 is loopback too, inside sources.allow): not the RTSP client.
  const other = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => other.bind(0, '127.0.0.2', resolve));
  t.teardown(() => other.close());
  const rejected = async (): Promise<number> =>
    (await server.api<{ tracks: { stats?: { drops: Record<string, number> } }[] }>('GET', `/v1/sessions/${recordId}`)).body.tracks[0]?.stats?.drops.rejected ??
    0;
  for (let k = 0; k < 5; k++) other.send(rtp(k), serverPort, '127.0.0.1');
  await waitUntil(async () => (await rejected()) >= 1, 10000, 'the other host’s flow to be refused');
  t.equal(server.recordings.decisions['source-mismatch'], mismatches + 1, 'one source-mismatch decision');
  for (let k = 5; k < 10; k++) sender.send(rtp(k), serverPort, '127.0.0.1');
  await waitUntil(async () => ((await recordOf('cam-other'))?.tracks[0]?.stats?.packets ?? 0) >= 5, 10000, 'the client’s packets to be recorded');
  t.equal((await c.request('TEARDOWN', `${base}/cam-other`, { Session: id })).status, 200);
  const got = (await dump('cam-other')).records.filter((r) => !r.rtcp).map((r) => r.data);
  t.ok(got.length === 5 && got.every((b, k) => b.equals(rtp(k + 5))), `the recording holds the client’s packets only (${got.length})`);
});

t.test(
  'TCP: interleaved RTP and RTCP from the publisher land in the recording; receiver reports come back; an unknown channel is counted; the close finalizes',
  async (t) => {
    const c = await connect(t);
    const { id, setup } = await announceSetup(c, 'cam-tcp', 'RTP/AVP/TCP;unicast;interleaved=4-5;mode=record');
    t.equal(setup.status, 200);
    t.match(setup.headers.transport, /^RTP\/AVP\/TCP;unicast;interleaved=4-5;mode=record$/, 'the channels asked for');
    t.equal((await c.request('RECORD', `${base}/cam-tcp`, { Session: id })).status, 200, 'RECORD: 200');
    t.same((await recordOf('cam-tcp'))!.rtsp, { session: id, transport: 'tcp' });
    const before = (await workerRtsp()).unknownChannel;
    const N = 60;
    const frames: Buffer[] = [];
    for (let k = 0; k < N; k++) frames.push(frame(4, rtp(k)));
    frames.splice(30, 0, frame(9, rtp(999)));
    // Written in pieces that cut frames anywhere.
    const all = Buffer.concat(frames);
    for (let off = 0; off < all.length; off += 777) c.write(all.subarray(off, off + 777));
    await waitUntil(async () => ((await recordOf('cam-tcp'))?.tracks[0]?.stats?.packets ?? 0) === N, 10000, 'the packets to be recorded');
    t.equal((await workerRtsp()).unknownChannel, before + 1, 'the frame on channel 9 is dropped and counted');
    c.write(frame(5, senderReport(N)));
    // The recorder's receiver reports (rtp.rtcpIntervalMs 500) come back on the RTCP channel.
    await c.until(() => c.frames.some((f) => f.channel === 5 && f.data[1] === 201), 10000, 'a receiver report on channel 5');
    const rr = c.frames.find((f) => f.channel === 5 && f.data[1] === 201)!.data;
    t.equal(rr.readUInt32BE(8), SSRC, 'a receiver report about the publisher’s stream');
    c.close();
    const d = await checkFinished(t, 'cam-tcp', 'connection', N);
    const sr = d.records.filter((r) => r.rtcp);
    t.equal(sr.length, 1, 'the publisher’s sender report is kept');
    t.ok(sr[0]?.data.equals(senderReport(N)), 'byte for byte');
  },
);

t.test('TCP: an RTCP BYE from the publisher ends the recording; the RTSP session stays until TEARDOWN (RECORD then 455)', async (t) => {
  const c = await connect(t);
  const { id } = await announceSetup(c, 'cam-bye', 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record');
  t.equal((await c.request('RECORD', `${base}/cam-bye`, { Session: id })).status, 200);
  const frames: Buffer[] = [];
  for (let k = 0; k < 10; k++) frames.push(frame(0, rtp(k)));
  c.write(Buffer.concat(frames));
  await waitUntil(async () => ((await recordOf('cam-bye'))?.tracks[0]?.stats?.packets ?? 0) === 10, 10000, 'the packets to be recorded');
  const bye = Buffer.alloc(8);
  bye[0] = 0x81;
  bye[1] = 203;
  bye.writeUInt16BE(1, 2);
  bye.writeUInt32BE(SSRC, 4);
  c.write(frame(1, Buffer.concat([senderReport(10), bye])));
  await checkFinished(t, 'cam-bye', 'bye', 10);
  t.equal((await c.request('RECORD', `${base}/cam-bye`, { Session: id })).status, 455, 'RECORD after the end: 455');
  t.equal((await c.request('TEARDOWN', `${base}/cam-bye`, { Session: id })).status, 200, 'TEARDOWN finds the session: 200');
});

t.test('DELETE of the record session ends the RTSP session; a publisher that sends media needs no keep-alive, one that stops times out', async (t) => {
  const c = await connect(t);
  const sender = await udpSender(t);
  const cp = sender.address().port;
  const one = await announceSetup(c, 'cam-del', `RTP/AVP;unicast;client_port=${cp}-${cp + 1};mode=record`);
  t.equal((await c.request('RECORD', `${base}/cam-del`, { Session: one.id })).status, 200);
  const rec = (await recordOf('cam-del'))!;
  t.equal((await server.api('DELETE', `/v1/sessions/${rec.id}`)).status, 200, 'DELETE: 200');
  t.equal((await c.request('GET_PARAMETER', `${base}/cam-del`, { Session: one.id })).status, 454, 'the RTSP session went with it: 454');

  const two = await announceSetup(c, 'cam-alive', `RTP/AVP;unicast;client_port=${cp}-${cp + 1};mode=record`);
  const serverPort = Number(/server_port=(\d+)/.exec(two.setup.headers.transport ?? '')![1]);
  t.equal((await c.request('RECORD', `${base}/cam-alive`, { Session: two.id })).status, 200);
  // Media for twice the keep-alive time (1.5 s), no request.
  const started = performance.now();
  let k = 0;
  while (performance.now() - started < 3000) {
    sender.send(rtp(k++), serverPort, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 40));
  }
  t.equal((await recordOf('cam-alive'))?.state, 'recording', 'still recording after 3 s of media without a request');
  const stopped = performance.now();
  const done = await finalOf('cam-alive');
  t.equal(done.reason, 'timeout', 'once the media stops, the keep-alive timeout ends it');
  t.ok(performance.now() - stopped < 8000, 'within a few seconds');
  t.equal(done.recording?.tracks[0]?.packets, k, `all ${k} packets recorded`);
});

t.test('a connection closed before RECORD gives the name back at once (UDP transports too)', async (t) => {
  const c = await connect(t);
  const sender = await udpSender(t);
  const cp = sender.address().port;
  const { id, setup } = await announceSetup(c, 'cam-gone', `RTP/AVP;unicast;client_port=${cp}-${cp + 1};mode=record`);
  t.equal(setup.status, 200);
  c.close();
  await waitUntil(() => teardowns.some((x) => x.id === id), 5000, 'the session to end');
  t.same(
    teardowns.filter((x) => x.id === id).map((x) => x.why),
    ['connection'],
    'ended by the close, not by its timeout',
  );
  const again = await connect(t);
  let answer: RtspResponse | undefined;
  // The close reaches the control plane as a notification: the next ANNOUNCE may come just before it.
  await waitUntil(
    async () => {
      answer = await again.request('ANNOUNCE', `${base}/cam-gone`, SDP, PCMU_SDP);
      return answer.status === 200;
    },
    5000,
    'the name to be free again',
  );
  t.equal(answer?.status, 200, 'a new ANNOUNCE of the name: 200');
  t.equal(await recordOf('cam-gone'), undefined, 'nothing was recorded');
  await again.request('TEARDOWN', `${base}/cam-gone`, { Session: sessionId(answer!) });
});

t.test('concurrent ANNOUNCEs of one name: exactly one wins', async (t) => {
  const clients = await Promise.all(Array.from({ length: 8 }, () => connect(t)));
  const answers = await Promise.all(clients.map((c) => c.request('ANNOUNCE', `${base}/cam-race`, SDP, PCMU_SDP)));
  t.equal(answers.filter((a) => a.status === 200).length, 1, 'one 200');
  t.same(
    answers.filter((a) => a.status !== 200).map((a) => a.status),
    Array(7).fill(403),
    'seven 403',
  );
  const k = answers.findIndex((a) => a.status === 200);
  await clients[k]!.request('TEARDOWN', `${base}/cam-race`, { Session: sessionId(answers[k]!) });
});

t.test('limits.maxSessions under concurrent ANNOUNCEs, auth by api.token, sources.allow', async (t) => {
  const srv = await startServer({ 'limits.maxSessions': 3, 'api.token': 'sekret', 'sources.allow': ['127.0.0.0/8'] }, { rtspPort: 0 });
  t.teardown(() => srv.stop());
  const url = (n: string): string => `rtsp://127.0.0.1:${srv.rtsp!.port!}/${n}`;
  const auth = { Authorization: `Basic ${Buffer.from('any:sekret').toString('base64')}` };
  const c0 = await connect(t, srv);
  const none = await c0.request('ANNOUNCE', url('cam-auth'), SDP, PCMU_SDP);
  t.equal(none.status, 401, 'without credentials: 401');
  t.ok(
    (none.all['www-authenticate'] ?? []).some((v) => v.startsWith('Digest ')),
    'with a Digest challenge',
  );
  const wrong = await c0.request('ANNOUNCE', url('cam-auth'), { ...SDP, Authorization: `Basic ${Buffer.from('any:nope').toString('base64')}` }, PCMU_SDP);
  t.equal(wrong.status, 401, 'a wrong token: 401');
  const clients = await Promise.all(Array.from({ length: 8 }, () => connect(t, srv)));
  const answers = await Promise.all(clients.map((c, i) => c.request('ANNOUNCE', url(`cam-limit-${i}`), { ...SDP, ...auth }, PCMU_SDP)));
  t.equal(answers.filter((a) => a.status === 200).length, 3, 'the right token: as many 200 as limits.maxSessions (3)');
  t.equal(answers.filter((a) => a.status === 503).length, 5, 'the others 503');
  const http = await srv.api(
    'POST',
    '/v1/sessions',
    { mode: 'record', name: 'over', tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }] },
    { authorization: 'Bearer sekret' },
  );
  t.equal(http.status, 503, 'announced sessions count against the limit for HTTP too');
  await Promise.all(
    answers.map((a, i) => (a.status === 200 ? clients[i]!.request('TEARDOWN', url(`cam-limit-${i}`), { ...auth, Session: sessionId(a) }) : null)),
  );
  const after = await clients[0]!.request('ANNOUNCE', url('cam-limit-again'), { ...SDP, ...auth }, PCMU_SDP);
  t.equal(after.status, 200, 'TEARDOWN gave the slots back');
});

t.test('sources.allow applies to the publisher’s address: 403', async (t) => {
  const srv = await startServer({ 'sources.allow': ['10.0.0.0/8'] }, { rtspPort: 0 });
  t.teardown(() => srv.stop());
  const c = await connect(t, srv);
  const r = await c.request('ANNOUNCE', `rtsp://127.0.0.1:${srv.rtsp!.port!}/cam-src`, SDP, PCMU_SDP);
  t.equal(r.status, 403, '127.0.0.1 is outside sources.allow: 403');
  t.match(r.body, /sources\.allow/);
});

t.test(
  'the listener’s worker dies while a client publishes over TCP: the RTSP session ends with its connection, the recording fails (recovered at the next start), nothing stays held',
  async (t) => {
    const srv = await startServer({}, { rtspPort: 0 });
    t.teardown(() => srv.stop());
    const seen: { id: string; why: string }[] = [];
    srv.rtsp!.publisher.onTeardown = (id, why) => seen.push({ id, why });
    const lp = srv.rtsp!.port!;
    const url = `rtsp://127.0.0.1:${lp}/cam-dies`;
    const c = await connect(t, srv);
    const a = await c.request('ANNOUNCE', url, SDP, PCMU_SDP);
    const id = sessionId(a);
    t.equal((await c.request('SETUP', `${url}/streamid=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record', Session: id })).status, 200);
    t.equal((await c.request('RECORD', url, { Session: id })).status, 200);
    const frames: Buffer[] = [];
    for (let k = 0; k < 20; k++) frames.push(frame(0, rtp(k)));
    c.write(Buffer.concat(frames));
    await waitUntil(async () => ((await recordOf('cam-dies', srv))?.tracks[0]?.stats?.packets ?? 0) === 20, 10000, 'the packets to be recorded');
    const workers = (srv.offload as unknown as { workers: Worker[] }).workers;
    await workers[0]!.terminate();
    await c.waitClosed();
    await waitUntil(() => seen.some((d) => d.id === id && d.why === 'connection'), 5000, 'the publishing session to end with its connection');
    t.same(
      seen.filter((d) => d.id === id).map((d) => d.why),
      ['ended', 'connection'],
      'its recording failed with the worker, then the session went with its connection',
    );
    const view = (await recordOf('cam-dies', srv))!;
    t.equal(view.state, 'failed', 'the record session failed');
    t.equal(srv.recordings.active, 0, 'its slot and ports are back');
    t.equal(srv.rtsp!.sessions.size, 0, 'no RTSP session is left');
  },
);

t.test('the port pool: a UDP SETUP beyond it gets 453; interleaved needs no port; TEARDOWN before RECORD gives the pair back', async (t) => {
  const lo = randomPortBlock(4);
  const srv = await startServer({ 'rtp.portMin': lo, 'rtp.portMax': lo + 1 }, { rtspPort: 0 });
  t.teardown(() => srv.stop());
  const url = (n: string): string => `rtsp://127.0.0.1:${srv.rtsp!.port!}/${n}`;
  const c = await connect(t, srv);
  const setup = async (name: string, transport: string): Promise<{ id: string; status: number }> => {
    const a = await c.request('ANNOUNCE', url(name), SDP, PCMU_SDP);
    const s = await c.request('SETUP', `${url(name)}/streamid=0`, { Transport: transport, Session: sessionId(a) });
    return { id: sessionId(a), status: s.status };
  };
  const udp = 'RTP/AVP;unicast;client_port=40000-40001;mode=record';
  const first = await setup('pool-1', udp);
  t.equal(first.status, 200, 'the one pair of the pool');
  const second = await setup('pool-2', udp);
  t.equal(second.status, 453, 'no pair left: 453');
  const tcp = await c.request('SETUP', `${url('pool-2')}/streamid=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record', Session: second.id });
  t.equal(tcp.status, 200, 'interleaved needs none: 200');
  t.equal((await c.request('TEARDOWN', url('pool-1'), { Session: first.id })).status, 200);
  const third = await setup('pool-3', udp);
  t.equal(third.status, 200, 'the pair is back after TEARDOWN');
});

t.test('IPv6: a listener on ::1 takes publishers over UDP and TCP', async (t) => {
  const six = await startServer({ 'http.host': '::1' }, { rtspPort: 0 });
  t.teardown(() => six.stop());
  const p6 = six.rtsp!.port!;
  const c = await RawRtsp.connect(p6, '::1');
  t.teardown(() => c.close());
  const sender = dgram.createSocket('udp6');
  await new Promise<void>((resolve) => sender.bind(0, '::1', resolve));
  t.teardown(() => sender.close());
  const cp = sender.address().port;
  for (const [name, transport] of [
    ['v6-udp', `RTP/AVP;unicast;client_port=${cp}-${cp + 1};mode=record`],
    ['v6-tcp', 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record'],
  ] as const) {
    const url = `rtsp://[::1]:${p6}/${name}`;
    const a = await c.request('ANNOUNCE', url, SDP, PCMU_SDP);
    t.equal(a.status, 200, `${name}: ANNOUNCE`);
    const s = await c.request('SETUP', `${url}/streamid=0`, { Transport: transport, Session: sessionId(a) });
    t.equal(s.status, 200, `${name}: SETUP`);
    t.equal((await c.request('RECORD', url, { Session: sessionId(a) })).status, 200, `${name}: RECORD`);
    const serverPort = /server_port=(\d+)/.exec(s.headers.transport ?? '');
    for (let k = 0; k < 10; k++) {
      if (serverPort !== null) sender.send(rtp(k), Number(serverPort[1]), '::1');
      else c.write(frame(0, rtp(k)));
    }
    await waitUntil(async () => ((await recordOf(name, six))?.tracks[0]?.stats?.packets ?? 0) === 10, 10000, `${name}: the packets to be recorded`);
    t.equal((await c.request('TEARDOWN', url, { Session: sessionId(a) })).status, 200, `${name}: TEARDOWN`);
    t.equal((await recordOf(name, six))?.recording?.tracks[0]?.packets, 10, `${name}: all 10 packets recorded`);
  }
});
