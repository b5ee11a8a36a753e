// Video play sessions end to end on loopback: an MP4 with H.264 B-frames and
// AAC, made with ffmpeg at test time, played to our own receivers and checked
// frame by frame against the source's packets (content, timestamps, markers,
// parameter sets, pacing, seek, loop, start position, frame rate).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { packets as rtcp } from 'rtp.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG } from '../helpers/ffmpeg.js';
import { extendSeq, parseRtcp, type ReceivedRtp } from '../helpers/rtp.js';
import { waitState } from '../helpers/play.js';
import { udpQueued, waitUntil } from '../helpers/ready.js';
import {
  NAL,
  ThreadedSinks,
  TrackSinks,
  aacAus,
  avccHash,
  h264Frames,
  makeAnnexBWithoutTiming,
  makeMp4,
  md5,
  payloadNals,
  rescale,
  sourcePackets,
  type H264Frame,
  type SourcePacket,
  type SourceStream,
} from '../helpers/video.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

/**
 * A session that ended has sent every packet (it ends once its tracks are done),
 * and on loopback a datagram is queued at the receiver when sent: once the sinks'
 * sockets hold nothing, every packet has been read.
 */
async function drained(sinks: TrackSinks): Promise<void> {
  const ports = Array.from({ length: 2 * sinks.rtp.length }, (_, k) => sinks.base + k);
  await waitUntil(() => udpQueued(ports) === 0, 10000, `the sinks on ${sinks.base}.. to read everything`);
}

const AAC_FRAME = 1024;
const AUDIO_RATE = 48000;

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let main: TestServer; // defaults: rtp.payloadBytes 1200, pacing.spread 0.8
  let small: TestServer; // rtp.payloadBytes 500
  let burst: TestServer; // pacing.spread 0
  let clip: Buffer;
  let video: SourceStream;
  let audio: SourceStream;
  /** Source video packets by content, audio packets by content. */
  let videoByHash: Map<string, SourcePacket>;
  let audioByHash: Map<string, SourcePacket>;

  t.before(async () => {
    [main, small, burst] = await Promise.all([
      startServer({ 'rtp.rtcpIntervalMs': 1000 }),
      startServer({ 'rtp.payloadBytes': 500 }),
      startServer({ 'pacing.spread': 0 }),
    ]);
    // 4 s, 640x360 with noise: keyframes of 120+ KB (100+ packets of 1200 bytes) every second, 2 B-frames.
    const file = path.join(main.dir, 'av.mp4');
    await makeMp4(file, { seconds: 4, size: '640x360', noise: 12, crf: 16, gop: 25, bframes: 2 });
    clip = await readFile(file);
    [video, audio] = await Promise.all([sourcePackets(file, 'v'), sourcePackets(file, 'a')]);
    videoByHash = new Map(video.packets.map((p) => [p.hash, p]));
    audioByHash = new Map(audio.packets.map((p) => [p.hash, p]));
    if (videoByHash.size !== video.packets.length || audioByHash.size !== audio.packets.length)
      throw new Error('source packets are not unique: cannot match by content');
    for (const s of [main, small, burst]) {
      const put = await s.api('PUT', '/v1/media/av.mp4', clip);
      if (put.status !== 201) throw new Error(`upload failed: ${put.text}`);
    }
  });
  t.teardown(() => Promise.all([main, small, burst].map((s) => s?.stop())));

  /** Seconds (presentation time of the file, edit list applied) of a source packet. */
  const vSec = (p: SourcePacket): number => (p.pts * video.tb.num) / video.tb.den;
  const aSec = (p: SourcePacket): number => (p.pts * audio.tb.num) / audio.tb.den;
  const keyframes = (): SourcePacket[] => video.packets.filter((p) => p.key);

  interface Played {
    session: ApiBody;
    sinks: TrackSinks;
    frames: H264Frame[];
    /** Source packet of each frame (undefined: the frame's content matches none). */
    matched: (SourcePacket | undefined)[];
  }

  async function createSession(server: TestServer, sinks: { base: number }, extra: Record<string, unknown> = {}): Promise<ApiBody> {
    const res = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'av.mp4', destination: { host: '127.0.0.1', port: sinks.base }, ...extra });
    if (res.status !== 201) throw new Error(`create failed ${res.status}: ${res.text}`);
    return res.body;
  }

  function analyse(session: ApiBody, sinks: TrackSinks): Played {
    const frames = h264Frames(sinks.rtp[0]!);
    return { session, sinks, frames, matched: frames.map((f) => videoByHash.get(avccHash(f))) };
  }

  /** Plays the clip to the end and returns what arrived. */
  async function playToEnd(server: TestServer, extra: Record<string, unknown> = {}): Promise<Played> {
    const sinks = await TrackSinks.open(2);
    t.teardown(() => sinks.close());
    const session = await createSession(server, sinks, extra);
    await waitState(server, session.id, 'ended', 20000);
    // Sent before the end, maybe not read yet: until the sinks' sockets hold nothing.
    await drained(sinks);
    return analyse(session, sinks);
  }

  const fullPlays = new Map<TestServer, Promise<Played>>();
  function fullPlay(server: TestServer): Promise<Played> {
    let p = fullPlays.get(server);
    if (p === undefined) fullPlays.set(server, (p = playToEnd(server)));
    return p;
  }

  /** First sender report of a track: its NTP time (ms) and RTP timestamp. */
  function firstSr(msgs: { msg: Buffer }[]): { ntpMs: number; rtp: number } {
    for (const { msg } of msgs) {
      for (const p of parseRtcp(msg)) {
        if (p instanceof rtcp.SenderReportPacket) return { ntpMs: p.getNtpSeconds() * 1000 + (p.getNtpFraction() / 2 ** 32) * 1000, rtp: p.getRtpTimestamp() };
      }
    }
    throw new Error('no sender report');
  }

  /** Wall time (NTP ms) at which an RTP timestamp plays, by a sender report. */
  const ntpOf = (sr: { ntpMs: number; rtp: number }, ts: number, clock: number): number => sr.ntpMs + (((ts - sr.rtp) | 0) * 1000) / clock;

  /** Audio packets with the source AUs they carry. */
  function audioPackets(pkts: ReceivedRtp[]): { p: ReceivedRtp; aus: (SourcePacket | undefined)[] }[] {
    return pkts.map((p) => ({ p, aus: (aacAus(p.payload) ?? []).map((au) => audioByHash.get(md5(au))) }));
  }

  const continuous = (pkts: ReceivedRtp[]): boolean => {
    const ext = extendSeq(pkts.map((p) => p.seq));
    return ext.every((v, i) => i === 0 || v === ext[i - 1]! + 1);
  };

  for (const [label, budget, get] of [
    ['rtp.payloadBytes 1200', 1200, () => main],
    ['rtp.payloadBytes 500', 500, () => small],
  ] as const) {
    t.test(`${label}: budget, markers, content, timestamps, SPS/PPS before IDRs, lip sync`, async (t) => {
      const { session, sinks, frames, matched } = await fullPlay(get());
      const [vt, at] = session.tracks;
      t.match(vt, { kind: 'video', codec: 'H264', clockRate: 90000 });
      t.match(at, { kind: 'audio', codec: 'MPEG4-GENERIC', clockRate: AUDIO_RATE, channels: 1 });
      const vp = sinks.rtp[0]!;
      const ap = sinks.rtp[1]!;

      // (1) Budget.
      const largest = Math.max(...vp.map((p) => p.payload.length), ...ap.map((p) => p.payload.length));
      t.ok(largest <= budget, `largest payload ${largest} <= ${budget}`);
      t.ok(
        vp.some((p) => payloadNals(p.payload).kind === 'fu-a'),
        'large NAL units went as FU-A',
      );
      t.ok(
        vp.every((p) => p.ssrc === vt.ssrc && p.payloadType === vt.payloadType) && ap.every((p) => p.ssrc === at.ssrc && p.payloadType === at.payloadType),
        'SSRC and payload type per track',
      );
      t.ok(continuous(vp) && continuous(ap), 'sequence numbers continuous on both tracks');

      // (2) One marked packet per frame; a frame's packets are consecutive.
      t.equal(frames.length, video.packets.length, `${frames.length} frames of ${video.packets.length}`);
      t.equal(new Set(frames.map((f) => f.ts)).size, frames.length, 'no timestamp recurs after another frame: each frame is one consecutive run');
      const badMarkers = frames.filter((f) => !f.packets[f.packets.length - 1]!.marker || f.packets.slice(0, -1).some((p) => p.marker));
      t.equal(badMarkers.length, 0, 'exactly one marker per frame, on its last packet');

      // Content: each frame is the source sample, in decode order.
      t.same(
        matched.map((m) => m?.index),
        video.packets.map((p) => p.index),
        'every frame equals the source sample (decode order, byte for byte)',
      );

      // (3) Timestamps: the source's presentation times (non-monotonic in decode order).
      const pts90 = video.packets.map((p) => rescale(p.pts - video.packets[0]!.pts, video.tb, 90000));
      t.same(
        frames.map((f) => (f.ts - frames[0]!.ts) >>> 0),
        pts90,
        'ts - ts0 equals the source pts - pts0 in 90 kHz',
      );
      t.ok(
        pts90.some((v, i) => i > 0 && v < pts90[i - 1]!),
        'the clip has B-frames (pts not monotonic in decode order)',
      );

      // (6) SPS/PPS (equal to sprop-parameter-sets) in a STAP-A right before every IDR.
      const fmtp = /sprop-parameter-sets=([^;\r\n]+)/.exec(session.sdp)![1]!;
      const sprop = fmtp.split(',').map((b) => Buffer.from(b, 'base64'));
      const idrs = frames.filter((f) => f.idr);
      t.same(
        idrs.map((f) => matched[frames.indexOf(f)]?.index),
        keyframes().map((p) => p.index),
        'IDR frames are the source keyframes',
      );
      for (const f of idrs) {
        const first = payloadNals(f.packets[0]!.payload);
        const idrAt = f.packets.findIndex((p) => payloadNals(p.payload).types.includes(NAL.IDR));
        t.equal(first.kind, 'stap-a', 'an IDR frame starts with a STAP-A');
        t.same(first.types.slice(0, 2), [NAL.SPS, NAL.PPS], 'holding SPS then PPS');
        t.ok(
          first.types.slice(2).every((x) => x === NAL.SEI),
          'and nothing else but SEI',
        );
        t.ok(Buffer.from(first.nals[0]!).equals(sprop[0]!) && Buffer.from(first.nals[1]!).equals(sprop[1]!), 'the SDP’s parameter sets');
        // The access unit's own SEI (x264's, in the first frame) may sit between, whole or in FU-A fragments.
        const between = f.packets.slice(1, idrAt).map((p) => payloadNals(p.payload).types);
        t.ok(
          idrAt >= 1 && between.every((types) => types.every((x) => x === NAL.SEI)),
          `the IDR’s first packet follows the STAP-A (packet ${idrAt}; only SEI between)`,
        );
      }

      // Audio: a contiguous run of the source AUs through the last, timestamps = pts.
      const aps = audioPackets(ap).filter((x) => x.aus.length > 0);
      const aus = aps.flatMap((x) => x.aus);
      t.ok(
        aus.every((a) => a !== undefined),
        'every AU equals a source AU',
      );
      const firstAu = aus[0]!.index;
      t.same(
        aus.map((a) => a?.index),
        audio.packets.slice(firstAu).map((p) => p.index),
        `AUs ${firstAu}.. to the last, in order, none missing`,
      );
      t.ok(
        aps.every((x) => (x.p.ts - aps[0]!.p.ts) >>> 0 === x.aus[0]!.pts - aps[0]!.aus[0]!.pts),
        'audio ts - ts0 equals the source pts - pts0',
      );

      // Lip sync: through each track's sender report, every frame and AU plays at its
      // source presentation time plus one common offset.
      const vSr = firstSr(sinks.rtcp[0]!);
      const aSr = firstSr(sinks.rtcp[1]!);
      const offsets = [
        ...frames.map((f, i) => ntpOf(vSr, f.ts, 90000) - vSec(matched[i]!) * 1000),
        ...aps.flatMap((x) => x.aus.map((a, k) => ntpOf(aSr, x.p.ts, AUDIO_RATE) + (k * AAC_FRAME * 1000) / AUDIO_RATE - aSec(a!) * 1000)),
      ];
      const spreadMs = Math.max(...offsets) - Math.min(...offsets);
      t.ok(spreadMs < 1, `video and audio map to one NTP clock (offsets within ${spreadMs.toFixed(3)} ms)`);
    });
  }

  t.test('(5) keyframe packets are spread over the frame interval with pacing.spread 0.8, a burst with 0', async (t) => {
    // Receivers on a thread of their own: this thread also runs the servers, and a busy
    // moment here would bunch arrivals up.
    const keys = keyframes();
    const lastKey = rescale(keys[keys.length - 1]!.pts - video.packets[0]!.pts, video.tb, 90000);
    async function playKeyframes(server: TestServer): Promise<H264Frame[]> {
      const sinks = await ThreadedSinks.open(2);
      t.teardown(() => sinks.close());
      const s = await createSession(server, sinks);
      // Until the frame after the last keyframe has started.
      for (const end = Date.now() + 10000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
        const frames = h264Frames((await sinks.take())[0]!);
        if (frames.some((f) => (f.ts - frames[0]!.ts) >>> 0 > lastKey)) break;
      }
      await server.api('DELETE', `/v1/sessions/${s.id}`);
      return h264Frames((await sinks.take())[0]!);
    }
    const spread = await playKeyframes(main);
    const burstFrames = await playKeyframes(burst);
    const span = (f: H264Frame): number => f.packets[f.packets.length - 1]!.at - f.packets[0]!.at;
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const later = (frames: H264Frame[]): H264Frame[] => frames.filter((f, i) => i > 0 && f.idr && f.packets.length >= 100);
    const spreadSpans = later(spread).map(span);
    const burstSpans = later(burstFrames).map(span);
    t.equal(
      spreadSpans.length,
      keys.length - 1,
      `later keyframes of 100+ packets: ${later(spread)
        .map((f) => f.packets.length)
        .join(', ')}`,
    );
    t.equal(burstSpans.length, keys.length - 1, 'the same from the spread 0 server');
    t.comment(`spread 0.8 spans ${spreadSpans.map((x) => x.toFixed(1)).join(', ')} ms; spread 0 spans ${burstSpans.map((x) => x.toFixed(1)).join(', ')} ms`);
    t.ok(median(spreadSpans) >= 15, 'with spread 0.8 a keyframe takes at least ~15 ms (0.8 × 40 ms planned)');
    t.ok(median(spreadSpans) <= 40 + 25, 'and no more than the frame interval plus slack (median: one keyframe delayed by a busy core is not the pacing)');
    t.ok(Math.min(...burstSpans) < median(spreadSpans) / 2, 'with spread 0 a keyframe goes as a burst, much faster');
    // The session's first keyframe is paced like any other: its packets start on time, so the
    // next frame follows a frame interval later, not in the same burst.
    const [first, next] = spread;
    t.ok(first!.idr && first!.packets.length >= 100, `first frame is an IDR of ${first!.packets.length} packets`);
    const gap = next!.packets[0]!.at - first!.packets[0]!.at;
    t.comment(`first keyframe took ${span(first!).toFixed(1)} ms, the next frame started ${gap.toFixed(1)} ms after it`);
    t.ok(gap >= 15, `the first keyframe is not sent as a burst with the frames after it (next frame ${gap.toFixed(1)} ms later)`);
  });

  /** Waits until a frame whose ts is `ticks` after the first one starts arriving. */
  async function untilFrameAt(sinks: TrackSinks, ticks: number): Promise<void> {
    await sinks.until(
      () => {
        const v = sinks.rtp[0]!;
        return v.length > 0 && (v[v.length - 1]!.ts - v[0]!.ts) >>> 0 === ticks;
      },
      10000,
      `the frame at +${ticks} ticks`,
    );
  }

  /** Index of the frame where a new source run starts after `from` (a seek or loop). */
  function runBreak(matched: (SourcePacket | undefined)[], from = 1): number {
    for (let i = Math.max(1, from); i < matched.length; i++) {
      const m = matched[i];
      const prev = matched[i - 1];
      if (m !== undefined && m.key && (prev === undefined || m.index !== prev.index + 1)) return i;
    }
    return -1;
  }

  t.test('(4) seek: lands on the previous keyframe, audio aligned, sequence continues, timestamps jump forward', async (t) => {
    const sinks = await TrackSinks.open(2);
    t.teardown(() => sinks.close());
    const s = await createSession(main, sinks);
    // Seek while the 1 s keyframe (100+ packets over ~32 ms) is on its way.
    const k1 = keyframes()[1]!;
    await untilFrameAt(sinks, rescale(k1.pts - video.packets[0]!.pts, video.tb, 90000));
    const requestMs = 2000;
    const patchAt = performance.now();
    const patch = await main.api('PATCH', `/v1/sessions/${s.id}`, { positionMs: requestMs });
    t.equal(patch.status, 200, 'PATCH positionMs');
    const want = keyframes()
      .filter((k) => vSec(k) * 1000 <= requestMs)
      .pop()!;
    t.equal(vSec(want), 2, 'the clip has a keyframe at exactly 2 s');
    t.equal(patch.body.positionMs, Math.round(vSec(want) * 1000), 'PATCH reports the landing position: the keyframe’s presentation time');
    await new Promise((r) => setTimeout(r, 500));
    const got = await main.api('GET', `/v1/sessions/${s.id}`);
    const sinceMs = performance.now() - patchAt;
    // The keyframe may be presented a little after the seek (up to the B-frame reorder delay, 160 ms here).
    const expect = vSec(want) * 1000 + sinceMs;
    t.ok(
      got.body.positionMs <= expect + 20 && got.body.positionMs >= expect - 250,
      `GET positionMs ${got.body.positionMs} ≈ ${expect.toFixed(0)} (landing + time since)`,
    );
    await waitState(main, s.id, 'ended', 20000);
    await drained(sinks);
    const { frames, matched } = analyse(s, sinks);

    t.ok(continuous(sinks.rtp[0]!) && continuous(sinks.rtp[1]!), 'sequence numbers continue across the seek on both tracks');
    const b = runBreak(matched);
    t.ok(b > 0, `a new run of frames starts at frame ${b}`);
    const before = frames.slice(0, b);
    t.ok(
      before.every((f, i) => matched[i] !== undefined && f.packets[f.packets.length - 1]!.marker),
      'every frame sent before the seek is whole and marked (the frame in flight is finished)',
    );
    const whole = matched.slice(0, b).filter((m) => m !== undefined);
    t.same(
      whole.map((m) => m.index),
      video.packets.slice(0, whole.length).map((p) => p.index),
      'before: the source from its start',
    );
    const land = matched[b]!;
    t.equal(land.index, want.index, `lands on the keyframe at ${vSec(want)} s (got ${vSec(land)} s)`);
    t.ok(frames[b]!.idr, 'the first frame after the seek is an IDR');
    t.same(
      matched.slice(b).map((m) => m?.index),
      video.packets.slice(land.index).map((p) => p.index),
      'after: the source from that keyframe to the end',
    );

    // Timestamps continue from the RTP clock: forward by the wall time, never behind what was sent.
    const maxBefore = before.reduce((m, f) => (((f.ts - m.ts) | 0) > 0 ? f : m));
    const jump = ((frames[b]!.ts - maxBefore.ts) | 0) / 90;
    const wall = frames[b]!.packets[0]!.at - maxBefore.packets[0]!.at;
    t.ok(jump > 0, `the keyframe's ts is after every ts sent before the seek (+${jump.toFixed(1)} ms)`);
    t.ok(Math.abs(jump - wall) < 200, `and about the wall time elapsed (${jump.toFixed(1)} ms vs ${wall.toFixed(1)} ms)`);

    // Audio: jumps with the video, and its first packet after the seek starts at the keyframe.
    const aps = audioPackets(sinks.rtp[1]!);
    const ab = aps.findIndex(
      (x, i) => i > 0 && x.aus[0] !== undefined && aps[i - 1]!.aus.at(-1) !== undefined && x.aus[0]!.index !== aps[i - 1]!.aus.at(-1)!.index + 1,
    );
    t.ok(ab > 0, 'the audio track jumps too');
    const firstAu = aps[ab]!.aus[0]!;
    const gapMs = (aSec(firstAu) - vSec(land)) * 1000;
    // Audio packets are atomic (several AUs each): audio starts with the packet that holds the keyframe's time.
    const packetMs = (aps[ab]!.aus.length * AAC_FRAME * 1000) / AUDIO_RATE;
    t.ok(
      gapMs <= 0.5 && gapMs > -packetMs,
      `the first audio packet after the seek holds the keyframe's time (starts ${gapMs.toFixed(1)} ms from it, packet of ${packetMs.toFixed(1)} ms)`,
    );
    const vSr = firstSr(sinks.rtcp[0]!);
    const aSr = firstSr(sinks.rtcp[1]!);
    const syncErr = ntpOf(aSr, aps[ab]!.p.ts, AUDIO_RATE) - ntpOf(vSr, frames[b]!.ts, 90000) - gapMs;
    t.ok(Math.abs(syncErr) < 1, `audio and video timestamps stay in sync across the seek (${syncErr.toFixed(3)} ms)`);
    const aJump = ((aps[ab]!.p.ts - aps[ab - 1]!.p.ts) | 0) / (AUDIO_RATE / 1000);
    t.ok(aJump > 0, `audio ts moves forward (+${aJump.toFixed(1)} ms)`);
  });

  t.test('(4) startMs at creation: starts at the keyframe at or before it, audio aligned', async (t) => {
    const startMs = 2500;
    const { session, sinks, frames, matched } = await playToEnd(main, { startMs });
    t.equal(session.positionMs, startMs, 'the created session reports its start position');
    const want = keyframes()
      .filter((k) => vSec(k) * 1000 <= startMs)
      .pop()!;
    t.ok(frames[0]!.idr, 'the first frame is an IDR');
    t.equal(matched[0]?.index, want.index, `starting at the keyframe at ${vSec(want)} s`);
    t.same(
      matched.map((m) => m?.index),
      video.packets.slice(want.index).map((p) => p.index),
      'then the source to the end',
    );
    const aps = audioPackets(sinks.rtp[1]!);
    const gapMs = (aSec(aps[0]!.aus[0]!) - vSec(want)) * 1000;
    const packetMs = (aps[0]!.aus.length * AAC_FRAME * 1000) / AUDIO_RATE;
    t.ok(
      gapMs <= 0.5 && gapMs > -packetMs,
      `the first audio packet holds the keyframe's time (starts ${gapMs.toFixed(1)} ms from it, packet of ${packetMs.toFixed(1)} ms)`,
    );
    const syncErr = ntpOf(firstSr(sinks.rtcp[1]!), aps[0]!.p.ts, AUDIO_RATE) - ntpOf(firstSr(sinks.rtcp[0]!), frames[0]!.ts, 90000) - gapMs;
    t.ok(Math.abs(syncErr) < 1, `audio and video timestamps in sync (${syncErr.toFixed(3)} ms)`);
  });

  t.test('(4) startMs 0 sends all the media: the first AUs are not skipped', async (t) => {
    const { sinks } = await fullPlay(main);
    const aus = audioPackets(sinks.rtp[1]!).flatMap((x) => x.aus);
    t.equal(aus[0]?.index, 0, `the first AU sent is the source's first (got AU ${aus[0]?.index}, pts ${aus[0] && aSec(aus[0]).toFixed(4)} s)`);
    t.equal(aus.length, audio.packets.length, 'every AU of the source is sent');
  });

  t.test('(4) loop: sequence numbers and timestamps continue smoothly', async (t) => {
    const sinks = await TrackSinks.open(2);
    t.teardown(() => sinks.close());
    const s = await createSession(main, sinks, { loop: true });
    t.equal(s.loop, true);
    // Into the second loop: past its second keyframe.
    await sinks.until(() => analyse(s, sinks).matched.filter((m) => m?.index === keyframes()[1]!.index).length >= 2, 15000, 'the second loop');
    const mid = await main.api('GET', `/v1/sessions/${s.id}`);
    t.equal(mid.body.state, 'playing');
    t.ok(mid.body.positionMs >= 0 && mid.body.positionMs < mid.body.durationMs, `positionMs ${mid.body.positionMs} wraps into [0, ${mid.body.durationMs})`);
    await main.api('DELETE', `/v1/sessions/${s.id}`);
    const played = analyse(s, sinks);
    // The DELETE may cut the last frame short.
    const frames = played.frames.slice(0, -1);
    const matched = played.matched.slice(0, -1);
    t.ok(continuous(sinks.rtp[0]!) && continuous(sinks.rtp[1]!), 'sequence numbers continue across the loop on both tracks');
    const b = runBreak(matched);
    t.equal(b, video.packets.length, 'the second loop starts after the whole clip');
    t.same(
      matched.slice(b).map((m) => m?.index),
      video.packets.slice(0, frames.length - b).map((p) => p.index),
      'and replays it from the start',
    );
    // Every frame of loop 1 is its loop-0 twin shifted by one loop length.
    const shift = (frames[b]!.ts - frames[0]!.ts) >>> 0;
    t.ok(
      frames.slice(b).every((f, i) => (f.ts - frames[i]!.ts) >>> 0 === shift),
      `loop 1 = loop 0 + ${shift} ticks`,
    );
    // Smooth: loop 1's first frame is presented right when loop 0's last frame ends.
    const frameTicks = 90000 / 25;
    const end0 = Math.max(...frames.slice(0, b).map((f) => (f.ts - frames[0]!.ts) >>> 0)) + frameTicks;
    const gapMs = (shift - end0) / 90;
    t.ok(gapMs >= 0, `no overlap between loops (${gapMs.toFixed(1)} ms)`);
    t.ok(gapMs < 1000 / 25, `video continues across the loop: gap ${gapMs.toFixed(1)} ms < one frame`);
    // Audio: the same loop length, and no hole or overlap larger than one AAC frame.
    const aps = audioPackets(sinks.rtp[1]!);
    const ab = aps.findIndex((x, i) => i > 0 && x.aus[0] !== undefined && x.aus[0].index < aps[i - 1]!.aus.at(-1)!.index);
    t.ok(ab > 0, 'audio loops too');
    const k = aps[ab]!.aus[0]!;
    // Where AU k of loop 0 would have been: from the first packet and the source pts.
    const aShift = (aps[ab]!.p.ts - aps[0]!.p.ts - (k.pts - aps[0]!.aus[0]!.pts)) >>> 0;
    t.ok(
      Math.abs(aShift / AUDIO_RATE - shift / 90000) < 1 / AUDIO_RATE + 1 / 90000,
      `audio loop length ${(aShift / 48).toFixed(2)} ms = video’s ${(shift / 90).toFixed(2)} ms`,
    );
    const last = aps[ab - 1]!;
    const aGapMs = (((aps[ab]!.p.ts - last.p.ts) | 0) - last.aus.length * AAC_FRAME) / (AUDIO_RATE / 1000);
    // (The last AU may be partly padding, so a small overlap is as good as a small gap.)
    t.ok(Math.abs(aGapMs) < (AAC_FRAME * 1000) / AUDIO_RATE, `audio continues across the loop: gap ${aGapMs.toFixed(1)} ms`);
  });

  t.test('(7) frameRate times raw H.264 without VUI timing; outside 1–240 is 400', async (t) => {
    const file = path.join(main.dir, 'notiming.h264');
    const frameCount = 24;
    await makeAnnexBWithoutTiming(file, frameCount);
    const put = await main.api('PUT', '/v1/media/notiming.h264', await readFile(file));
    t.equal(put.status, 201, 'uploaded');
    t.equal(put.body.tracks[0].frameRate, undefined, 'the probe finds no frame rate in the stream');
    const cases = [
      { frameRate: 30, step: 3000 },
      { frameRate: 12.5, step: 7200 },
      { frameRate: undefined, step: 3600 }, // the default, 25
    ];
    await Promise.all(
      cases.map(async (c) => {
        const sinks = await TrackSinks.open(1);
        t.teardown(() => sinks.close());
        const body: Record<string, unknown> = { mode: 'play', media: 'notiming.h264', destination: { host: '127.0.0.1', port: sinks.base } };
        if (c.frameRate !== undefined) body.frameRate = c.frameRate;
        const res = await main.api('POST', '/v1/sessions', body);
        t.equal(res.status, 201, `frameRate ${c.frameRate}: created`);
        t.equal(res.body.durationMs, Math.round((frameCount * c.step) / 90), `frameRate ${c.frameRate}: durationMs`);
        await waitState(main, res.body.id, 'ended', 10000);
        await drained(sinks);
        const frames = h264Frames(sinks.rtp[0]!);
        t.equal(frames.length, frameCount, `frameRate ${c.frameRate}: all frames`);
        const steps = frames.slice(1).map((f, i) => (f.ts - frames[i]!.ts) >>> 0);
        t.same([...new Set(steps)], [c.step], `frameRate ${c.frameRate}: timestamps step by ${c.step}`);
        const took = frames[frames.length - 1]!.packets[0]!.at - frames[0]!.packets[0]!.at;
        const want = ((frameCount - 1) * c.step) / 90;
        t.ok(
          took > want * 0.8 && took < want * 1.25 + 50,
          `frameRate ${c.frameRate}: paced at that rate (${took.toFixed(0)} ms for ${want.toFixed(0)} ms of frames)`,
        );
      }),
    );
    for (const frameRate of [0, 0.5, 241, 1000, -25, 'fast']) {
      const res = await main.api('POST', '/v1/sessions', { mode: 'play', media: 'notiming.h264', frameRate, destination: { host: '127.0.0.1', port: 40000 } });
      t.equal(res.status, 400, `frameRate ${JSON.stringify(frameRate)}: 400`);
    }
    const edge = await main.api('POST', '/v1/sessions', {
      mode: 'play',
      media: 'notiming.h264',
      frameRate: 240,
      state: 'paused',
      destination: { host: '127.0.0.1', port: 40000 },
    });
    t.equal(edge.status, 201, 'frameRate 240 is accepted');
    await main.api('DELETE', `/v1/sessions/${edge.body.id}`);
  });
}
