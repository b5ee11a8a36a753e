// ffmpeg as the sender of record sessions: it pushes H.264 (with B-frames) and
// Opus from an MP4 with `-f rtp`; the recording must decode to the source's
// frames and hold the source's Opus packets, count exactly what ffmpeg sent,
// and play back identically through a play session.
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sdpTransform from 'sdp-transform';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG, parseFrameMd5, requireSetup, startFfmpeg } from '../helpers/ffmpeg.js';
import { createPaused, freePortBlock, waitState } from '../helpers/play.js';
import { waitUdpBound, waitUntil } from '../helpers/ready.js';
import { readRtpdumpRef } from '../helpers/rtpdump-ref.js';
import {
  audioPackets,
  commonPrefix,
  decodedFrames,
  downloadTrack,
  hasBye,
  makeRecordSource,
  push,
  reference,
  senderReports,
  senderSdp,
  UdpTap,
  type Reference,
} from '../helpers/record.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  let src: string;
  let ref: Reference;

  t.before(async () => {
    server = await startServer({ 'record.idleTimeoutMs': 10000 });
    src = path.join(server.dir, 'src.mp4');
    await makeRecordSource(src, 4);
    ref = await reference(src);
    // The clip and ffmpeg's SDP for it (not product tests): distinct frames and packets, the payload types used below.
    requireSetup(ref.frames.length === 100, `the source has ${ref.frames.length} frames, wanted 100 (4 s at 25 fps)`);
    requireSetup(new Set(ref.frames).size === ref.frames.length, 'the source has repeated frames');
    requireSetup(
      ref.opus.length >= 200 && new Set(ref.opus).size === ref.opus.length,
      `the source has ${ref.opus.length} Opus packets, wanted >= 200 distinct`,
    );
    const sdp = await senderSdp(src, server.dir);
    requireSetup(
      /^m=video \d+ RTP\/AVP 96$/m.test(sdp) && /^a=fmtp:96 .*sprop-parameter-sets=/m.test(sdp) && /^m=audio \d+ RTP\/AVP 97$/m.test(sdp),
      `ffmpeg's SDP is not H.264 96 with sprop + Opus 97: ${sdp}`,
    );
  });
  t.teardown(() => server.stop());

  /** What each recording holds (set by the test that records it): its frames and Opus packets, as counted from what ffmpeg sent. */
  const recorded = new Map<string, { frames: number; opus: number }>();

  /** Access units in an H.264 RTP stream: the packets carrying the marker bit (the last of each AU). */
  const markers = (packets: readonly Uint8Array[]): number => packets.filter((p) => (p[1]! & 0x80) !== 0).length;

  /** The recorded video decodes to the source's frames (a prefix: nearly all); the Opus packets are the source's. */
  async function checkRecording(t: Test, name: string, sent: { frames: number; opus: number }): Promise<void> {
    recorded.set(name, sent);
    // ffmpeg's RTP muxer may leave out the clip's last few frames; what it sent, counted from its packets, is what must be there.
    t.ok(sent.frames <= ref.frames.length && sent.frames >= ref.frames.length - 3, `ffmpeg sent ${sent.frames} of the clip's ${ref.frames.length} frames`);
    t.ok(sent.opus <= ref.opus.length && sent.opus >= ref.opus.length - 3, `and ${sent.opus} of its ${ref.opus.length} Opus packets`);
    const h264 = path.join(server.dir, `${name}.h264`);
    const ogg = path.join(server.dir, `${name}.ogg`);
    t.equal(await downloadTrack(server, name, 0, h264), 'video/h264', 'track 0 is served as H.264 (Annex B)');
    t.equal(await downloadTrack(server, name, 1, ogg), 'audio/ogg', 'track 1 is served as Ogg Opus');
    const v = await decodedFrames(['-f', 'h264', '-i', h264]);
    t.equal(v.stderr.trim(), '', 'the recorded H.264 decodes without a single error');
    t.equal(v.hashes.length, sent.frames, `${v.hashes.length} of the ${sent.frames} frames sent recorded`);
    t.equal(commonPrefix(v.hashes, ref.frames), v.hashes.length, 'every decoded frame equals the source’s, in order');
    const a = await audioPackets(ogg);
    t.equal(a.hashes.length, sent.opus, `${a.hashes.length} of the ${sent.opus} Opus packets sent recorded`);
    t.equal(commonPrefix(a.hashes, ref.opus), a.hashes.length, 'every Opus packet equals the source’s, in order');
    t.same(a.sizes, ref.opusSizes.slice(0, a.sizes.length), 'packet sizes equal');
  }

  t.test('a session from ffmpeg’s -sdp_file records exactly what ffmpeg sent, and ends with its BYE', async (t) => {
    const sdp = await senderSdp(src, server.dir);
    const res = await fetch(`${server.url}/v1/sessions?name=fromsdp`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
    const s = (await res.json()) as ApiBody;
    t.equal(res.status, 201, JSON.stringify(s));
    t.match(s.tracks[0], { kind: 'video', codec: 'H264', payloadType: 96, clockRate: 90000 });
    t.match(s.tracks[0].fmtp, /sprop-parameter-sets=/, 'the parameter sets are kept');
    t.match(s.tracks[1], { kind: 'audio', codec: 'opus', payloadType: 97, clockRate: 48000, channels: 1 });
    const sender = push(src, { videoPort: s.tracks[0].port, audioPort: s.tracks[1].port, bye: true }, 30000);
    t.teardown(() => sender.stop());
    const sent = await sender.done;
    t.equal(sent.code, 0, 'ffmpeg sent the whole clip');
    t.equal(sent.stderr.trim(), '', 'and reported no errors');
    // -rtpflags send_bye: an SR + BYE on every track; the session ends by itself. Polled closely: a view
    // that says "ended" must say why and carry the recording (the offload's state must not run ahead of it).
    const early: string[] = [];
    let view!: ApiBody;
    for (const end = Date.now() + 10000; Date.now() < end; await new Promise((r) => setTimeout(r, 2))) {
      view = (await server.api('GET', `/v1/sessions/${s.id}`)).body;
      if (view?.state !== 'ended') continue;
      if (view.recording === undefined) early.push(JSON.stringify({ state: view.state, reason: view.reason }));
      else break;
    }
    t.same(early, [], 'no view says "ended" before it has the reason and the recording');
    t.equal(view?.reason, 'bye', 'ended by the sender’s BYEs');
    const rec = await waitState(server, s.id, 'ended', 10000).then((v) => v.recording);
    t.equal(rec.state, 'finished');
    for (const k of [0, 1]) {
      const dump = readRtpdumpRef(await readFile(path.join(server.dir, 'recordings', 'fromsdp', rec.tracks[k].rtpdump)));
      const rtcp = dump.records.filter((r) => r.rtcp);
      const last = rtcp[rtcp.length - 1];
      t.ok(last !== undefined && hasBye(last.data), `track ${k}: the sender’s BYE is in the rtpdump`);
      const sr = last === undefined ? [] : senderReports(last.data);
      t.equal(sr.length, 1, `track ${k}: with its final sender report`);
      const rtp = dump.records.filter((r) => !r.rtcp);
      t.match(
        rec.tracks[k],
        { packets: sr[0]?.packets, lost: 0, duplicates: 0, reordered: 0, late: 0 },
        `track ${k}: ${rec.tracks[k].packets} packets recorded, as many as ffmpeg's final report counts, none lost`,
      );
      t.equal(rtp.length, rec.tracks[k].packets, `track ${k}: one rtpdump record per packet`);
      t.equal(
        rtp.reduce((n, r) => n + r.data.length - 12, 0),
        sr[0]?.octets,
        `track ${k}: payload octets equal the sender’s count`,
      );
    }
    // The final SR's packet count (checked equal to the rtpdump's above) says how many packets ffmpeg sent.
    const dumps = await Promise.all(
      [0, 1].map(async (k) => readRtpdumpRef(await readFile(path.join(server.dir, 'recordings', 'fromsdp', rec.tracks[k].rtpdump)))),
    );
    const videoRtp = dumps[0]!.records.filter((r) => !r.rtcp).map((r) => r.data);
    await checkRecording(t, 'fromsdp', { frames: markers(videoRtp), opus: rec.tracks[1].packets });
    const del = await server.api('DELETE', `/v1/sessions/${s.id}`);
    t.equal(del.status, 200, del.text);
  });

  t.test('a session from a JSON body with ffmpeg’s payload types and fmtp: every packet recorded byte for byte', async (t) => {
    const sdp = sdpTransform.parse(await senderSdp(src, server.dir));
    const tracks = sdp.media.map((m) => {
      const pt = Number(String(m.payloads).split(' ')[0]);
      const map = m.rtp.find((r) => r.payload === pt)!;
      const fmtp = (m.fmtp ?? []).find((f) => f.payload === pt)?.config;
      const tr: Record<string, unknown> = { kind: m.type, codec: map.codec, payloadType: pt, clockRate: map.rate };
      if (map.codec === 'opus') tr.channels = 1;
      if (fmtp !== undefined) tr.fmtp = fmtp;
      return tr;
    });
    const res = await server.api('POST', '/v1/sessions', { mode: 'record', name: 'fromjson', tracks });
    t.equal(res.status, 201, res.text);
    const s = res.body;
    // A tap between ffmpeg and the session: it sees (and forwards at once) every datagram ffmpeg sends.
    const tap = await UdpTap.open([s.tracks[0].port, s.tracks[1].port]);
    t.teardown(() => tap.close());
    const sender = push(src, { videoPort: tap.port, audioPort: tap.port + 2 }, 30000);
    t.teardown(() => sender.stop());
    const sent = await sender.done;
    t.equal(sent.code, 0, 'ffmpeg sent the whole clip');
    t.equal(sent.stderr.trim(), '', 'and reported no errors');
    // Until the session has taken in every RTP packet the tap forwarded (or the time is up: the checks below say what's missing).
    let live = await server.api('GET', `/v1/sessions/${s.id}`);
    await waitUntil(
      async () => {
        live = await server.api('GET', `/v1/sessions/${s.id}`);
        return [0, 1].every((k) => live.body.tracks[k].stats.packets >= tap.rtp(k).length);
      },
      10000,
      'the session to count every packet ffmpeg sent',
    ).catch(() => undefined);
    const del = await server.api('DELETE', `/v1/sessions/${s.id}`);
    t.equal(del.status, 200, del.text);
    const rec = del.body.recording;
    for (const k of [0, 1]) {
      const want = tap.rtp(k);
      t.ok(want.length > 100, `track ${k}: ffmpeg sent ${want.length} RTP packets`);
      t.match(rec.tracks[k], { packets: want.length, lost: 0, duplicates: 0, reordered: 0, late: 0 }, `track ${k}: all recorded, none lost`);
      t.match(
        live.body.tracks[k].stats,
        { packets: want.length, slowPath: 1, fastPath: want.length },
        `track ${k}: one slow-path query, the rest on the fast path`,
      );
      t.same(live.body.tracks[k].stats.drops, {}, `track ${k}: nothing ffmpeg sent was dropped`);
      const dump = readRtpdumpRef(await readFile(path.join(server.dir, 'recordings', 'fromjson', rec.tracks[k].rtpdump)));
      const got = dump.records.filter((r) => !r.rtcp);
      const bytes = tap.seen.filter((x) => x.socket === 2 * k).map((x) => x.msg);
      t.equal(got.length, bytes.length, `track ${k}: one rtpdump record per datagram`);
      t.ok(
        got.every((r, i) => bytes[i] !== undefined && Buffer.from(r.data).equals(bytes[i]!)),
        `track ${k}: the rtpdump holds ffmpeg’s packets byte for byte, in order`,
      );
      // ffmpeg sends its first SR just before its first RTP packet (rtpenc.c), then one every 5 s at most:
      // in a 4 s clip, that first SR is the only mapping of the track's RTP clock to the sender's wall clock.
      const rtcpSent = tap.seen.filter((x) => x.socket === 2 * k + 1).map((x) => x.msg.toString('hex'));
      t.equal(senderReports(Buffer.from(rtcpSent[0] ?? '', 'hex')).length, 1, `track ${k}: ffmpeg sent an SR`);
      t.same(
        dump.records.filter((r) => r.rtcp).map((r) => Buffer.from(r.data).toString('hex')),
        rtcpSent,
        `track ${k}: every RTCP packet ffmpeg sent is kept in the rtpdump (${rtcpSent.length})`,
      );
    }
    await checkRecording(t, 'fromjson', { frames: markers(tap.seen.filter((x) => x.socket === 0).map((x) => x.msg)), opus: tap.rtp(1).length });
  });

  t.test('the recording plays back through a play session: the source’s frames and Opus packets', async (t) => {
    const media = await server.api('GET', '/v1/media/fromsdp');
    t.equal(media.status, 200, media.text);
    t.equal(media.body.format, 'recording');
    const port = await freePortBlock(2);
    const { id, session, sdpPath } = await createPaused(server, { media: 'fromsdp', destination: { host: '127.0.0.1', port } });
    t.match(session.tracks, [
      { kind: 'video', codec: 'H264' },
      { kind: 'audio', codec: 'opus' },
    ]);
    const vOut = path.join(server.dir, 'replay-v.md5');
    const aOut = path.join(server.dir, 'replay-a.md5');
    const ff = startFfmpeg(
      [
        '-protocol_whitelist',
        'file,udp,rtp',
        '-i',
        sdpPath,
        '-map',
        '0:v',
        '-fps_mode',
        'passthrough',
        '-f',
        'framemd5',
        '-y',
        vOut,
        '-map',
        '0:a',
        '-c:a',
        'copy',
        '-f',
        'framemd5',
        '-y',
        aOut,
      ],
      30000,
    );
    t.teardown(() => ff.stop());
    // ffmpeg opens its sockets before the first packet: wait until both tracks' are bound.
    await waitUdpBound([port, port + 2]);
    const play = await server.api('PATCH', `/v1/sessions/${id}`, { state: 'playing' });
    t.equal(play.status, 200, play.text);
    const ended = await waitState(server, id, 'ended', 15000);
    // The session's RTCP BYEs end ffmpeg's input: it writes everything it holds and exits.
    t.ok(await ff.exited(30000), 'the receiving ffmpeg ends on the session’s BYEs');
    const { stderr } = await ff.stop();
    t.equal(ended.tracks[1].stats.packets, recorded.get('fromsdp')?.opus, 'the play session sends every recorded Opus packet');
    t.equal(stderr.trim(), '', 'the receiving ffmpeg reports no errors');
    const frames = parseFrameMd5(await readFile(vOut, 'utf8')).map((f) => f.hash);
    const held = recorded.get('fromsdp') ?? { frames: NaN, opus: NaN };
    t.equal(frames.length, held.frames, `ffmpeg decoded ${frames.length} of the recording's ${held.frames} frames`);
    t.equal(commonPrefix(frames, ref.frames), frames.length, 'every decoded frame equals the source’s, in order');
    const opus = parseFrameMd5(await readFile(aOut, 'utf8'));
    t.equal(opus.length, held.opus, `ffmpeg received ${opus.length} of the recording's ${held.opus} Opus packets`);
    t.equal(
      commonPrefix(
        opus.map((f) => f.hash),
        ref.opus,
      ),
      opus.length,
      'every Opus packet equals the source’s, in order',
    );
  });
}
