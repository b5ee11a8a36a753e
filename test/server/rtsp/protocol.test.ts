/**
 * The RTSP protocol over raw sockets on 127.0.0.1: every method in every
 * state, every error status, pipelined and split requests, interleaved
 * frames mixed with answers, sessions and their ends, limits, and the media
 * itself (L16 payloads compared with the WAV's samples byte for byte).
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import type { Worker } from 'node:worker_threads';
import { startServer } from '../../helpers/server.js';
import { makeWav, wavData } from '../../helpers/media.js';
import { RawRtsp, sessionId, type RtspResponse } from '../../helpers/rtsp.js';
import { RtpSink, parseRtcp, parseRtp, receiverReport } from '../../helpers/rtp.js';
import { waitUntil } from '../../helpers/ready.js';

const RATE = 48000;
const SECONDS = 3;
const wav = makeWav(RATE, 2, SECONDS);
/** The WAV's samples as L16 sends them: big-endian. */
const l16 = Buffer.from(wavData(wav));
l16.swap16();
/** Bytes per ms of the source (48 kHz stereo, 16-bit). */
const BYTES_PER_MS = (RATE * 4) / 1000;

const server = await startServer({ 'rtsp.sessionTimeoutMs': 1500, 'rtsp.requestTimeoutMs': 400 }, { rtspPort: 0 });
t.teardown(() => server.stop());
const port = server.rtsp!.port!;
const base = `rtsp://127.0.0.1:${port}`;
await server.api('PUT', '/v1/media/tone.wav', wav);
await server.api('PUT', '/v1/media/other.wav', makeWav(8000, 1, 1));

const teardowns: { id: string; why: string }[] = [];
server.rtsp!.reader.onTeardown = (id, why) => teardowns.push({ id, why });

async function connect(t: Test): Promise<RawRtsp> {
  const c = await RawRtsp.connect(port);
  t.teardown(() => c.close());
  return c;
}

async function sink(t: Test): Promise<RtpSink> {
  const s = await RtpSink.open();
  t.teardown(() => s.close());
  return s;
}

async function listed(
  id: string,
): Promise<{ state: string; rtsp?: { session: string; transport: string }; tracks: { stats?: { receiverReports?: number } }[] } | undefined> {
  const all = (
    await server.api<{
      sessions: { id: string; state: string; rtsp?: { session: string; transport: string }; tracks: { stats?: { receiverReports?: number } }[] }[];
    }>('GET', '/v1/sessions')
  ).body.sessions;
  return all.find((s) => s.rtsp?.session === id);
}

async function workerRtsp(): Promise<{ unknownChannel: number; badRequests: number; timeouts: number }> {
  const [w] = await server.offload.all('worker.stats', {});
  return w!.rtsp;
}

/** `a=b;c=d` parameters of a header value. */
function params(v: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of v.split(';')) {
    const i = p.indexOf('=');
    out[i < 0 ? p : p.slice(0, i)] = i < 0 ? '' : p.slice(i + 1);
  }
  return out;
}

t.test('UDP: SETUP, PLAY from a Range, PAUSE, PLAY resume, to the end: every byte of the source from the Range on, in order', async (t) => {
  const c = await connect(t);
  const s = await sink(t);
  const setup = await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: `RTP/AVP;unicast;client_port=${s.port}-${s.port + 1}` });
  t.equal(setup.status, 200);
  const tp = params(setup.headers.transport!);
  t.equal(tp.client_port, `${s.port}-${s.port + 1}`);
  const [sp0, sp1] = tp.server_port!.split('-').map(Number);
  t.equal(sp1, sp0! + 1, 'server_port is a pair');
  const id = sessionId(setup);
  t.match(setup.headers.session, new RegExp(`^${id};timeout=2$`), 'Session: ID;timeout (rounded seconds)');

  // Receiver reports from the client's RTCP port, as a player sends them: the keep-alive while it plays.
  const rr = receiverReport(parseInt(tp.ssrc!, 16));
  const keepAlive = setInterval(() => void s.sendRtcp(rr, sp1!), 300);
  t.teardown(() => clearInterval(keepAlive));
  const play = await c.request('PLAY', `${base}/tone.wav/`, { Session: id, Range: 'npt=0.5-' });
  t.equal(play.status, 200);
  t.equal(play.headers.range, 'npt=0.500-');
  const info = params(play.headers['rtp-info']!.split(',')[0]!);
  t.equal(info.url, `${base}/tone.wav/trackID=0`);
  await s.waitFor(20);
  const first = s.packets[0]!;
  t.equal(first.seq, Number(info.seq), 'the first packet has the RTP-Info seq');
  t.equal(first.ts, Number(info.rtptime), 'and the RTP-Info rtptime');
  t.equal(first.ssrc, parseInt(tp.ssrc!, 16), 'and the SSRC SETUP announced');
  t.equal(first.payloadType, 96);

  const pause = await c.request('PAUSE', `${base}/tone.wav/`, { Session: id });
  t.equal(pause.status, 200);
  const pausedAt = Number(/^npt=([0-9.]+)-$/.exec(pause.headers.range!)![1]);
  t.ok(pausedAt > 0.5 && pausedAt < SECONDS, `paused at ${pausedAt} s`);
  const view = await listed(id);
  t.equal(view?.state, 'paused', 'the session in /v1/sessions is paused');

  const resume = await c.request('PLAY', `${base}/tone.wav/`, { Session: id });
  t.equal(resume.status, 200);
  const info2 = params(resume.headers['rtp-info']!);
  const before = s.packets.length;
  await s.waitFor(before + 1);
  t.equal(s.packets[before]!.seq, Number(info2.seq), 'after the resume, the first packet has the new RTP-Info seq');
  // The session ends by itself at the end of the media: BYE on RTCP.
  await waitUntil(() => s.rtcpPackets.some((p) => parseRtcp(p.msg).some((r) => r.getPacketType() === 203)), 15000, 'BYE');
  const seqs = s.packets.map((p) => p.seq);
  t.same(
    seqs,
    seqs.map((_, i) => (seqs[0]! + i) & 0xffff),
    `${seqs.length} packets, sequence numbers contiguous across the pause`,
  );
  const got = Buffer.concat(s.packets.map((p) => p.payload));
  t.ok(got.equals(l16.subarray(500 * BYTES_PER_MS)), `the payloads are the source's samples from 0.5 s to the end (${got.length} bytes)`);
  await waitUntil(() => teardowns.some((d) => d.id === id && d.why === 'ended'), 5000, 'the RTSP session to see the end of its media');
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: id })).status, 455, 'PLAY after the end: 455');
  t.equal((await c.request('GET_PARAMETER', `${base}/tone.wav/`, { Session: id })).status, 200, 'the RTSP session is still there');
  t.equal((await c.request('TEARDOWN', `${base}/tone.wav/`, { Session: id })).status, 200, 'and its TEARDOWN is answered 200');
  t.equal((await c.request('TEARDOWN', `${base}/tone.wav/`, { Session: id })).status, 454, 'then it is gone');
});

t.test('TCP interleaved: frames and answers mixed on one connection, receiver reports read, close tears down', async (t) => {
  const c = await connect(t);
  const setup = await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=4-5' });
  t.equal(setup.status, 200);
  t.match(setup.headers.transport, /^RTP\/AVP\/TCP;unicast;interleaved=4-5;ssrc=[0-9A-F]{8}$/);
  const id = sessionId(setup);
  const ssrc = parseInt(params(setup.headers.transport!).ssrc!, 16);
  const play = await c.request('PLAY', `${base}/tone.wav/`, { Session: id });
  t.equal(play.status, 200);
  const playAt = c.order.lastIndexOf('response');
  t.notOk(c.order.slice(0, playAt).includes('frame'), 'no frame ahead of the PLAY answer');
  await c.until(() => c.frames.filter((f) => f.channel === 4).length >= 50, 10000, '50 RTP frames');
  // A keep-alive while frames flow: its answer comes between frames.
  const ka = await c.request('GET_PARAMETER', `${base}/tone.wav/`, { Session: id });
  t.equal(ka.status, 200);
  t.equal(ka.headers.session, id);
  await c.until(() => c.order.lastIndexOf('frame') > c.order.lastIndexOf('response'), 10000, 'a frame after the keep-alive answer');
  const lastResponse = c.order.lastIndexOf('response');
  t.ok(c.order.slice(0, lastResponse).includes('frame') && lastResponse < c.order.length - 1, 'the answer came between frames');
  t.ok(
    c.frames.some((f) => f.channel === 5 && parseRtcp(f.data).some((r) => r.getPacketType() === 200)),
    'sender reports on the RTCP channel',
  );
  // A receiver report on channel 5 reaches the track's stats.
  const rr = Buffer.from(receiverReport(ssrc));
  c.write(Buffer.concat([Buffer.from([0x24, 5, rr.length >> 8, rr.length & 0xff]), rr]));
  await waitUntil(async () => ((await listed(id))?.tracks[0]?.stats?.receiverReports ?? 0) >= 1, 5000, 'the receiver report in the session stats');
  const rtp = c.frames.filter((f) => f.channel === 4).map((f) => parseRtp(f.data, 0)!);
  t.ok(
    rtp.every((p) => p.ssrc === ssrc && p.payloadType === 96),
    'RTP frames of the track',
  );
  const got = Buffer.concat(rtp.map((p) => p.payload));
  t.ok(got.equals(l16.subarray(0, got.length)), `the payloads are the source's samples from the start (${got.length} bytes)`);
  t.equal((await listed(id))?.rtsp?.transport, 'tcp');
  c.close();
  await waitUntil(() => teardowns.some((d) => d.id === id && d.why === 'connection'), 5000, 'teardown on close');
  t.equal((await listed(id))?.state, 'ended', 'the play session ended with its connection');
});

t.test('a UDP session outlives its connection; TEARDOWN from another connection ends it', async (t) => {
  const s = await sink(t);
  const c1 = await connect(t);
  const setup = await c1.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: `RTP/AVP;unicast;client_port=${s.port}-${s.port + 1}` });
  const id = sessionId(setup);
  t.equal((await c1.request('PLAY', `${base}/tone.wav/`, { Session: id })).status, 200);
  c1.close();
  await s.waitFor(10);
  const c2 = await connect(t);
  const n = s.packets.length;
  await s.waitFor(n + 10);
  t.equal((await listed(id))?.state, 'playing', 'still playing after its connection closed');
  const down = await c2.request('TEARDOWN', `${base}/tone.wav/`, { Session: id });
  t.equal(down.status, 200);
  t.equal((await listed(id))?.state, 'ended');
  t.ok(
    teardowns.some((d) => d.id === id && d.why === 'teardown'),
    'ended by the TEARDOWN',
  );
});

t.test('DELETE /v1/sessions/:id ends the RTSP session', async (t) => {
  const c = await connect(t);
  const s = await sink(t);
  const id = sessionId(await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: `RTP/AVP;unicast;client_port=${s.port}-${s.port + 1}` }));
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: id })).status, 200);
  const v = await listed(id);
  const all = (await server.api<{ sessions: { id: string; rtsp?: { session: string } }[] }>('GET', '/v1/sessions')).body.sessions;
  const httpId = all.find((x) => x.rtsp?.session === id)!.id;
  t.equal(v?.state, 'playing');
  t.equal((await server.api('DELETE', `/v1/sessions/${httpId}`)).status, 200);
  t.equal((await c.request('PAUSE', `${base}/tone.wav/`, { Session: id })).status, 454, 'the RTSP session is gone');
  t.ok(
    teardowns.some((d) => d.id === id && d.why === 'stopped'),
    'stopped with its play session',
  );
});

t.test('each method in each state', async (t) => {
  const c = await connect(t);
  const s = await sink(t);
  const transport = { Transport: `RTP/AVP;unicast;client_port=${s.port}-${s.port + 1}` };
  // Init: no session.
  t.equal((await c.request('PLAY', `${base}/tone.wav/`)).status, 455, 'Init: PLAY 455');
  t.equal((await c.request('PAUSE', `${base}/tone.wav/`)).status, 455, 'Init: PAUSE 455');
  t.equal((await c.request('TEARDOWN', `${base}/tone.wav/`)).status, 455, 'Init: TEARDOWN 455');
  t.equal((await c.request('GET_PARAMETER', `${base}/tone.wav/`)).status, 200, 'Init: GET_PARAMETER 200 (keep-alive)');
  t.equal((await c.request('SET_PARAMETER', `${base}/tone.wav/`)).status, 200, 'Init: SET_PARAMETER 200');
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: 'NOSUCHSESSION' })).status, 454, 'an unknown session: 454');
  // Ready.
  const setup = await c.request('SETUP', `${base}/tone.wav/trackID=0`, transport);
  t.equal(setup.status, 200, 'Init: SETUP 200');
  const id = sessionId(setup);
  t.equal((await c.request('PAUSE', `${base}/tone.wav/`, { Session: id })).status, 455, 'Ready: PAUSE 455');
  t.equal((await c.request('SETUP', `${base}/tone.wav/trackID=0`, { ...transport, Session: id })).status, 455, 'Ready: SETUP of the same track 455');
  t.equal((await c.request('SETUP', `${base}/other.wav/trackID=0`, { ...transport, Session: id })).status, 459, 'Ready: SETUP of another stream 459');
  t.equal((await c.request('SETUP', `${base}/tone.wav/trackID=7`, { ...transport, Session: id })).status, 404, 'Ready: SETUP of no such track 404');
  t.equal((await c.request('PLAY', `${base}/other.wav/`, { Session: id })).status, 459, 'Ready: PLAY naming another stream 459');
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: id, Range: 'npt=9-' })).status, 457, 'Ready: PLAY beyond the end 457');
  t.equal((await c.request('GET_PARAMETER', `${base}/tone.wav/`, { Session: id })).status, 200, 'Ready: GET_PARAMETER 200');
  // Playing.
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: id })).status, 200, 'Ready: PLAY 200');
  t.equal((await c.request('SETUP', `${base}/tone.wav/trackID=0`, { ...transport, Session: id })).status, 455, 'Playing: SETUP 455');
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: id, Range: 'npt=1-' })).status, 200, 'Playing: PLAY with a Range (seek) 200');
  t.equal((await c.request('PAUSE', `${base}/tone.wav/`, { Session: id })).status, 200, 'Playing: PAUSE 200');
  // Paused.
  t.equal((await c.request('PAUSE', `${base}/tone.wav/`, { Session: id })).status, 200, 'Paused: PAUSE 200 (still paused)');
  t.equal((await c.request('SETUP', `${base}/tone.wav/trackID=0`, { ...transport, Session: id })).status, 455, 'Paused: SETUP 455');
  t.equal((await c.request('TEARDOWN', `${base}/tone.wav/`, { Session: id })).status, 200, 'Paused: TEARDOWN 200');
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: id })).status, 454, 'after TEARDOWN: 454');
  // Stateless and refused methods.
  t.equal(
    (await c.request('ANNOUNCE', `${base}/cam1`, { 'Content-Type': 'application/sdp' }, 'v=0\r\n')).status,
    400,
    'ANNOUNCE of an SDP without tracks: 400',
  );
  t.equal((await c.request('RECORD', `${base}/cam1`)).status, 455, 'RECORD without a session: 455');
  const unknown = await c.request('REDIRECT', `${base}/tone.wav`);
  t.equal(unknown.status, 501, 'an unknown method: 501');
  t.match(unknown.headers.public, /DESCRIBE/, 'with the methods that are');
});

t.test('SETUP: transports, names, limits', async (t) => {
  const free = server.ports.free;
  const c = await connect(t);
  for (const tr of [
    'RTP/AVP;multicast',
    'RTP/SAVP;unicast;client_port=5000-5001',
    'RTP/AVP;unicast',
    'RTP/AVP;unicast;client_port=5000-5003',
    'RAW/RAW/UDP;unicast',
  ]) {
    t.equal((await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: tr })).status, 461, `${tr}: 461`);
  }
  t.equal((await c.request('SETUP', `${base}/tone.wav/trackID=0`)).status, 461, 'no Transport: 461');
  const alt = await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: 'RTP/AVP;multicast,RTP/AVP/TCP;unicast' });
  t.equal(alt.status, 200, 'the first transport that can be served wins');
  t.match(alt.headers.transport, /^RTP\/AVP\/TCP;unicast;interleaved=0-1;/, 'channels picked by the server when the client names none');
  t.equal((await c.request('TEARDOWN', `${base}/tone.wav/`, { Session: sessionId(alt) })).status, 200);
  t.equal((await c.request('SETUP', `${base}/nothing.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast' })).status, 404, 'unknown name: 404');
  t.equal((await c.request('DESCRIBE', `${base}/../etc/passwd`)).status, 404, 'a traversal name: 404');
  t.equal((await c.request('DESCRIBE', `${base}/tone.wav`, { Accept: 'text/html' })).status, 406, 'DESCRIBE accepting no SDP: 406');
  // A SETUP that fails allocates nothing: the port pool is as before.
  t.equal(server.ports.free, free, 'no port pair held');
});

t.test('requests pipelined in one segment, and one split into single bytes', async (t) => {
  const c = await connect(t);
  c.write(c.text('OPTIONS', `${base}/tone.wav`) + c.text('DESCRIBE', `${base}/tone.wav`) + c.text('GET_PARAMETER', `${base}/tone.wav`));
  const rs: RtspResponse[] = [await c.response(0), await c.response(1), await c.response(2)];
  t.same(
    rs.map((r) => [r.headers.cseq, r.status]),
    [
      ['1', 200],
      ['2', 200],
      ['3', 200],
    ],
    'three answers in order',
  );
  t.equal(rs[1]!.headers['content-type'], 'application/sdp');
  const text = Buffer.from(c.text('DESCRIBE', `${base}/tone.wav`, { Accept: 'application/sdp' }));
  for (const b of text) {
    c.write(Buffer.from([b]));
    await new Promise((r) => setImmediate(r));
  }
  const r = await c.response(3);
  t.equal(r.status, 200);
  t.equal(r.headers.cseq, '4');
  t.match(r.body, /a=control:trackID=0/);
  // A request and an interleaved frame for a channel nothing is set up on, in one segment.
  const before = (await workerRtsp()).unknownChannel;
  c.write(Buffer.concat([Buffer.from([0x24, 9, 0, 4, 1, 2, 3, 4]), Buffer.from(c.text('OPTIONS', '*'))]));
  t.equal((await c.response(4)).status, 200, 'the request after the frame is answered');
  t.equal((await workerRtsp()).unknownChannel, before + 1, 'the frame for an unknown channel is dropped and counted');
  const metrics = (await server.api('GET', '/metrics')).text;
  t.match(metrics, new RegExp(`offcast_rtsp_unknown_channel_total ${before + 1}`), 'and in /metrics');
});

t.test('malformed and oversized requests: the status, then the connection closes', async (t) => {
  const cases: [string, string | Buffer, number][] = [
    ['garbage request line', 'HELLO\r\n\r\n', 400],
    ['a header line without a colon', 'OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n', 400],
    ['RTSP/2.0', 'OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n', 505],
    ['an HTTP request', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 505],
    ['a request line over 4096 bytes', `DESCRIBE rtsp://h/${'a'.repeat(5000)} RTSP/1.0\r\n`, 400],
    [
      'headers over 16 KiB',
      `OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n${'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(300)}`,
      400,
    ],
    ['more than 64 headers', `OPTIONS * RTSP/1.0\r\n${'A: b\r\n'.repeat(65)}\r\n`, 400],
    ['a body over 64 KiB', 'ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 70000\r\n\r\n', 413],
    ['a malformed Content-Length', 'OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1e3\r\n\r\n', 400],
  ];
  for (const [what, bytes, status] of cases) {
    const before = (await workerRtsp()).badRequests;
    const c = await connect(t);
    c.write(bytes);
    const r = await c.response(0);
    t.equal(r.status, status, `${what}: ${status}`);
    t.equal(r.headers.connection, 'close');
    await c.waitClosed();
    t.equal((await workerRtsp()).badRequests, before + 1, `${what}: counted`);
  }
  // Other connections are not disturbed: a good one is answered meanwhile.
  const ok = await connect(t);
  t.equal((await ok.request('OPTIONS', '*')).status, 200);
});

t.test('slowloris: a request that does not complete in rtsp.requestTimeoutMs gets 408 and the connection closes', async (t) => {
  const before = (await workerRtsp()).timeouts;
  const c = await connect(t);
  c.write('OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n');
  const r = await c.response(0, 5000);
  t.equal(r.status, 408);
  await c.waitClosed();
  t.equal((await workerRtsp()).timeouts, before + 1);
});

t.test('a stream of frames whose segments always end mid-frame is no slowloris: each completed frame restarts the clock', async (t) => {
  const c = await connect(t);
  const before = (await workerRtsp()).unknownChannel;
  const frame = Buffer.concat([Buffer.from([0x24, 9, 0, 16]), Buffer.alloc(16, 7)]);
  c.write(frame.subarray(0, 10));
  const frames = 30;
  // 30 × 50 ms = 1.5 s, well past rtsp.requestTimeoutMs (400 ms), never a whole segment boundary.
  for (let i = 1; i < frames; i++) {
    await new Promise((r) => setTimeout(r, 50));
    c.write(Buffer.concat([frame.subarray(10), frame.subarray(0, 10)]));
  }
  c.write(frame.subarray(10));
  const r = await c.request('OPTIONS', '*');
  t.equal(r.status, 200, 'the connection is still open and answered');
  t.equal((await workerRtsp()).unknownChannel, before + frames, `all ${frames} frames parsed (and dropped: no channel is set up)`);
});

t.test('keep-alive: a session with no request for rtsp.sessionTimeoutMs is torn down; RTCP receiver reports keep one alive', async (t) => {
  const c = await connect(t);
  const s = await sink(t);
  const free = server.ports.free;
  const idle = sessionId(await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: `RTP/AVP;unicast;client_port=${s.port}-${s.port + 1}` }));
  t.equal(server.ports.free, free - 1, 'its port pair is held');
  const s2 = await sink(t);
  const setup2 = await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: `RTP/AVP;unicast;client_port=${s2.port}-${s2.port + 1}` });
  const alive = sessionId(setup2);
  const serverRtcp = Number(params(setup2.headers.transport!).server_port!.split('-')[1]);
  const ssrc = parseInt(params(setup2.headers.transport!).ssrc!, 16);
  t.equal((await c.request('PLAY', `${base}/tone.wav/`, { Session: alive })).status, 200);
  // The second sends receiver reports from its RTCP port, as a player does; no requests.
  const rr = receiverReport(ssrc);
  const timer = setInterval(() => void s2.sendRtcp(rr, serverRtcp), 200);
  t.teardown(() => clearInterval(timer));
  await waitUntil(() => teardowns.some((d) => d.id === idle), 10000, 'the idle session to time out');
  t.same(
    teardowns.find((d) => d.id === idle),
    { id: idle, why: 'timeout' },
    'torn down by its timeout',
  );
  t.equal((await c.request('GET_PARAMETER', `${base}/tone.wav/`, { Session: idle })).status, 454, 'its id is unknown now');
  t.equal(server.ports.free, free - 1, 'its port pair went back (the other session holds its own)');
  // The session kept alive by RTCP plays to its end (3 s, twice the timeout).
  await waitUntil(() => teardowns.some((d) => d.id === alive), 10000, 'the RTCP-fed session to reach its end');
  t.same(
    teardowns.find((d) => d.id === alive),
    { id: alive, why: 'ended' },
    'it ended with its media, not by the timeout',
  );
  t.ok(s2.packets.length * 1200 >= l16.length * 0.99, `it sent the whole file (${s2.packets.length} packets)`);
});

t.test('limits.maxSessions and destinations.allow apply to RTSP', async (t) => {
  const limited = await startServer({ 'limits.maxSessions': 1 }, { rtspPort: 0 });
  t.teardown(() => limited.stop());
  await limited.api('PUT', '/v1/media/tone.wav', wav);
  const lp = limited.rtsp!.port!;
  const a = await RawRtsp.connect(lp);
  const b = await RawRtsp.connect(lp);
  t.teardown(() => {
    a.close();
    b.close();
  });
  const first = await a.request('SETUP', `rtsp://127.0.0.1:${lp}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast' });
  t.equal(first.status, 200);
  t.equal(
    (await b.request('SETUP', `rtsp://127.0.0.1:${lp}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast' })).status,
    503,
    'over limits.maxSessions: 503',
  );
  t.equal((await a.request('TEARDOWN', `rtsp://127.0.0.1:${lp}/tone.wav/`, { Session: sessionId(first) })).status, 200);
  t.equal((await b.request('SETUP', `rtsp://127.0.0.1:${lp}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast' })).status, 200, 'the slot is free again');

  const fenced = await startServer({ 'destinations.allow': ['10.0.0.0/8'] }, { rtspPort: 0 });
  t.teardown(() => fenced.stop());
  await fenced.api('PUT', '/v1/media/tone.wav', wav);
  const f = await RawRtsp.connect(fenced.rtsp!.port!);
  t.teardown(() => f.close());
  for (const tr of ['RTP/AVP;unicast;client_port=5000-5001', 'RTP/AVP/TCP;unicast']) {
    t.equal(
      (await f.request('SETUP', `rtsp://127.0.0.1:${fenced.rtsp!.port!}/tone.wav/trackID=0`, { Transport: tr })).status,
      403,
      `${tr}: a client outside destinations.allow gets 403`,
    );
  }
});

t.test('a port the RTSP listener cannot take fails the start; rtsp.port 0 is no listener', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => blocker.close());
  const taken = (blocker.address() as net.AddressInfo).port;
  await t.rejects(startServer({}, { rtspPort: taken }), /EADDRINUSE/);
  const off = await startServer({ 'rtsp.port': 0 }, { rtspPort: undefined });
  t.teardown(() => off.stop());
  t.equal(off.rtsp, null);
});

t.test('with two workers, interleaved sessions run on the listener’s worker whatever the load', async (t) => {
  const two = await startServer({ 'offload.workers': 2 }, { rtspPort: 0 });
  t.teardown(() => two.stop());
  await two.api('PUT', '/v1/media/tone.wav', wav);
  // Three paused HTTP sessions: worker 0 ends up with more, so a placement by load would pick worker 1.
  const sinksHttp = await Promise.all([0, 1, 2].map(() => sink(t)));
  for (const s of sinksHttp) {
    const r = await two.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', state: 'paused', destination: { host: '127.0.0.1', port: s.port } });
    t.equal(r.status, 201);
  }
  t.same(two.offload.load, [2, 1], 'worker 0 holds more sessions');
  const c = await RawRtsp.connect(two.rtsp!.port!);
  t.teardown(() => c.close());
  const b = `rtsp://127.0.0.1:${two.rtsp!.port!}`;
  const setup = await c.request('SETUP', `${b}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1' });
  const id = sessionId(setup);
  t.equal((await c.request('PLAY', `${b}/tone.wav/`, { Session: id })).status, 200);
  t.same(two.offload.load, [3, 1], 'the interleaved session went to worker 0');
  await c.until(() => c.frames.filter((f) => f.channel === 0).length >= 100, 10000, '100 frames');
  const got = Buffer.concat(c.frames.filter((f) => f.channel === 0).map((f) => parseRtp(f.data, 0)!.payload));
  t.ok(got.equals(l16.subarray(0, got.length)), `the source's samples (${got.length} bytes)`);
});

t.test('IPv6: a listener on ::1 serves UDP and TCP readers there', async (t) => {
  const six = await startServer({ 'http.host': '::1' }, { rtspPort: 0 });
  t.teardown(() => six.stop());
  await six.api('PUT', '/v1/media/tone.wav', wav);
  const p6 = six.rtsp!.port!;
  const c = await RawRtsp.connect(p6, '::1');
  t.teardown(() => c.close());
  const b = `rtsp://[::1]:${p6}`;
  const d = await c.request('DESCRIBE', `${b}/tone.wav`);
  t.equal(d.status, 200);
  t.equal(d.headers['content-base'], `${b}/tone.wav/`, 'Content-Base names the IPv6 address');
  t.match(d.body, /^c=IN IP6 ::$/m);
  const s6 = await RtpSink.open(6);
  t.teardown(() => s6.close());
  const setup = await c.request('SETUP', `${b}/tone.wav/trackID=0`, { Transport: `RTP/AVP;unicast;client_port=${s6.port}-${s6.port + 1}` });
  t.equal(setup.status, 200);
  t.equal((await c.request('PLAY', `${b}/tone.wav/`, { Session: sessionId(setup) })).status, 200);
  await s6.waitFor(100);
  const got = Buffer.concat(s6.packets.map((p) => p.payload));
  t.ok(got.equals(l16.subarray(0, got.length)), `UDP over IPv6: the source's samples (${got.length} bytes)`);
  const c2 = await RawRtsp.connect(p6, '::1');
  t.teardown(() => c2.close());
  const setup2 = await c2.request('SETUP', `${b}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1' });
  t.equal((await c2.request('PLAY', `${b}/tone.wav/`, { Session: sessionId(setup2) })).status, 200);
  await c2.until(() => c2.frames.length >= 50, 10000, '50 frames');
  t.pass('TCP over IPv6');
});

t.test('the listener’s worker dies: its connections and interleaved sessions end, a new worker listens on the same port', async (t) => {
  const srv = await startServer({}, { rtspPort: 0 });
  t.teardown(() => srv.stop());
  await srv.api('PUT', '/v1/media/tone.wav', wav);
  const lp = srv.rtsp!.port!;
  const seen: { id: string; why: string }[] = [];
  srv.rtsp!.reader.onTeardown = (id, why) => seen.push({ id, why });
  const c = await RawRtsp.connect(lp);
  t.teardown(() => c.close());
  const id = sessionId(await c.request('SETUP', `rtsp://127.0.0.1:${lp}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast' }));
  t.equal((await c.request('PLAY', `rtsp://127.0.0.1:${lp}/tone.wav/`, { Session: id })).status, 200);
  await c.until(() => c.frames.length >= 10, 10000, 'frames');
  const workers = (srv.offload as unknown as { workers: Worker[] }).workers;
  await workers[0]!.terminate();
  await c.waitClosed();
  await waitUntil(() => seen.some((d) => d.id === id && d.why === 'connection'), 5000, 'the interleaved session to end');
  let again: RawRtsp | null = null;
  await waitUntil(
    async () => {
      again = await RawRtsp.connect(lp).catch(() => null);
      return again !== null;
    },
    10000,
    'the listener to be back',
  );
  const c2 = again! as RawRtsp;
  t.teardown(() => c2.close());
  t.equal((await c2.request('DESCRIBE', `rtsp://127.0.0.1:${lp}/tone.wav`)).status, 200, 'a new connection is served');
});

t.test('a connection closed while its PLAY is decided: the session it creates ends, nothing stays held', async (t) => {
  const before = server.sessions.activePlay;
  const c = await RawRtsp.connect(port);
  const id = sessionId(await c.request('SETUP', `${base}/tone.wav/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast' }));
  c.write(c.text('PLAY', `${base}/tone.wav/`, { Session: id }));
  c.close();
  // Ended with its connection, or its PLAY failed for want of it: either way it is gone.
  await waitUntil(() => teardowns.some((d) => d.id === id && (d.why === 'connection' || d.why === 'failed')), 5000, 'the session to end with its connection');
  await waitUntil(() => server.sessions.activePlay === before, 5000, 'no play session left running');
  t.equal(server.sessions.activePlay, before, 'no play session left running');
  const v = await listed(id);
  t.ok(v === undefined || v.state === 'ended' || v.state === 'failed', `its play session, if it was created, ended (${v?.state ?? 'never created'})`);
});
