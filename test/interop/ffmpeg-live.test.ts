// Live fan-out to real receivers: ffmpeg pushes a looped H.264 + Opus clip into
// a record session; two ffmpeg receivers join mid-stream through live play
// sessions (on the API's SDPs) and decode a contiguous run of the source from
// a keyframe on, while the sender is still sending. A third subscriber of ours
// checks what a subscriber gets, packet for packet, and how late.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG, parseFrameMd5, startFfmpeg } from '../helpers/ffmpeg.js';
import { freePortBlock, waitState } from '../helpers/play.js';
import { NAL, payloadNals, sourcePackets, TrackSinks } from '../helpers/video.js';
import type { ReceivedRtp } from '../helpers/rtp.js';
import { cyclicRun, makeRecordSource, push, reference, reportSkewMs, senderReports, senderSdp, UdpTap, type Reference } from '../helpers/record.js';
import { waitUdpBound, waitUntil } from '../helpers/ready.js';
import { startsIdrRef } from '../helpers/h264-ref.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  let src: string;
  let ref: Reference;
  /** Presentation-order indexes of the source's keyframes. */
  let keyIndexes: number[];

  t.before(async () => {
    server = await startServer({ 'record.idleTimeoutMs': 10000 });
    src = path.join(server.dir, 'src.mp4');
    await makeRecordSource(src, 4);
    ref = await reference(src);
    const v = await sourcePackets(src, 'v');
    const byPts = [...v.packets].sort((a, b) => a.pts - b.pts);
    keyIndexes = byPts.flatMap((p, i) => (p.key ? [i] : []));
  });
  t.teardown(() => server.stop());

  /** How long ffmpeg sends (the 4 s clip looped), seconds. */
  const SEND_S = 9;
  /**
   * The relay's allowance: packets leave for a subscriber within this much of reaching offcast
   * (loose: the test, offcast and four ffmpeg processes share two cores, and tap runs files in parallel).
   */
  const RELAY_MS = 200;
  const RELAY_WORST_MS = 1000;
  /** What ffmpeg's H.264 decoder logs when packets of a GOP arrive without its keyframe (see ffmpeg-video.test.ts). */
  const LATE_JOIN_NOISE =
    /^\[h264 @ 0x[0-9a-f]+\] (mmco: unref short failure|co located POCs unavailable|reference picture missing during reorder|Missing reference picture, default is \d+)$|^\s*Last message repeated \d+ times$/;

  /** Matches a subscriber's packets to the ingress packets they relay: a contiguous run, byte for byte, and each one's delay. */
  function relayed(got: readonly ReceivedRtp[], sent: readonly ReceivedRtp[]): { start: number; contiguous: number; delays: number[] } {
    if (got.length === 0) return { start: -1, contiguous: 0, delays: [] };
    // The clip loops: the same payload recurs every loop; take the latest sent before it arrived.
    let start = -1;
    for (let j = 0; j < sent.length && sent[j]!.at <= got[0]!.at; j++) if (sent[j]!.payload.equals(got[0]!.payload)) start = j;
    if (start < 0) return { start, contiguous: 0, delays: [] };
    const delays: number[] = [];
    let n = 0;
    while (n < got.length && start + n < sent.length && got[n]!.payload.equals(sent[start + n]!.payload)) {
      delays.push(got[n]!.at - sent[start + n]!.at);
      n++;
    }
    return { start, contiguous: n, delays };
  }

  const lines = async (file: string): Promise<number> => parseFrameMd5(await readFile(file, 'utf8').catch(() => '')).length;

  t.test('two ffmpeg receivers of a live record session decode the feed from a keyframe, in real time', async (t) => {
    const sdp = await senderSdp(src, server.dir);
    const res = await fetch(`${server.url}/v1/sessions?name=livefeed`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
    const rec = (await res.json()) as ApiBody;
    t.equal(res.status, 201, JSON.stringify(rec));
    // ffmpeg -> tap -> offcast: the tap stamps when each packet reached offcast's doorstep.
    const ingress = await UdpTap.open([rec.tracks[0].port, rec.tracks[1].port]);
    t.teardown(() => ingress.close());
    const probe = await TrackSinks.open(2);
    t.teardown(() => probe.close());
    const probeView = await server.api('POST', '/v1/sessions', { mode: 'play', live: rec.id, destination: { host: '127.0.0.1', port: probe.base } });
    t.equal(probeView.status, 201, probeView.text);

    // The receivers start first, on the SDP the API gives a subscriber (the probe's, with their ports), and
    // subscribe once their sockets are bound: a receiver slow to start (a loaded machine) misses nothing.
    const probeSdp = await server.api('GET', `/v1/sessions/${probeView.body.id}/sdp`);
    t.equal(probeSdp.status, 200, probeSdp.text);
    const forPorts = (sdp: string, port: number): string =>
      sdp
        .replace(`m=video ${probe.base} `, `m=video ${port} `)
        .replace(`a=rtcp:${probe.base + 1}`, `a=rtcp:${port + 1}`)
        .replace(`m=audio ${probe.base + 2} `, `m=audio ${port + 2} `)
        .replace(`a=rtcp:${probe.base + 3}`, `a=rtcp:${port + 3}`);
    const receivers: { id: string; view: ApiBody | null; port: number; sdp: string; vOut: string; aOut: string; ff: ReturnType<typeof startFfmpeg> }[] = [];
    for (const k of [0, 1]) {
      const port = await freePortBlock(2);
      const sdp = forPorts(probeSdp.text, port);
      const sdpPath = path.join(server.dir, `live${k}.sdp`);
      await writeFile(sdpPath, sdp);
      const vOut = path.join(server.dir, `live${k}-v.md5`);
      const aOut = path.join(server.dir, `live${k}-a.md5`);
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
          '-flush_packets',
          '1',
          '-f',
          'framemd5',
          '-y',
          vOut,
          '-map',
          '0:a',
          '-c:a',
          'copy',
          '-flush_packets',
          '1',
          '-f',
          'framemd5',
          '-y',
          aOut,
        ],
        (SEND_S + 30) * 1000,
      );
      t.teardown(() => ff.stop());
      receivers.push({ id: '', view: null, port, sdp, vOut, aOut, ff });
    }
    await waitUdpBound(receivers.flatMap((r) => [r.port, r.port + 2]));

    const sender = push(src, { videoPort: ingress.port, audioPort: ingress.port + 2, loop: true, seconds: SEND_S }, (SEND_S + 20) * 1000);
    t.teardown(() => sender.stop());
    const sendStart = performance.now();
    // Join mid-stream just after a keyframe went by, so the subscriptions start with the next one.
    let seenKeys = 0;
    await probe.until(
      () => {
        const v = probe.rtp[0]!;
        const keys = v.filter((p) => startsIdrRef(p.payload) && (p.payload[0]! & 0x1f) !== NAL.STAP_A);
        seenKeys = keys.length;
        const last = keys[keys.length - 1];
        return last !== undefined && last.at - sendStart > 1500 && performance.now() - last.at < 100;
      },
      15000,
      'a keyframe 1.5 s into the feed',
    );
    t.comment(`joining after keyframe ${seenKeys} of the feed, ${((performance.now() - sendStart) / 1000).toFixed(2)} s in`);
    /** The source frame the subscribers' video starts with: the feed's next keyframe (the clip holds keyIndexes.length). */
    const nextKey = keyIndexes[seenKeys % keyIndexes.length]!;

    for (const [k, r] of receivers.entries()) {
      const res = await server.api('POST', '/v1/sessions', { mode: 'play', live: rec.id, destination: { host: '127.0.0.1', port: r.port } });
      t.equal(res.status, 201, res.text);
      r.id = res.body.id;
      r.view = res.body;
      const sdpRes = await server.api('GET', `/v1/sessions/${r.id}/sdp`);
      t.equal(sdpRes.status, 200);
      t.match(sdpRes.headers.get('content-type') ?? '', /^application\/sdp/);
      t.match(sdpRes.text, new RegExp(`^m=video ${r.port} RTP/AVP 96\\r?$`, 'm'), `subscriber ${k}: its SDP names its video port`);
      const origin = (sdp: string): string => sdp.replace(/^o=.*$/m, 'o=');
      t.equal(origin(sdpRes.text), origin(r.sdp), `subscriber ${k}: its SDP is the one its ffmpeg reads (but for the origin line)`);
    }
    t.not(receivers[0]!.view!.tracks[0].ssrc, receivers[1]!.view!.tracks[0].ssrc, 'each subscriber has its own SSRC');

    // While ffmpeg still sends (a second and a half before its end), both receivers have decoded seconds of it.
    const midAt = sendStart + (SEND_S - 1.5) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, midAt - performance.now())));
    const midCounts = await Promise.all(receivers.map((r) => lines(r.vOut)));
    const senderRunning = sender.child.exitCode === null;
    const sent = await sender.done;
    t.equal(sent.code, 0, 'ffmpeg sent the looped clip');
    t.equal(sent.stderr.trim(), '', 'and reported no errors');
    t.ok(senderRunning, 'the mid-stream check ran while ffmpeg was sending');
    for (const [k, n] of midCounts.entries()) t.ok(n >= 50, `receiver ${k} had decoded ${n} frames while ffmpeg was still sending`);
    // Once the recording has taken in every packet ffmpeg sent, end it: the feed's end sends the
    // subscribers a BYE per track, which ends the receiving ffmpegs' input (they flush and exit).
    await waitUntil(
      async () => {
        const view = (await server.api('GET', `/v1/sessions/${rec.id}`)).body;
        return [0, 1].every((k) => view.tracks[k].stats.packets >= ingress.rtp(k).length);
      },
      10000,
      'the recording to count every packet ffmpeg sent',
    ).catch(() => undefined);
    const deleteAt = performance.now();
    const del = await server.api('DELETE', `/v1/sessions/${rec.id}`);
    t.equal(del.status, 200, del.text);
    const byItself = await Promise.all(receivers.map((r) => r.ff.exited(20000)));
    t.same(byItself, [true, true], 'both receiving ffmpegs end on the live sessions’ BYEs');
    const results = await Promise.all(receivers.map((r) => r.ff.stop()));
    t.match(
      del.body.recording.tracks,
      [
        { lost: 0, duplicates: 0 },
        { lost: 0, duplicates: 0 },
      ],
      'the recording lost nothing meanwhile',
    );

    for (const [k, r] of receivers.entries()) {
      const errors = results[k]!.stderr.split('\n').filter((l) => l.trim() !== '');
      t.same(
        errors.filter((l) => !LATE_JOIN_NOISE.test(l)),
        [],
        `receiver ${k}: ffmpeg logs no errors but its decoder’s late-join notices`,
      );
      t.comment(`receiver ${k}: ${errors.length} late-join notices${errors.length > 0 ? `: ${errors.join(' | ')}` : ''}`);
      // Decoded frames are compared exactly: from its first keyframe on, the receiver's picture is the source's.
      const got = parseFrameMd5(await readFile(r.vOut, 'utf8')).map((f) => f.hash);
      const match = cyclicRun(got, ref.frames);
      t.ok(got.length >= 100, `receiver ${k}: decoded ${got.length} frames`);
      if (errors.length === 0) {
        // Up in time: the first keyframe it decoded is the one the subscription started with.
        t.equal(match.start, nextKey, `receiver ${k}: the first frame is the source’s keyframe after the join (frame ${match.start})`);
      } else {
        t.ok(keyIndexes.includes(match.start), `receiver ${k}: started late, from a later keyframe of the source (frame ${match.start})`);
      }
      // The feed's end (ffmpeg's -t, in decode order) can cut the last frame the decoder flushes off
      // from a reference it never got: every frame before that one is the source's.
      t.ok(
        match.contiguous >= got.length - 1,
        `receiver ${k}: every frame from there on continues the source exactly (across its loops): ${match.contiguous} of ${got.length}`,
      );
      const opus = parseFrameMd5(await readFile(r.aOut, 'utf8')).map((f) => f.hash);
      const aRun = cyclicRun(opus, ref.opus);
      t.ok(opus.length >= 200, `receiver ${k}: ${opus.length} Opus packets`);
      t.ok(aRun.start >= 0, `receiver ${k}: the first Opus packet is the source’s packet ${aRun.start}`);
      t.equal(aRun.contiguous, opus.length, `receiver ${k}: the Opus packets continue the source exactly (across its loops)`);
    }

    // Our subscriber: what it got, byte for byte, and how late.
    const [pv, pa] = [probe.rtp[0]!, probe.rtp[1]!];
    const first = pv[0] === undefined ? null : payloadNals(pv[0].payload);
    t.same(first?.types, [NAL.SPS, NAL.PPS], 'the video subscriber gets the SPS and PPS first (a STAP-A)');
    const sprop = /sprop-parameter-sets=([^;\s]+)/.exec(rec.tracks[0].fmtp ?? '')?.[1]?.split(',') ?? [];
    t.same(
      first?.nals.map((n) => Buffer.from(n).toString('base64')),
      sprop,
      'the ones the sender’s SDP announced',
    );
    t.ok(pv[1] !== undefined && startsIdrRef(pv[1].payload), 'then the keyframe');
    t.equal(pv[1]?.ts, pv[0]?.ts, 'with the keyframe’s timestamp');
    for (const [label, got, sentPkts] of [
      ['video', pv.slice(1), ingress.rtp(0)],
      ['audio', pa, ingress.rtp(1)],
    ] as const) {
      const m = relayed(got, sentPkts);
      t.ok(got.length > 200, `${label}: our subscriber got ${got.length} packets`);
      t.equal(m.contiguous, got.length, `${label}: the packets ffmpeg sent from the subscriber's start, byte for byte, none missing`);
      t.equal(m.start + got.length, sentPkts.length, `${label}: through ffmpeg's last packet`);
      const sorted = [...m.delays].sort((a, b) => a - b);
      const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Infinity;
      t.comment(`${label}: relay delay median ${at(0.5).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms, worst ${at(1).toFixed(2)} ms`);
      t.ok(at(0.99) < RELAY_MS, `${label}: 99% of the packets relayed within ${RELAY_MS} ms of reaching offcast (p99 ${at(0.99).toFixed(1)} ms)`);
      t.ok(at(1) < RELAY_WORST_MS, `${label}: every one within ${RELAY_WORST_MS} ms, nothing held back (worst ${at(1).toFixed(1)} ms)`);
      t.ok(
        got.every((p, i) => i === 0 || p.seq === ((got[i - 1]!.seq + 1) & 0xffff)),
        `${label}: with the subscriber’s own continuous sequence numbers`,
      );
    }
    // Its sender reports map RTP time to wall time as the packets do (B-frames put video up to a few frames off).
    for (const [k, label, pkts, clock] of [
      [0, 'video', pv, 90000],
      [1, 'audio', pa, 48000],
    ] as const) {
      // Arrival times are stamped on this thread, which also runs the server: while it finishes the
      // recording (the DELETE) they run late, so the reports that arrive from then on (the final BYE's) are only shown.
      const all = probe.rtcp[k]!.flatMap((r) => senderReports(r.msg).map((sr) => ({ sr, at: r.at })));
      const srs = all.filter((r) => r.at < deleteAt);
      t.comment(
        `${label}: reports after the DELETE: ${all
          .filter((r) => r.at >= deleteAt)
          .map(({ sr, at }) => `${reportSkewMs(sr, at, pkts, clock).toFixed(0)} ms`)
          .join(', ')}`,
      );
      t.ok(srs.length >= 2, `${label}: ${srs.length} sender reports while the feed ran`);
      const skews = srs.map(({ sr, at }) => reportSkewMs(sr, at, pkts, clock));
      t.ok(
        skews.every((d) => Math.abs(d) < 250),
        `${label}: every report's RTP timestamp within 250 ms of the stream's clock (${skews.map((d) => d.toFixed(0)).join(', ')} ms)`,
      );
    }
    const pvSsrc = probeView.body.tracks.map((x) => x.ssrc);
    t.ok(pv.every((p) => p.ssrc === pvSsrc[0]) && pa.every((p) => p.ssrc === pvSsrc[1]), 'and its SSRCs');

    for (const r of receivers) {
      const after = await waitState(server, r.id, 'ended', 5000).catch(async () => (await server.api('GET', `/v1/sessions/${r.id}`)).body);
      t.equal(after.state, 'ended', 'the subscribers end with their recording');
    }
  });
}
