// Publishing by URL: ffmpeg pushes an MP4 (H.264 with B-frames + AAC) with
// `-f rtsp` (ANNOUNCE, SETUP mode=record, RECORD, TEARDOWN) over UDP and over
// TCP interleaved. Each creates a record session named by the URL; while it is
// published, a second ffmpeg reads the same URL and decodes a run of the
// source from a keyframe on. When the publisher is done (its TEARDOWN), the
// recording is finished and holds every frame of the source exactly:
// decoded frames by framemd5, AAC packets by their ADTS framemd5, both
// computed by ffmpeg from the source (the independent reference).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { randomPortBlock, startServer, type TestServer } from '../helpers/server.js';
import { ffmpeg, hasFfmpeg, NO_FFMPEG, parseFrameMd5, requireSetup, startFfmpeg } from '../helpers/ffmpeg.js';
import { sourcePackets } from '../helpers/video.js';
import { commonPrefix, cyclicRun, decodedFrames, downloadTrack, makeRecordSource } from '../helpers/record.js';
import { waitUntil } from '../helpers/ready.js';
import { skipFile } from '../helpers/tools.js';

/** ffmpeg's H.264 decoder's notices when a GOP's packets come without its keyframe (see rtsp-live.test.ts). */
const LATE_JOIN_NOISE =
  /^\[h264 @ 0x[0-9a-f]+\] (mmco: unref short failure|co located POCs unavailable|reference picture missing during reorder|Missing reference picture, default is \d+)$|^\s*Last message repeated \d+ times$/;

interface Listed {
  id: string;
  mode: string;
  name?: string;
  state: string;
  rtsp?: { session: string; transport: string };
  tracks: { stats?: { packets: number } }[];
}

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  let src: string;
  let frames: string[];
  let aac: string[];
  let keyIndexes: number[];
  // Long enough for the reader to join and decode on a loaded machine while the publisher still sends.
  const SECONDS = 8;

  t.before(async () => {
    server = await startServer({ 'record.idleTimeoutMs': 10000 }, { rtspPort: 0 });
    src = path.join(server.dir, 'src.mp4');
    await makeRecordSource(src, SECONDS, 'aac');
    frames = (await decodedFrames(['-i', src])).hashes;
    const adts = path.join(server.dir, 'src.adts');
    await ffmpeg(['-i', src, '-map', '0:a', '-c:a', 'copy', '-f', 'adts', '-y', adts]);
    aac = parseFrameMd5((await ffmpeg(['-f', 'aac', '-i', adts, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
    const v = await sourcePackets(src, 'v');
    requireSetup(
      v.packets.some((p, i) => i > 0 && p.pts < v.packets[i - 1]!.pts),
      'the source has B-frames (presentation order differs from decode order)',
    );
    const byPts = [...v.packets].sort((a, b) => a.pts - b.pts);
    keyIndexes = byPts.flatMap((p, i) => (p.key ? [i] : []));
  });
  t.teardown(() => server.stop());

  const lines = async (file: string): Promise<number> => parseFrameMd5(await readFile(file, 'utf8').catch(() => '')).length;

  for (const transport of ['udp', 'tcp'] as const) {
    t.test(`ffmpeg -f rtsp -rtsp_transport ${transport}: a record session named by the URL, every frame exact; a reader joins it live`, async (t) => {
      const name = `cam-${transport}`;
      const url = `rtsp://127.0.0.1:${server.rtsp!.port!}/${name}`;
      // ffmpeg's UDP ports from a block of their own: from its default 5000 up, it logs every port another program holds.
      const ports = (): string[] => {
        const base = randomPortBlock(100);
        return ['-min_port', String(base), '-max_port', String(base + 99)];
      };
      const publisher = startFfmpeg(['-re', '-i', src, '-c', 'copy', '-f', 'rtsp', '-rtsp_transport', transport, ...ports(), url], (SECONDS + 30) * 1000);
      t.teardown(() => publisher.stop());
      const listed = async (): Promise<Listed | undefined> =>
        (await server.api<{ sessions: Listed[] }>('GET', '/v1/sessions')).body.sessions.find((s) => s.mode === 'record' && s.name === name);
      await waitUntil(async () => ((await listed())?.tracks[0]?.stats?.packets ?? 0) > 20, 20000, 'the published feed to arrive');
      const session = (await listed())!;
      t.equal(session.rtsp?.transport, transport, `the record session is listed with its RTSP session (${transport})`);

      // A second client reads the same path while it is published.
      const vOut = path.join(server.dir, `reader-${transport}.md5`);
      const reader = startFfmpeg(
        ['-rtsp_transport', transport, ...ports(), '-i', url, '-map', '0:v', '-fps_mode', 'passthrough', '-flush_packets', '1', '-f', 'framemd5', '-y', vOut],
        (SECONDS + 30) * 1000,
      );
      t.teardown(() => reader.stop());
      await waitUntil(async () => (await lines(vOut)) >= 25 || publisher.child.exitCode !== null, 20000, 'the reader to decode 25 frames');
      t.ok((await lines(vOut)) >= 25, 'the reader decodes while the feed is published');

      const sent = await publisher.done;
      t.equal(sent.code, 0, 'ffmpeg published the whole file');
      t.equal(sent.stderr.trim(), '', 'and reported no errors');
      // ffmpeg sends its TEARDOWN without waiting for the answer: the recording is finalized meanwhile.
      await waitUntil(async () => (await server.api('GET', `/v1/sessions/${session.id}`)).body.state !== 'recording', 20000, 'the recording to end');
      await waitUntil(async () => (await server.api('GET', `/v1/sessions/${session.id}`)).body.state !== 'finishing', 20000, 'the recording to be final');
      const view = (await server.api('GET', `/v1/sessions/${session.id}`)).body;
      t.equal(view.state, 'ended', 'the record session ended with the publisher’s TEARDOWN');
      t.equal(view.reason, 'teardown');
      t.equal(view.recording.state, 'finished');
      t.ok(await reader.exited(20000), 'the reader ends when the recording ends');
      const read = await reader.stop();
      t.same(
        read.stderr
          .split('\n')
          .filter((l) => l.trim() !== '')
          .filter((l) => !LATE_JOIN_NOISE.test(l)),
        [],
        'the reader logs no errors but its decoder’s late-join notices',
      );
      const live = parseFrameMd5(await readFile(vOut, 'utf8')).map((f) => f.hash);
      const run = cyclicRun(live, frames);
      t.ok(keyIndexes.includes(run.start), `the reader’s first frame is a keyframe of the source (frame ${run.start})`);
      t.ok(run.contiguous >= live.length - 1 && live.length >= 25, `its ${live.length} frames continue the source exactly (${run.contiguous})`);

      const h264 = path.join(server.dir, `${name}.h264`);
      t.equal(await downloadTrack(server, name, 0, h264), 'video/h264', 'track 0: H.264');
      const v = await decodedFrames(['-f', 'h264', '-i', h264]);
      t.equal(v.stderr.trim(), '', 'the recorded H.264 decodes without an error');
      t.equal(v.hashes.length, frames.length, `all ${frames.length} frames of the source recorded`);
      t.equal(commonPrefix(v.hashes, frames), frames.length, 'each equal to the source’s, in order');
      const adts = path.join(server.dir, `${name}.aac`);
      t.equal(await downloadTrack(server, name, 1, adts), 'audio/aac', 'track 1: AAC as ADTS');
      const got = parseFrameMd5((await ffmpeg(['-f', 'aac', '-i', adts, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
      // ffmpeg's RTP muxer never flushes the last AUs it aggregates (see NOTES): a few may be missing at the end.
      t.ok(got.length >= aac.length - 8, `${got.length} of the source's ${aac.length} AAC packets recorded`);
      t.equal(commonPrefix(got, aac), got.length, 'each equal to the source’s (ADTS with ADTS), in order');
      t.same(
        view.tracks.map((x: { stats?: { drops: object } }) => x.stats?.drops ?? {}),
        [{}, {}],
        'nothing the publisher sent was dropped',
      );
    });
  }
}
