// ffmpeg as the client of video sessions: it reads the API's SDP, decodes our
// H.264 and takes our AAC packets; results are compared exactly with the
// source, and A/V sync is measured on a flash-and-beep clip.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG, ffmpeg, run, startFfmpeg, parseFrameMd5, requireSetup, type FrameMd5 } from '../helpers/ffmpeg.js';
import { createPaused, waitState, freePortBlock } from '../helpers/play.js';
import { waitFor, waitUdpBound } from '../helpers/ready.js';
import { makeMp4, makeSyncClip, readMetadataPrint, sourcePackets, type SourceStream } from '../helpers/video.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  let clipPath: string;
  let video: SourceStream;
  let audio: SourceStream;
  /** The source decoded by ffmpeg, in presentation order. */
  let decoded: FrameMd5[];
  /** Its time base (seconds per pts unit). */
  let decodedTb: number;

  t.before(async () => {
    server = await startServer();
    // 640x360 with noise: keyframes over 100 KB (every 2 s), 2 B-frames, AAC beside.
    clipPath = path.join(server.dir, 'clip.mp4');
    await makeMp4(clipPath, { seconds: 4, size: '640x360', noise: 12, crf: 18, gop: 50, bframes: 2 });
    const put = await server.api('PUT', '/v1/media/clip.mp4', await readFile(clipPath));
    if (put.status !== 201) throw new Error(`upload failed: ${put.text}`);
    [video, audio] = await Promise.all([sourcePackets(clipPath, 'v'), sourcePackets(clipPath, 'a')]);
    const text = (await ffmpeg(['-i', clipPath, '-map', '0:v', '-fps_mode', 'passthrough', '-f', 'framemd5', '-'])).toString();
    decoded = parseFrameMd5(text);
    const tb = /#tb 0: (\d+)\/(\d+)/.exec(text)!;
    decodedTb = Number(tb[1]) / Number(tb[2]);
    // The clip itself (not a product test): B-frames and keyframes over 100 KB.
    const keys = video.packets.filter((p) => p.key);
    requireSetup(keys.length >= 2, `the clip has ${keys.length} keyframes, wanted 2`);
    requireSetup(
      keys.every((k) => k.size > 100 * 1024),
      `the clip's keyframes are ${keys.map((k) => k.size).join(', ')} bytes, wanted > 100 KB`,
    );
    requireSetup(
      video.packets.some((p, i) => i > 0 && p.pts < video.packets[i - 1]!.pts),
      'the clip has no B-frames',
    );
  });
  t.teardown(() => server.stop());

  const RTP_IN = ['-protocol_whitelist', 'file,udp,rtp'];

  /** Creates a paused session, starts ffmpeg on its SDP, plays to the end and stops ffmpeg. */
  async function playToFfmpeg(body: Record<string, unknown>, outArgs: string[]): Promise<{ session: ApiBody; stderr: string }> {
    const port = await freePortBlock(2);
    const { id, session, sdpPath } = await createPaused(server, { ...body, destination: { host: '127.0.0.1', port } });
    const ff = startFfmpeg([...RTP_IN, '-i', sdpPath, ...outArgs], 60000);
    // ffmpeg opens its sockets before the first packet: wait until both tracks' are bound.
    await waitUdpBound([port, port + 2]);
    const play = await server.api('PATCH', `/v1/sessions/${id}`, { state: 'playing' });
    if (play.status !== 200) throw new Error(play.text);
    await waitState(server, id, 'ended', 30000);
    // The session's RTCP BYEs end ffmpeg's input: it decodes and writes everything it holds and exits
    // (however slowly, on a loaded machine).
    const byItself = await ff.exited(30000);
    const r = await ff.stop();
    if (!byItself) throw new Error(`ffmpeg did not end on the session's BYEs: ${r.stderr}`);
    return { session, stderr: r.stderr };
  }

  t.test('every decoded frame and every AAC packet equals the source', async (t) => {
    const vOut = path.join(server.dir, 'full-v.md5');
    const aOut = path.join(server.dir, 'full-a.md5');
    const { stderr } = await playToFfmpeg({ media: 'clip.mp4' }, [
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
    ]);
    t.equal(stderr.trim(), '', 'ffmpeg reports no errors');
    const got = parseFrameMd5(await readFile(vOut, 'utf8'));
    t.equal(got.length, decoded.length, `ffmpeg decoded ${got.length} of ${decoded.length} frames`);
    t.same(
      got.map((f) => f.hash),
      decoded.map((f) => f.hash),
      'every decoded frame equals the source’s, in order',
    );

    // AAC: a contiguous run of the source packets, unchanged, from one of the first four to the end.
    const aus = parseFrameMd5(await readFile(aOut, 'utf8'));
    const want = audio.packets.map((p) => p.hash);
    const start = want.indexOf(aus[0]?.hash ?? '');
    t.ok(start >= 0 && start < 4, `the first AU received is source AU ${start}`);
    t.same(
      aus.map((a) => a.hash),
      want.slice(start, start + aus.length),
      'the AUs received are the source’s, in order, none missing or changed',
    );
    t.ok(start + aus.length >= want.length - 1, `through the end (${start + aus.length} of ${want.length})`);
    t.same(
      aus.map((a) => a.size),
      audio.packets.slice(start, start + aus.length).map((p) => p.size),
      'AU sizes equal',
    );
  });

  /**
   * What ffmpeg's H.264 decoder logs when it starts inside a GOP: the P/B frames
   * before the first keyframe reference pictures it never saw. ffmpeg as the
   * sender (`-f rtp`) makes a late receiver print the same lines.
   */
  const LATE_JOIN_NOISE =
    /^\[h264 @ 0x[0-9a-f]+\] (mmco: unref short failure|co located POCs unavailable|reference picture missing during reorder|Missing reference picture, default is \d+)$|^\s*Last message repeated \d+ times$/;

  t.test('a client joining mid-stream decodes from the next keyframe, without errors', async (t) => {
    const port = await freePortBlock(2);
    const { id, sdpPath } = await createPaused(server, { media: 'clip.mp4', loop: true, destination: { host: '127.0.0.1', port } });
    const play = await server.api('PATCH', `/v1/sessions/${id}`, { state: 'playing' });
    t.equal(play.status, 200);
    // Join mid-GOP: once the session has sent well past its first keyframe (2.3 s of the 4 s clip).
    const position = async (): Promise<number> => (await server.api('GET', `/v1/sessions/${id}`)).body?.positionMs ?? 0;
    t.ok(await waitFor(async () => (await position()) >= 2300, 15000, 50), 'the session is mid-GOP when the client joins');
    const live = path.join(server.dir, 'join.md5');
    // Stream copy starts at the first keyframe (ffmpeg drops what comes before it).
    const copy = path.join(server.dir, 'join.nut');
    const ff = startFfmpeg(
      [
        ...RTP_IN,
        '-i',
        sdpPath,
        '-map',
        '0:v',
        '-c:v',
        'copy',
        '-f',
        'nut',
        '-y',
        copy,
        '-map',
        '0:v',
        '-fps_mode',
        'passthrough',
        '-flush_packets',
        '1',
        '-f',
        'framemd5',
        '-y',
        live,
      ],
      30000,
    );
    // The next keyframe is the loop's start at ~4.1 s; take a second (25 frames) past it.
    const decodedLive = (): number => parseFrameMd5(readFileSync(live, { encoding: 'utf8', flag: 'a+' })).length;
    t.ok(await waitFor(() => decodedLive() >= 26, 20000, 50), 'the client decodes a second of frames from the next keyframe');
    const { stderr } = await ff.stop();
    await server.api('DELETE', `/v1/sessions/${id}`);
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    t.same(
      lines.filter((l) => !LATE_JOIN_NOISE.test(l)),
      [],
      'the receiving ffmpeg logs no errors but its decoder’s late-join notices',
    );
    t.comment(`late-join notices: ${lines.length}`);
    const fromKey = await run(
      'ffmpeg',
      ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', copy, '-fps_mode', 'passthrough', '-f', 'framemd5', '-'],
      30000,
    );
    t.equal(fromKey.code, 0);
    t.equal(fromKey.stderr.trim(), '', 'decoding from the keyframe on: no errors at all');
    const keyTimes = video.packets.filter((p) => p.key).map((p) => (p.pts * video.tb.num) / video.tb.den);
    // Stopping ffmpeg may cut the last frame short: it is left out.
    for (const [label, got] of [
      ['live', parseFrameMd5(await readFile(live, 'utf8')).slice(0, -1)],
      ['from the keyframe', parseFrameMd5(fromKey.stdout.toString()).slice(0, -1)],
    ] as const) {
      t.ok(got.length >= 20, `${label}: decoded ${got.length} frames`);
      const first = decoded.findIndex((f) => f.hash === got[0]?.hash);
      const firstTime = first >= 0 ? decoded[first]!.pts * decodedTb : NaN;
      t.ok(
        keyTimes.some((k) => Math.abs(k - firstTime) < 0.001),
        `${label}: the first frame is a source keyframe's (at ${firstTime.toFixed(3)} s)`,
      );
      const wanted = got.map((_, i) => decoded[(first + i) % decoded.length]!.hash);
      t.same(
        got.map((f) => f.hash),
        wanted,
        `${label}: the following frames continue the source exactly (across the loop)`,
      );
    }
  });

  t.test('A/V sync: flash and beep line up within 20 ms of the file’s own offset', async (t) => {
    const syncPath = path.join(server.dir, 'sync.mp4');
    await makeSyncClip(syncPath);
    const put = await server.api('PUT', '/v1/media/sync.mp4', await readFile(syncPath));
    t.equal(put.status, 201, 'uploaded');

    /** Output times of the flashes (luma) and the beep onsets (1 ms RMS) as ffmpeg decodes `input`. */
    async function measure(label: string, input: string[], run: (args: string[]) => Promise<void>): Promise<{ flashes: number[]; beeps: number[] }> {
      const vFile = path.join(server.dir, `${label}-luma.txt`);
      const aFile = path.join(server.dir, `${label}-rms.txt`);
      const graph =
        `[0:v]signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=${vFile}[v];` +
        `[0:a]asetnsamples=n=48:p=0,astats=metadata=1:reset=1:measure_perchannel=none,ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file=${aFile}[a]`;
      await run([...input, '-filter_complex', graph, '-map', '[v]', '-f', 'null', '-', '-map', '[a]', '-f', 'null', '-']);
      const luma = await readMetadataPrint(vFile, 'lavfi.signalstats.YAVG');
      const rms = await readMetadataPrint(aFile, 'lavfi.astats.Overall.RMS_level');
      // Rising edges: a frame brighter than mid-grey after a dark one; 1 ms of audio above -30 dBFS after silence.
      const flashes = luma.filter((f, i) => f.value > 128 && (i === 0 || luma[i - 1]!.value <= 128)).map((f) => f.pts);
      const beeps = rms.filter((c, i) => c.value > -30 && i > 0 && rms.slice(Math.max(0, i - 20), i).every((p) => !(p.value > -30))).map((c) => c.pts);
      return { flashes, beeps };
    }

    const file = await measure('file', ['-i', syncPath], async (args) => {
      await ffmpeg(args);
    });
    const rtp = await measure('rtp', [], async (args) => {
      const { stderr } = await playToFfmpeg({ media: 'sync.mp4' }, args);
      t.equal(stderr.trim(), '', 'the receiving ffmpeg reports no errors');
    });
    t.equal(file.flashes.length, 2, `the file shows two flashes (${file.flashes.join(', ')})`);
    t.equal(file.beeps.length, 2, `and two beeps (${file.beeps.join(', ')})`);
    t.equal(rtp.flashes.length, 2, `ffmpeg receives two flashes (${rtp.flashes.join(', ')})`);
    t.equal(rtp.beeps.length, 2, `and two beeps (${rtp.beeps.join(', ')})`);
    for (let i = 0; i < 2; i++) {
      const base = (file.beeps[i]! - file.flashes[i]!) * 1000;
      const got = (rtp.beeps[i]! - rtp.flashes[i]!) * 1000;
      t.comment(`event ${i + 1}: beep - flash = ${got.toFixed(1)} ms over RTP, ${base.toFixed(1)} ms from the file`);
      t.ok(Math.abs(got - base) <= 20, `A/V offset over RTP within 20 ms of the file’s (${(got - base).toFixed(1)} ms)`);
    }
  });
}
