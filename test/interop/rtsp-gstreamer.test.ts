// GStreamer's rtspsrc as an RTSP client, over UDP and over TCP interleaved:
// avdec_h264 into checksumsink (an md5 per decoded I420 frame) compared with
// ffmpeg's decode of the source, and rtpmp4gdepay's raw AUs with the source's.
// rtspsrc ends by itself: the session's BYEs are its end of stream, then it
// pauses and tears the session down (both answered 200).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, hasGstreamer, NO_FFMPEG, ffmpeg, run, parseFrameMd5, requireSetup } from '../helpers/ffmpeg.js';
import { hasGstElements, makeMp4, sourcePackets, type SourceStream } from '../helpers/video.js';
import { skipFile } from '../helpers/tools.js';

const ELEMENTS = ['rtspsrc', 'rtph264depay', 'avdec_h264', 'checksumsink', 'rtpmp4gdepay', 'filesink', 'filesrc', 'qtdemux', 'h264parse'];
const NO_GST = 'gst-launch-1.0 or a GStreamer plugin (good, bad, libav) is not installed: skipping';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else if (!hasGstreamer() || !hasGstElements(ELEMENTS)) {
  skipFile(NO_GST);
} else {
  let server: TestServer;
  let clipPath: string;
  let audio: SourceStream;
  let decoded: string[];
  const teardowns: { id: string; why: string }[] = [];
  const closes: string[] = [];

  t.before(async () => {
    server = await startServer({}, { rtspPort: 0 });
    server.rtsp!.reader.onTeardown = (id, why) => teardowns.push({ id, why });
    // Why each RTSP connection closed, as the listener says it (shown when GStreamer reports an error).
    server.offload.on('rtsp.closed', (_worker, d) => closes.push(d.reason));
    clipPath = path.join(server.dir, 'clip.mp4');
    await makeMp4(clipPath, { seconds: 3, size: '640x360', noise: 12, crf: 18, gop: 25, bframes: 2 });
    const put = await server.api('PUT', '/v1/media/clip.mp4', await readFile(clipPath));
    if (put.status !== 201) throw new Error(`upload failed: ${put.text}`);
    audio = await sourcePackets(clipPath, 'a');
    decoded = parseFrameMd5((await ffmpeg(['-i', clipPath, '-map', '0:v', '-fps_mode', 'passthrough', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
    // The tools (not a product test): GStreamer decodes the file like ffmpeg (640x360 I420: planes tightly packed).
    const r = await run(
      'gst-launch-1.0',
      ['-q', 'filesrc', `location=${clipPath}`, '!', 'qtdemux', '!', 'h264parse', '!', 'avdec_h264', '!', 'checksumsink', 'hash=md5'],
      30000,
    );
    requireSetup(r.code === 0, `gst-launch decoding the clip failed: ${r.stderr}`);
    requireSetup(JSON.stringify(checksums(r.stdout.toString())) === JSON.stringify(decoded), 'GStreamer and ffmpeg decode the clip to different frames');
  });
  t.teardown(() => server.stop());

  const checksums = (stdout: string): string[] =>
    stdout
      .split('\n')
      .map((l) => /^\d+:\d\d:\d\d\.\d+ ([0-9a-f]{32})$/.exec(l.trim())?.[1])
      .filter((h): h is string => h !== undefined);

  for (const protocol of ['udp', 'tcp'] as const) {
    t.test(`rtspsrc protocols=${protocol}: every decoded frame and every AU equals the source`, async (t) => {
      const aus = path.join(server.dir, `gst-${protocol}-aus.raw`);
      const before = teardowns.length;
      const r = await run(
        'gst-launch-1.0',
        [
          '-q',
          'rtspsrc',
          `location=rtsp://127.0.0.1:${server.rtsp!.port!}/clip.mp4`,
          `protocols=${protocol}`,
          // A jitter buffer as deep as a keyframe's burst takes on a loaded machine, and receive
          // buffers that hold one when gst-launch gets little CPU (as gstreamer.test.ts's udpsrc).
          'latency=500',
          'udp-buffer-size=4194304',
          'name=src',
          'src.',
          '!',
          'rtph264depay',
          '!',
          'avdec_h264',
          '!',
          'checksumsink',
          'hash=md5',
          'src.',
          '!',
          'rtpmp4gdepay',
          '!',
          'filesink',
          `location=${aus}`,
        ],
        45000,
      );
      t.equal(r.code, 0, 'gst-launch ended by itself, cleanly');
      t.equal(r.stderr.trim(), '', `GStreamer reports no errors or warnings (connections closed so far: ${closes.join('; ') || 'none'})`);
      const got = checksums(r.stdout.toString());
      t.same(got, decoded, `all ${decoded.length} decoded frames equal ffmpeg’s decode of the source`);
      const raw = await readFile(aus);
      const all = await ffmpeg(['-i', clipPath, '-map', '0:a', '-c', 'copy', '-f', 'data', '-']);
      const offsets = [0];
      for (const p of audio.packets) offsets.push(offsets[offsets.length - 1]! + p.size);
      const start = offsets.findIndex((o) => o === all.length - raw.length);
      t.ok(start >= 0 && start < 4, `the AUs received are the source's from AU ${start} on`);
      t.ok(raw.equals(all.subarray(all.length - raw.length)), `${raw.length} bytes of AUs equal the source’s`);
      t.same(
        teardowns.slice(before).map((d) => d.why),
        ['ended', 'teardown'],
        'the media ended, then rtspsrc tore the session down',
      );
    });
  }
}
