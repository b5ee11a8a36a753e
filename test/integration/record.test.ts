// Record sessions end to end on loopback: a sender written here injects loss,
// reordering, duplicates and garbage; the recording must hold exactly the
// unique packets in order, and the statistics must match what was injected.
import t from 'tap';
import { packets } from 'rtp.js';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { TestSender, rtpPacket, payloadFor, sleep } from '../helpers/sender.js';
import { readRtpdumpRef } from '../helpers/rtpdump-ref.js';
import { waitFor } from '../helpers/ready.js';
import { openWav } from '../../storage/wav.js';
import { receiverReport, RtpSink } from '../helpers/rtp.js';
import type { ApiBody, ApiTrackStats } from '../helpers/apiTypes.js';

let server: TestServer;
t.before(async () => {
  server = await startServer({ 'record.idleTimeoutMs': 5000 });
});
t.teardown(() => server.stop());

async function createPcmu(name: string, extra: Record<string, unknown> = {}): Promise<ApiBody> {
  const res = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name,
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
    ...extra,
  });
  if (res.status !== 201) throw new Error(`${res.status} ${res.text}`);
  return res.body;
}

/** A track's live stats once `ready` holds for them (polled, bounded: the checks after it say what is missing). */
async function statsWhen(id: string, ready: (st: ApiTrackStats) => boolean, ms = 5000): Promise<ApiTrackStats> {
  let st!: ApiTrackStats;
  await waitFor(async () => ready((st = (await server.api('GET', `/v1/sessions/${id}`)).body.tracks[0].stats)), ms, 20);
  return st;
}
const dropped = (st: ApiTrackStats): number => Object.values((st.drops ?? {}) as Record<string, number>).reduce((n, k) => n + k, 0);

async function readAll(wavPath: string): Promise<Buffer> {
  const r = await openWav(wavPath);
  const parts: Buffer[] = [];
  for await (const s of r.samples()) parts.push(Buffer.from(s.data));
  await r.close();
  return Buffer.concat(parts);
}

t.test('loss, reordering, duplicates and garbage: exactly the unique packets, in order, with matching stats', async (t) => {
  const s = await createPcmu('impaired');
  t.equal(s.mode, 'record');
  t.equal(s.state, 'recording');
  const port: number = s.tracks[0].port;
  t.ok(port % 2 === 0, 'RTP on an even port');
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  const N = 400;
  const seq0 = 65400; // crosses the 16-bit wrap
  const ts0 = 0xfffff000; // and the 32-bit timestamp wrap
  const ssrc = 0x1234abcd;
  const lostIdx = new Set([50, 51, 120, 300]);
  const dupIdx = new Set([10, 200, 350]);
  const swaps = new Set([30, 250]); // i and i+1 swapped
  const pkt = (i: number, pt = 0): Buffer => rtpPacket(pt, seq0 + i, ts0 + i * 160, ssrc, payloadFor(seq0 + i, 160));
  const order: number[] = [];
  for (let i = 0; i < N; i++) {
    if (swaps.has(i)) {
      order.push(i + 1, i);
      i++;
      continue;
    }
    order.push(i);
  }
  let sent = 0;
  /** A pause in the middle of the stream, measured: the recorded arrival offsets must show it. */
  let pauseMs = 0;
  /** Datagrams with a valid RTP header of the flow sent so far (what the slow and fast paths count). */
  let rtpSent = 0;
  for (const i of order) {
    if (i === 200) {
      // Once the worker has read everything sent so far (its counts say so), pause: the packets after the pause
      // cannot be read before it ends, so their arrival offsets are at least the pause later.
      await statsWhen(s.id, (x) => x.fastPath + x.slowPath >= rtpSent);
      const p0 = performance.now();
      await sleep(300);
      pauseMs = performance.now() - p0;
    }
    if (lostIdx.has(i)) continue;
    await tx.send(pkt(i), port);
    rtpSent++;
    if (dupIdx.has(i)) {
      await tx.send(pkt(i), port);
      rtpSent++;
    }
    sent++;
    if (i === 100) {
      // Garbage on the latched port, between media packets.
      for (let k = 0; k < 5; k++) await tx.send(Buffer.from([0x55, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]), port);
      const stun = Buffer.alloc(20);
      stun.writeUInt16BE(0x0001, 0);
      stun.writeUInt32BE(0x2112a442, 4);
      for (let k = 0; k < 2; k++) await tx.send(stun, port);
      const rr = Buffer.from([0x80, 201, 0, 1, 0, 0, 0, 1]);
      for (let k = 0; k < 2; k++) await tx.send(rr, port);
      for (let k = 0; k < 3; k++) await tx.send(rtpPacket(8, 9, 9, ssrc, payloadFor(9, 160)), port);
      rtpSent += 3;
      const v3 = pkt(7);
      v3[0] = 0xc0;
      for (let k = 0; k < 2; k++) await tx.send(v3, port);
    }
    if (sent % 20 === 0) await sleep(2);
  }
  // Until the session has counted every datagram sent: the unique packets, the duplicates and the 17 drops.
  const st = await statsWhen(s.id, (x) => x.fastPath + x.slowPath >= N - lostIdx.size + dupIdx.size + 4 && dropped(x) >= 17);
  t.equal(st.slowPath, 1, 'one slow-path query: the first packet of the flow');
  t.equal(st.fastPath, N - lostIdx.size + dupIdx.size + 3, 'every later packet of the flow on the fast path (incl. duplicates and wrong PT)');
  t.same(st.drops, { garbage: 5, stun: 2, rtcp: 2, 'payload-type': 3, version: 2, duplicate: 3 }, 'drops by reason');
  const del = await server.api('DELETE', `/v1/sessions/${s.id}`);
  t.equal(del.status, 200, del.text);
  const rec = del.body.recording;
  t.equal(rec.name, 'impaired');
  const tr = rec.tracks[0];
  t.match(tr, {
    index: 0,
    kind: 'audio',
    codec: 'PCMU',
    file: 'track0.wav',
    packets: N - lostIdx.size,
    lost: lostIdx.size,
    duplicates: dupIdx.size,
    reordered: swaps.size,
  });
  t.ok(Math.abs(rec.durationMs - (N - 1) * 20) <= 20, `duration ${rec.durationMs} ms`);
  // The rtpdump holds the unique packets in sequence order, byte for byte.
  const dir = path.join(server.dir, 'recordings', 'impaired');
  const dump = readRtpdumpRef(await readFile(path.join(dir, 'track0.rtpdump')));
  t.equal(dump.truncated, false);
  const rtp = dump.records.filter((r) => !r.rtcp);
  const want = [...Array(N).keys()].filter((i) => !lostIdx.has(i));
  t.equal(rtp.length, want.length, 'one record per unique packet');
  t.ok(
    rtp.every((r, k) => Buffer.from(r.data).equals(pkt(want[k]!))),
    'records equal the packets sent, in sequence order',
  );
  t.ok(
    rtp.every((r, k) => k === 0 || r.offsetMs >= rtp[k - 1]!.offsetMs - 200),
    'arrival offsets recorded',
  );
  // Arrival offsets are stamped when the worker reads a packet (1 ms resolution): across the pause they must differ by it.
  const before = Math.max(...rtp.filter((_, k) => want[k]! < 200).map((r) => r.offsetMs));
  const after = Math.min(...rtp.filter((_, k) => want[k]! >= 200).map((r) => r.offsetMs));
  t.ok(after - before >= Math.floor(pauseMs) - 1, `arrival offsets differ by the ${pauseMs.toFixed(0)} ms pause in sending (${after - before} ms)`);
  t.ok(after - before < pauseMs + 250, 'and by not much more');
  // The WAV holds the payloads with silence where packets were lost.
  const pcm = await readAll(path.join(dir, 'track0.wav'));
  const expected = Buffer.concat([...Array(N).keys()].map((i) => (lostIdx.has(i) ? Buffer.alloc(160, 0xff) : payloadFor(seq0 + i, 160))));
  t.equal(pcm.length, expected.length, 'WAV length covers the lost packets');
  t.ok(pcm.equals(expected), 'WAV content: payloads in order, mu-law silence at the gaps');
  // Served back over HTTP with the right types.
  const wav = await fetch(`${server.url}/v1/recordings/impaired/tracks/0`);
  t.equal(wav.headers.get('content-type'), 'audio/wav');
  t.equal(Buffer.from(await wav.arrayBuffer()).length, (await readFile(path.join(dir, 'track0.wav'))).length);
  const rd = await fetch(`${server.url}/v1/recordings/impaired/tracks/0/rtpdump`);
  t.equal(rd.status, 200);
  t.ok(
    Buffer.from(await rd.arrayBuffer())
      .subarray(0, 13)
      .toString() === '#!rtpplay1.0 ',
    'rtpdump served',
  );
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  t.match(metrics, /^offcast_channel_payload_bytes_total 0$/m, 'no payload byte crossed into the control plane');
  t.match(metrics, /offcast_record_flow_decisions_total\{reason="ok"\} 1/);
  t.match(metrics, /^offcast_record_drops_total\{reason="garbage"\} 5$/m, 'drops by reason in /metrics');
  t.match(metrics, new RegExp(`^offcast_record_packets_total ${N - lostIdx.size}$`, 'm'), 'recorded packets in /metrics');
  t.match(metrics, /^offcast_record_slow_path_total 1$/m);
});

t.test('a spoofed flow never takes over a latched track', async (t) => {
  const s = await createPcmu('spoofed');
  const port: number = s.tracks[0].port;
  const a = await TestSender.open();
  const b = await TestSender.open();
  t.teardown(() => {
    a.close();
    b.close();
  });
  for (let i = 0; i < 10; i++) await a.send(rtpPacket(0, i, i * 160, 111, payloadFor(i, 160)), port);
  await statsWhen(s.id, (x) => x.packets >= 10); // latched
  // Another port, with the latched SSRC and with its own; and the latched port's SSRC changed.
  for (let i = 10; i < 20; i++) await b.send(rtpPacket(0, i, i * 160, 111, payloadFor(1000 + i, 160)), port);
  for (let i = 10; i < 20; i++) await b.send(rtpPacket(0, i, i * 160, 222, payloadFor(2000 + i, 160)), port);
  for (let i = 10; i < 20; i++) await a.send(rtpPacket(0, i, i * 160, 333, payloadFor(3000 + i, 160)), port);
  for (let i = 10; i < 20; i++) await a.send(rtpPacket(0, i, i * 160, 111, payloadFor(i, 160)), port);
  const st = await statsWhen(s.id, (x) => x.packets >= 20 && (x.drops.denied ?? 0) >= 30);
  t.equal(st.drops.denied, 30, 'the 30 spoofed packets are dropped and counted');
  t.equal(st.slowPath, 1, 'spoofs cost no slow-path query');
  const del = await server.api('DELETE', `/v1/sessions/${s.id}`);
  t.equal(del.body.recording.tracks[0].packets, 20, 'only the real sender is recorded');
  const dump = readRtpdumpRef(await readFile(path.join(server.dir, 'recordings', 'spoofed', 'track0.rtpdump')));
  const rtp = dump.records.filter((r) => !r.rtcp);
  t.ok(
    rtp.every((r, i) => Buffer.from(r.data).subarray(12).equals(payloadFor(i, 160))),
    'the recording is the real sender’s payloads',
  );
});

t.test('the source policy: an unexpected sender is rejected on the slow path, never recorded', async (t) => {
  const s = await createPcmu('policy', { source: { host: '127.0.0.2' } });
  const port: number = s.tracks[0].port;
  const wrong = await TestSender.open('127.0.0.1');
  const right = await TestSender.open('127.0.0.2');
  t.teardown(() => {
    wrong.close();
    right.close();
  });
  for (let i = 0; i < 5; i++) await wrong.send(rtpPacket(0, i, i * 160, 5, payloadFor(i, 160)), port);
  let st = await statsWhen(s.id, (x) => dropped(x) >= 5);
  t.equal(st.packets, 0, 'nothing recorded from the wrong source');
  t.ok(st.drops.rejected >= 1, 'held packets of the rejected flow dropped as rejected');
  t.equal((st.drops.rejected ?? 0) + (st.drops.denied ?? 0) + (st.drops['rate-limited'] ?? 0), 5, 'all five dropped and counted');
  for (let i = 0; i < 5; i++) await right.send(rtpPacket(0, 100 + i, i * 160, 6, payloadFor(i, 160)), port);
  st = await statsWhen(s.id, (x) => x.packets >= 5);
  t.equal(st.packets, 5, 'the named source is recorded');
  await server.api('DELETE', `/v1/sessions/${s.id}`);
  const bad = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'far',
    source: { host: '10.1.2.3' },
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(bad.status, 403, 'a source outside sources.allow is refused');
});

t.test('a session from the sender’s SDP, and one that stops by itself when idle', async (t) => {
  const idle = await startServer({ 'record.idleTimeoutMs': 600 });
  t.teardown(() => idle.stop());
  const sdp = [
    'v=0',
    'o=- 0 0 IN IP4 127.0.0.1',
    's=No Name',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    'm=audio 5002 RTP/AVP 0',
    'm=video 5004 RTP/AVP 96',
    'a=rtpmap:96 H264/90000',
    'a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0IAHpWoKA9k,aM48gA==; profile-level-id=42001E',
    '',
  ].join('\r\n');
  const res = await fetch(`${idle.url}/v1/sessions?name=fromsdp`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
  const body = (await res.json()) as ApiBody;
  t.equal(res.status, 201, JSON.stringify(body));
  t.equal(body.tracks.length, 2);
  t.match(body.tracks[0], { kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 });
  t.match(body.tracks[1], { kind: 'video', codec: 'H264', payloadType: 96, clockRate: 90000 });
  t.not(body.tracks[0].port, 5002, 'the SDP’s ports are ignored');
  const noName = await fetch(`${idle.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
  t.equal(noName.status, 400);
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  for (let i = 0; i < 20; i++) await tx.send(rtpPacket(0, i, i * 160, 9, payloadFor(i, 160)), body.tracks[0].port);
  let view!: ApiBody;
  for (let k = 0; k < 50; k++) {
    await sleep(100);
    view = (await idle.api('GET', `/v1/sessions/${body.id}`)).body;
    if (view.state === 'ended') break;
  }
  t.equal(view.state, 'ended', `ended by itself after record.idleTimeoutMs without media: ${JSON.stringify(view)}`);
  t.equal(view.reason, 'idle');
  t.equal(view.recording.tracks[0].packets, 20);
  const m = await idle.api('GET', '/v1/recordings/fromsdp');
  t.equal(m.body.state, 'finished');
  const list = await idle.api('GET', '/v1/recordings');
  t.same(
    list.body.recordings.map((r) => r.name),
    ['fromsdp'],
  );
  const del = await idle.api('DELETE', `/v1/sessions/${body.id}`);
  t.equal(del.status, 200, 'DELETE of an ended record session returns its recording');
  t.equal(del.body.recording.name, 'fromsdp');
});

t.test('a finished recording is media: a play session replays it with its timing', async (t) => {
  const s = await createPcmu('replayed');
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  for (let i = 0; i < 50; i++) {
    await tx.send(rtpPacket(0, 500 + i, 1000 + i * 160, 77, payloadFor(i, 160)), s.tracks[0].port);
    await sleep(20);
  }
  // Until the worker has recorded all 50 (readiness, not a fixed sleep).
  await recordStats(s.id, (b) => b.tracks[0].stats.packets >= 50);
  await server.api('DELETE', `/v1/sessions/${s.id}`);
  const media = await server.api('GET', '/v1/media/replayed');
  t.equal(media.status, 200, media.text);
  t.equal(media.body.format, 'recording');
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const play = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'replayed', destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(play.status, 201, play.text);
  t.equal(play.body.tracks[0].codec, 'PCMU');
  await sink.waitFor(50, 5000);
  t.ok(
    sink.packets.every((p, i) => p.payload.equals(payloadFor(i, 160))),
    'the replay carries the recorded payloads in order',
  );
  const span = sink.packets[49]!.at - sink.packets[0]!.at;
  t.ok(span > 800 && span < 1600, `with the original pacing (${span.toFixed(0)} ms for 49 × 20 ms)`);
  const dup = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'replayed',
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(dup.status, 409, 'a recording name is taken once');
  const delRunning = await server.api('DELETE', '/v1/recordings/replayed');
  t.equal(delRunning.status, 204);
  t.equal((await server.api('GET', '/v1/recordings/replayed')).status, 404);
});

t.test('live fan-out: two subscribers get the feed as it arrives, each with its own SSRC and sequence', async (t) => {
  const s = await createPcmu('livefeed');
  const subs = [await RtpSink.open(), await RtpSink.open()];
  t.teardown(() => subs.forEach((x) => x.close()));
  const views: ApiBody[] = [];
  for (const sink of subs) {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', live: s.id, destination: { host: '127.0.0.1', port: sink.port } });
    t.equal(res.status, 201, res.text);
    views.push(res.body);
  }
  t.not(views[0].tracks[0].ssrc, views[1].tracks[0].ssrc, 'each subscriber has its own SSRC');
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  const sentAt: number[] = [];
  for (let i = 0; i < 30; i++) {
    sentAt.push(performance.now());
    await tx.send(rtpPacket(0, 7000 + i, i * 160, 42, payloadFor(i, 160)), s.tracks[0].port);
    await sleep(10);
  }
  for (const sink of subs) await sink.waitFor(30, 3000);
  for (const [k, sink] of subs.entries()) {
    const p = sink.packets;
    t.equal(p.length, 30, `subscriber ${k} got every packet`);
    t.ok(
      p.every((x) => x.ssrc === views[k].tracks[0].ssrc),
      'with its SSRC',
    );
    t.ok(
      p.every((x, i) => i === 0 || x.seq === ((p[i - 1]!.seq + 1) & 0xffff)),
      'and its own continuous sequence numbers',
    );
    t.ok(
      p.every((x, i) => i === 0 || (x.ts - p[i - 1]!.ts) >>> 0 === 160),
      'timestamps keep their spacing',
    );
    t.ok(
      p.every((x, i) => x.payload.equals(payloadFor(i, 160))),
      'payloads as sent',
    );
    const delay = Math.max(...p.map((x, i) => x.at - sentAt[i]!));
    t.ok(delay < 200, `in real time (worst delay ${delay.toFixed(1)} ms)`);
  }
  const del = await server.api('DELETE', `/v1/sessions/${s.id}`);
  t.equal(del.status, 200);
  await waitFor(async () => (await server.api('GET', `/v1/sessions/${views[0].id}`)).body.state === 'ended', 5000);
  const after = await server.api('GET', `/v1/sessions/${views[0].id}`);
  t.equal(after.body.state, 'ended', 'subscribers end with their recording');
});

t.test('live fan-out to an IPv6 destination', async (t) => {
  const s = await createPcmu('livefeed6');
  const sink = await RtpSink.open(6);
  t.teardown(() => sink.close());
  const res = await server.api('POST', '/v1/sessions', { mode: 'play', live: s.id, destination: { host: '::1', port: sink.port } });
  t.equal(res.status, 201, res.text);
  t.match(res.body.sdp, /c=IN IP6 ::1/, 'the SDP names the IPv6 destination');
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  for (let i = 0; i < 10; i++) {
    await tx.send(rtpPacket(0, 100 + i, i * 160, 43, payloadFor(i, 160)), s.tracks[0].port);
    await sleep(5);
  }
  await sink.waitFor(10, 3000);
  t.equal(sink.packets.length, 10, 'every packet arrived over IPv6');
  t.ok(
    sink.packets.every((x, i) => x.payload.equals(payloadFor(i, 160)) && x.ssrc === res.body.tracks[0].ssrc),
    'as sent, with the subscriber’s SSRC',
  );
  // A receiver report from the destination's RTCP port counts; one from another port does not.
  const sr = await sink.waitForRtcp(3000);
  t.ok(sr, 'a sender report reached the IPv6 destination');
  const rr = receiverReport(res.body.tracks[0].ssrc);
  const other = (await import('node:dgram')).createSocket('udp6');
  t.teardown(() => other.close());
  await new Promise<void>((r) => other.bind(0, '::1', () => r()));
  await new Promise<void>((r) => other.send(rr, res.body.tracks[0].sourcePort + 1, '::1', () => r()));
  await sink.sendRtcp(rr, res.body.tracks[0].sourcePort + 1, '::1');
  let stats!: ApiTrackStats;
  for (let i = 0; i < 50; i++) {
    stats = (await server.api('GET', `/v1/sessions/${res.body.id}`)).body.tracks[0].stats;
    if (stats.receiverReports > 0 && stats.rtcpRejected > 0) break;
    await sleep(20);
  }
  t.equal(stats.receiverReports, 1, 'the destination’s report is read');
  t.equal(stats.rtcpRejected, 1, 'the other port’s is not');
  t.equal((await server.api('DELETE', `/v1/sessions/${s.id}`)).status, 200);
});

/** An RTCP BYE for `ssrc` (rtp.js). */
function byePacket(ssrc: number): Uint8Array {
  const bye = new packets.ByePacket();
  bye.addSsrc(ssrc);
  const buf = new ArrayBuffer(bye.getByteLength());
  bye.serialize(buf, 0);
  return new Uint8Array(buf);
}

async function recordStats(id: string, until: (s: ApiBody) => boolean): Promise<ApiBody> {
  let body!: ApiBody;
  for (let i = 0; i < 150; i++) {
    body = (await server.api('GET', `/v1/sessions/${id}`)).body;
    if (until(body)) break;
    await sleep(20);
  }
  return body;
}

for (const rtcpMux of [false, true]) {
  t.test(`a spoofed RTCP BYE ends nothing; only the latched sender's RTCP port counts${rtcpMux ? ' (rtcpMux)' : ''}`, async (t) => {
    const s = await createPcmu(`byespoof${rtcpMux ? 'mux' : ''}`, { rtcpMux });
    const port = s.tracks[0].port;
    // The sender: RTP from an even port, RTCP from the next one.
    const sender = await RtpSink.open();
    t.teardown(() => sender.close());
    const ssrc = 0x5eed;
    let seq = 1000;
    const sendRtp = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++, seq++) await sender.sendFromRtp(rtpPacket(0, seq, seq * 160, ssrc, payloadFor(seq, 160)), port);
    };
    await sendRtp(5);
    let body = await recordStats(s.id, (b) => b.tracks[0].stats.packets >= 5);
    t.equal(body.tracks[0].stats.packets, 5, 'the sender is latched and recorded');
    // Spoofs with the sender's SSRC from the sender's host: another port, and its RTP port to our RTCP port.
    const forger = await TestSender.open();
    t.teardown(() => forger.close());
    await forger.send(byePacket(ssrc), port + 1);
    await forger.send(byePacket(ssrc), rtcpMux ? port : port + 1);
    if (!rtcpMux) await sender.sendFromRtp(byePacket(ssrc), port + 1);
    const spoofs = rtcpMux ? 2 : 3;
    body = await recordStats(s.id, (b) => (b.tracks[0].stats.drops['rtcp-unknown-source'] ?? 0) >= spoofs);
    t.equal(body.tracks[0].stats.drops['rtcp-unknown-source'], spoofs, 'every spoof is dropped and counted');
    // Several record ticks later the recording still runs and takes packets.
    await sleep(200);
    await sendRtp(5);
    body = await recordStats(s.id, (b) => b.tracks[0].stats.packets >= 10);
    t.equal(body.state, 'recording', 'the recording goes on');
    t.equal(body.tracks[0].stats.packets, 10, 'and records');
    // The sender's own BYE ends it: from its RTCP port, or muxed from its RTP port to ours.
    if (rtcpMux) await sender.sendFromRtp(byePacket(ssrc), port);
    else await sender.sendRtcp(byePacket(ssrc), port + 1);
    body = await recordStats(s.id, (b) => b.state === 'ended');
    t.equal(body.state, 'ended', 'the real BYE ends it');
    t.equal(body.reason, 'bye');
  });
}

t.test('H.264 without sprop-parameter-sets: in-band SPS/PPS are written, and a file without any says it is unplayable', async (t) => {
  const sps = Buffer.from('Z0IAHpWoKA9k', 'base64');
  const pps = Buffer.from('aM48gA==', 'base64');
  const idr = Buffer.concat([Buffer.from([0x65]), Buffer.alloc(300, 7)]);
  const p1 = Buffer.concat([Buffer.from([0x41]), Buffer.alloc(100, 9)]);
  const stapA = Buffer.concat([Buffer.from([0x78]), Buffer.from([0, sps.length]), sps, Buffer.from([0, pps.length]), pps]);
  const sc = Buffer.from([0, 0, 0, 1]);
  const cases = [
    // SPS/PPS in their own access unit (marker set) ahead of the keyframe, as some encoders send them.
    { name: 'h264inband', payloads: [stapA, idr, p1], expected: Buffer.concat([sc, sps, sc, pps, sc, idr, sc, p1]), playable: true },
    { name: 'h264nosets', payloads: [idr, p1], expected: Buffer.concat([sc, idr, sc, p1]), playable: false },
  ];
  for (const c of cases) {
    const res = await server.api('POST', '/v1/sessions', {
      mode: 'record',
      name: c.name,
      tracks: [{ kind: 'video', codec: 'H264', payloadType: 96, clockRate: 90000, fmtp: 'packetization-mode=1' }],
    });
    t.equal(res.status, 201, res.text);
    const tx = await TestSender.open();
    for (const [i, p] of c.payloads.entries()) await tx.send(rtpPacket(96, 500 + i, 3000 * (i + 1), 77, p, true), res.body.tracks[0].port);
    await recordStats(res.body.id, (b) => b.tracks[0].stats.packets >= c.payloads.length);
    tx.close();
    const del = await server.api('DELETE', `/v1/sessions/${res.body.id}`);
    t.equal(del.status, 200, del.text);
    const summary = del.body.recording.tracks[0];
    const manifest = (await server.api('GET', `/v1/recordings/${c.name}`)).body.tracks[0];
    const file = await readFile(path.join(server.dir, 'recordings', c.name, 'track0.h264'));
    t.ok(file.equals(c.expected), `${c.name}: the file holds ${c.playable ? 'the in-band SPS/PPS, then' : 'only'} the frames`);
    t.equal(summary.playable, c.playable, `${c.name}: summary playable ${c.playable}`);
    t.equal(manifest.playable, c.playable, `${c.name}: manifest playable ${c.playable}`);
    if (c.playable) t.equal(summary.unplayableReason, undefined);
    else {
      t.match(summary.unplayableReason, /no SPS\/PPS/, 'the summary says why');
      t.match(manifest.unplayableReason, /no SPS\/PPS/, 'so does the manifest');
    }
  }
});

t.test('a recording ended on request is reported once: by the record.end answer, with no record.ended', async (t) => {
  const s = await createPcmu('endonce');
  const notified: string[] = [];
  const onEnded = (_worker: number, data: { sessionId: string }): void => {
    notified.push(data.sessionId);
  };
  server.offload.on('record.ended', onEnded);
  t.teardown(() => server.offload.off('record.ended', onEnded));
  const del = await server.api('DELETE', `/v1/sessions/${s.id}`);
  t.equal(del.status, 200, del.text);
  t.equal(del.body.recording.name, 'endonce', 'the answer carries the summary');
  // The worker sends a notification ahead of its answer on one ordered port: had there been one, it is here.
  await server.offload.request(0, 'worker.stats', {});
  t.same(notified, [], 'no record.ended for it');
});
