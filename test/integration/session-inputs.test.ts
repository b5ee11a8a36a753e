// Inputs of play and record sessions that had no test: malformed RTCP on a
// play session's RTCP port, numeric speed, rtcpMux, source.port,
// record.maxDurationMs, and seeking an audio-only file (within it and past its end).
import t from 'tap';
import dgram from 'node:dgram';
import { startServer, type TestServer } from '../helpers/server.js';
import { RtpSink, receiverReport } from '../helpers/rtp.js';
import { TestSender, payloadFor, rtpPacket } from '../helpers/sender.js';
import { makeWav, wavData } from '../helpers/media.js';
import { waitUntil } from '../helpers/ready.js';
import type { ApiBody } from '../helpers/apiTypes.js';

let server: TestServer;
/** 2 s of L16 8 kHz mono: 20 ms packets of 160 samples. */
const wav = makeWav(8000, 1, 2);
t.before(async () => {
  server = await startServer({ 'rtp.rtcpIntervalMs': 500 });
  const put = await server.api('PUT', '/v1/media/tone.wav', wav);
  if (put.status !== 201) throw new Error(put.text);
});
t.teardown(() => server.stop());

const view = async (id: string): Promise<ApiBody> => (await server.api('GET', `/v1/sessions/${id}`)).body;

/** RTP L16 is big-endian, WAV little-endian (written out here, not with the product's payloader). */
function bigEndian(b: Buffer): Buffer {
  const out = Buffer.alloc(b.length);
  for (let i = 0; i + 1 < b.length; i += 2) {
    out[i] = b[i + 1]!;
    out[i + 1] = b[i]!;
  }
  return out;
}

t.test('malformed RTCP on a play session’s RTCP port: counted, the session keeps playing', async (t) => {
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', loop: true, destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(res.status, 201, res.text);
  const { id, tracks } = res.body;
  const ssrc: number = tracks[0].ssrc;
  const rtcpPort: number = tracks[0].sourcePort + 1;
  await sink.waitFor(5, 5000);
  const rr = Buffer.from(receiverReport(ssrc));
  const malformed: [string, Buffer][] = [
    ['3 bytes', Buffer.from([0x80, 0xc9, 0x00])],
    ['version 1', Buffer.concat([Buffer.from([0x41]), rr.subarray(1)])],
    ['length past the end', Buffer.concat([rr.subarray(0, 2), Buffer.from([0x00, 0x40]), rr.subarray(4)])],
    ['a report block cut short', rr.subarray(0, rr.length - 8)],
    ['an RTP packet', rtpPacket(0, 1, 160, 99, payloadFor(1, 40))],
    ['trailing bytes after the compound', Buffer.concat([rr, Buffer.from([1, 2, 3])])],
    ['zeros', Buffer.alloc(64)],
  ];
  for (const [, msg] of malformed) await sink.sendRtcp(msg, rtcpPort);
  await waitUntil(async () => (await view(id)).tracks[0].stats.rtcpRejected >= malformed.length, 5000, 'the malformed RTCP to be counted').catch(
    () => undefined,
  );
  let v = await view(id);
  t.equal(v.tracks[0].stats.rtcpRejected, malformed.length, `each of ${malformed.map(([n]) => n).join(', ')} is counted`);
  t.equal(v.tracks[0].stats.receiverReports, 0, 'none is read as a report');
  t.equal(v.state, 'playing', 'the session keeps playing');
  const before = sink.packets.length;
  await sink.waitFor(before + 10, 5000);
  t.ok(sink.packets.length >= before + 10, 'and keeps sending');
  // A well-formed report still counts, and well-formed RTCP with nothing for us is not an error.
  await sink.sendRtcp(rr, rtcpPort);
  await sink.sendRtcp(receiverReport(ssrc ^ 1), rtcpPort);
  await waitUntil(async () => (await view(id)).tracks[0].stats.receiverReports >= 1, 5000, 'the report to be read').catch(() => undefined);
  v = await view(id);
  t.equal(v.tracks[0].stats.receiverReports, 1, 'a good receiver report is read');
  t.equal(v.tracks[0].stats.rtcpRejected, malformed.length, 'a report about another SSRC is not malformed');
  t.equal((await server.api('DELETE', `/v1/sessions/${id}`)).status, 200);
});

t.test('a numeric speed paces the media that many times faster, RTP time unchanged', async (t) => {
  // (A numeric string such as "2" is taken as the number: Fastify's schema coercion.)
  for (const speed of [0, -1, 101, 'fast', null, 1e9]) {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', speed, destination: { host: '127.0.0.1', port: 29998 } });
    t.equal(res.status, 400, `speed ${JSON.stringify(speed)}: 400`);
  }
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', speed: 4, destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(res.status, 201, res.text);
  t.equal(res.body.speed, 4);
  await sink.waitFor(100, 10000);
  const p = sink.packets;
  t.equal(p.length, 100, '2 s of 20 ms packets');
  const rtpMs = ((p[p.length - 1]!.ts - p[0]!.ts) >>> 0) / 8;
  const wallMs = p[p.length - 1]!.at - p[0]!.at;
  t.equal(rtpMs, 1980, 'RTP timestamps span the media’s time');
  // A quarter of the media's time (495 ms): never faster; slower only by a loaded machine's lag, well short of 2x.
  t.ok(wallMs > 1980 / 4 - 40, `not faster than 4x: sent in ${wallMs.toFixed(0)} ms`);
  t.ok(wallMs < 1980 / 2, `clearly faster than real time: ${wallMs.toFixed(0)} ms for ${rtpMs} ms of media`);
  t.ok(Buffer.concat(p.map((x) => x.payload)).equals(bigEndian(wavData(wav))), 'every sample, in order');
});

t.test('seek on an audio-only file: from the sample at the position; past the end: the last packet, then the end', async (t) => {
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const res = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'tone.wav',
    state: 'paused',
    destination: { host: '127.0.0.1', port: sink.port },
  });
  t.equal(res.status, 201, res.text);
  const id = res.body.id;
  const seek = await server.api('PATCH', `/v1/sessions/${id}`, { positionMs: 1000 });
  t.equal(seek.status, 200, seek.text);
  t.equal(seek.body.positionMs, 1000, 'the position is where it was asked');
  t.equal((await server.api('PATCH', `/v1/sessions/${id}`, { state: 'playing' })).status, 200);
  await sink.waitFor(50, 5000);
  const pcm = bigEndian(wavData(wav));
  const got = Buffer.concat(sink.packets.map((x) => x.payload));
  t.equal(got.length, pcm.length / 2, 'one second: the half after the position');
  t.ok(got.equals(pcm.subarray(8000 * 2)), 'the samples from 1.000 s on, exactly');
  await waitUntil(async () => (await view(id)).state === 'ended', 5000, 'the end');
  t.equal(sink.packets.length, 50, 'nothing more');

  const sink2 = await RtpSink.open();
  t.teardown(() => sink2.close());
  const res2 = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'tone.wav',
    state: 'paused',
    destination: { host: '127.0.0.1', port: sink2.port },
  });
  const id2 = res2.body.id;
  const past = await server.api('PATCH', `/v1/sessions/${id2}`, { positionMs: 60000 });
  t.equal(past.status, 200, past.text);
  t.ok(past.body.positionMs <= 2000, `past the end the position stays within the media (${past.body.positionMs} ms)`);
  t.equal((await server.api('PATCH', `/v1/sessions/${id2}`, { state: 'playing' })).status, 200);
  await waitUntil(async () => (await view(id2)).state === 'ended', 5000, 'the end');
  t.ok(sink2.packets.length >= 1 && sink2.packets.length <= 1, `the last packet only (${sink2.packets.length})`);
  t.ok(sink2.packets[0]?.payload.equals(pcm.subarray(pcm.length - 320)), 'which is the media’s last 20 ms');
  const neg = await server.api('PATCH', `/v1/sessions/${id2}`, { positionMs: -5 });
  t.equal(neg.status, 400, 'a negative position: 400');
});

t.test('record rtcpMux: the sender’s RTCP on the RTP port is read, and its BYE ends the session', async (t) => {
  const res = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'muxed',
    rtcpMux: true,
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(res.status, 201, res.text);
  t.match(res.body.sdp, /^a=rtcp-mux\r?$/m, 'the SDP says RTCP is multiplexed');
  const port: number = res.body.tracks[0].port;
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  for (let i = 0; i < 20; i++) await tx.send(rtpPacket(0, 1000 + i, i * 160, 0xabc, payloadFor(i, 160)), port);
  await waitUntil(async () => (await view(res.body.id)).tracks[0].stats.packets >= 20, 5000, '20 packets');
  // An empty RR then a BYE (RFC 3550 6.1: a compound starts with a report), from the sender's own RTP port.
  const bye = Buffer.from([0x80, 201, 0, 1, 0, 0, 0x0a, 0xbc, 0x81, 203, 0, 1, 0, 0, 0x0a, 0xbc]);
  await tx.send(bye, port);
  await waitUntil(async () => (await view(res.body.id)).state === 'ended', 10000, 'the BYE to end the session');
  const v = await view(res.body.id);
  t.equal(v.reason, 'bye', 'ended by the BYE on the RTP port');
  t.match(v.recording.tracks[0], { packets: 20, lost: 0 }, 'with every packet');
});

t.test('record source.port: packets from another port of the source host are dropped and counted', async (t) => {
  const a = await TestSender.open();
  const b = await TestSender.open();
  t.teardown(() => (a.close(), b.close()));
  const res = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'pinned',
    source: { host: '127.0.0.1', port: a.port },
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(res.status, 201, res.text);
  t.match(res.body.source, { host: '127.0.0.1', port: a.port });
  const port: number = res.body.tracks[0].port;
  for (let i = 0; i < 5; i++) await b.send(rtpPacket(0, 10 + i, i * 160, 0x55, payloadFor(i, 160)), port);
  for (let i = 0; i < 15; i++) await a.send(rtpPacket(0, 2000 + i, i * 160, 0x66, payloadFor(i, 160)), port);
  await waitUntil(async () => (await view(res.body.id)).tracks[0].stats.packets >= 15, 5000, '15 packets');
  const v = await view(res.body.id);
  t.equal(v.tracks[0].stats.packets, 15, 'only the pinned port’s packets are recorded');
  t.same(v.tracks[0].stats.drops, { rejected: 5 }, 'the other port’s 5 are counted as rejected');
  const del = await server.api('DELETE', `/v1/sessions/${res.body.id}`);
  t.match(del.body.recording.tracks[0], { packets: 15, lost: 0 });
  for (const port of [0, 65536, 1.5, 'rtp']) {
    const bad = await server.api('POST', '/v1/sessions', {
      mode: 'record',
      name: 'bad',
      source: { host: '127.0.0.1', port },
      tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
    });
    t.equal(bad.status, 400, `source.port ${JSON.stringify(port)}: 400`);
  }
});

t.test('record.maxDurationMs ends a record session by itself, with its reason', async (t) => {
  const short = await startServer({ 'record.maxDurationMs': 1000 });
  t.teardown(() => short.stop());
  const started = performance.now();
  const res = await short.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'short',
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(res.status, 201, res.text);
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  let v!: ApiBody;
  let sent = 0;
  await waitUntil(
    async () => {
      if (sent < 200) await tx.send(rtpPacket(0, sent, sent * 160, 0x77, payloadFor(sent, 160)), res.body.tracks[0].port).then(() => sent++);
      v = (await short.api('GET', `/v1/sessions/${res.body.id}`)).body;
      return v.state === 'ended';
    },
    10000,
    'the session to end',
  );
  const took = performance.now() - started;
  t.equal(v.reason, 'max-duration', 'ended for its length');
  t.ok(took >= 1000 && took < 4000, `after ${took.toFixed(0)} ms (limit 1000 ms)`);
  t.equal(v.recording.state, 'finished');
  t.ok(v.recording.tracks[0].packets > 0, `what came before is kept (${v.recording.tracks[0].packets} packets)`);
});
