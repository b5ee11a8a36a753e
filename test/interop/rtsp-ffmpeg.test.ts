// ffmpeg as an RTSP client (rtsp://HOST:PORT/NAME), over UDP and over TCP
// interleaved: decoded H.264 frames, AAC and Opus packets exactly the source's,
// and a start by Range (ffmpeg's -ss sends Range: npt=).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG, ffmpeg, startFfmpeg, parseFrameMd5, requireSetup, type FrameMd5 } from '../helpers/ffmpeg.js';
import { makeMp4, sourcePackets, type SourceStream } from '../helpers/video.js';
import { skipFile } from '../helpers/tools.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  let port: number;
  let clipPath: string;
  let opusPath: string;
  let audio: SourceStream;
  let video: SourceStream;
  let decoded: FrameMd5[];
  let decodedTb: number;
  let opus: FrameMd5[];

  t.before(async () => {
    server = await startServer({}, { rtspPort: 0 });
    port = server.rtsp!.port!;
    clipPath = path.join(server.dir, 'clip.mp4');
    await makeMp4(clipPath, { seconds: 4, size: '640x360', noise: 12, crf: 18, gop: 25, bframes: 2 });
    const put = await server.api('PUT', '/v1/media/clip.mp4', await readFile(clipPath));
    if (put.status !== 201) throw new Error(`upload failed: ${put.text}`);
    [video, audio] = await Promise.all([sourcePackets(clipPath, 'v'), sourcePackets(clipPath, 'a')]);
    const text = (await ffmpeg(['-i', clipPath, '-map', '0:v', '-fps_mode', 'passthrough', '-f', 'framemd5', '-'])).toString();
    decoded = parseFrameMd5(text);
    const tb = /#tb 0: (\d+)\/(\d+)/.exec(text)!;
    decodedTb = Number(tb[1]) / Number(tb[2]);
    requireSetup(
      video.packets.some((p, i) => i > 0 && p.pts < video.packets[i - 1]!.pts),
      'the clip has no B-frames',
    );
    opusPath = path.join(server.dir, 'music.opus');
    await ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:duration=3', '-ac', '2', '-c:a', 'libopus', '-b:a', '64k', '-y', opusPath]);
    const putOpus = await server.api('PUT', '/v1/media/music.opus', await readFile(opusPath));
    if (putOpus.status !== 201) throw new Error(`upload failed: ${putOpus.text}`);
    opus = parseFrameMd5((await ffmpeg(['-i', opusPath, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString());
  });
  t.teardown(() => server.stop());

  /** ffmpeg reads rtsp://…/NAME to the end (the session's BYEs end it) and writes framemd5 outputs. */
  async function read(name: string, transport: 'udp' | 'tcp', inArgs: string[], outArgs: string[]): Promise<string> {
    const ff = startFfmpeg(['-rtsp_transport', transport, ...inArgs, '-i', `rtsp://127.0.0.1:${port}/${name}`, ...outArgs], 60000);
    const byItself = await ff.exited(45000);
    const r = await ff.stop();
    if (!byItself) throw new Error(`ffmpeg did not end by itself: ${r.stderr}`);
    return r.stderr;
  }

  for (const transport of ['udp', 'tcp'] as const) {
    t.test(`${transport}: every decoded H.264 frame and every AAC packet equals the source`, async (t) => {
      const vOut = path.join(server.dir, `${transport}-v.md5`);
      const aOut = path.join(server.dir, `${transport}-a.md5`);
      const stderr = await read(
        'clip.mp4',
        transport,
        [],
        ['-map', '0:v', '-fps_mode', 'passthrough', '-f', 'framemd5', '-y', vOut, '-map', '0:a', '-c:a', 'copy', '-f', 'framemd5', '-y', aOut],
      );
      t.equal(stderr.trim(), '', 'ffmpeg reports no errors');
      const got = parseFrameMd5(await readFile(vOut, 'utf8'));
      t.same(
        got.map((f) => f.hash),
        decoded.map((f) => f.hash),
        `all ${decoded.length} frames equal the source's, in order`,
      );
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
      const listed = (await server.api<{ sessions: { rtsp?: { transport: string } }[] }>('GET', '/v1/sessions')).body.sessions;
      t.ok(
        listed.some((s) => s.rtsp?.transport === transport),
        'the RTSP session was a session of /v1/sessions',
      );
    });

    t.test(`${transport}: Opus packets equal the source`, async (t) => {
      const out = path.join(server.dir, `${transport}-opus.md5`);
      const stderr = await read('music.opus', transport, [], ['-c:a', 'copy', '-f', 'framemd5', '-y', out]);
      t.equal(stderr.trim(), '', 'ffmpeg reports no errors');
      const got = parseFrameMd5(await readFile(out, 'utf8'));
      t.ok(opus.length > 100, `source has ${opus.length} packets`);
      t.same(
        got.map((f) => f.hash),
        opus.map((f) => f.hash),
        `all ${opus.length} packets equal, in order`,
      );
    });

    t.test(`${transport}: a start by Range lands on the keyframe at or before it, then every frame to the end`, async (t) => {
      const out = path.join(server.dir, `${transport}-seek.md5`);
      // -ss before -i: ffmpeg's RTSP input asks PLAY with Range: npt=2.500-; -noaccurate_seek keeps
      // every frame it receives (no trimming of its own to 2.5 s).
      const stderr = await read(
        'clip.mp4',
        transport,
        ['-ss', '2.5', '-noaccurate_seek'],
        ['-map', '0:v', '-fps_mode', 'passthrough', '-f', 'framemd5', '-y', out],
      );
      t.equal(stderr.trim(), '', 'ffmpeg reports no errors');
      const got = parseFrameMd5(await readFile(out, 'utf8'));
      // The keyframe at or before 2.5 s is the one at 2.0 s (gop 25 at 25 fps): from there on, every frame.
      const keyTimes = video.packets.filter((p) => p.key).map((p) => (p.pts * video.tb.num) / video.tb.den);
      const land = Math.max(...keyTimes.filter((k) => k <= 2.5 + 1e-9));
      t.equal(land, 2, 'the landing keyframe is at 2 s');
      const from = decoded.findIndex((f) => Math.abs(f.pts * decodedTb - land) < 0.001);
      t.same(
        got.map((f) => f.hash),
        decoded.slice(from).map((f) => f.hash),
        `the ${decoded.length - from} frames from the keyframe at 2 s to the end equal the source’s`,
      );
    });
  }
}
