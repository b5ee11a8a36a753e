// GStreamer as a second, independent client: udpsrc with caps from our SDP,
// rtph264depay + avdec_h264 into checksumsink (an md5 per decoded I420 frame),
// rtpmp4gdepay into a file of raw AUs and into avdec_aac. Compared with
// ffmpeg's decode of the source.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, hasGstreamer, NO_FFMPEG, ffmpeg, run, parseFrameMd5, requireSetup } from '../helpers/ffmpeg.js';
import { createPaused, waitState, freePortBlock } from '../helpers/play.js';
import { fileSizes, waitDrained, waitUdpBound } from '../helpers/ready.js';
import { hasGstElements, makeMp4, sourcePackets, type SourceStream } from '../helpers/video.js';
import { skipFile } from '../helpers/tools.js';

const ELEMENTS = [
  'udpsrc',
  'rtph264depay',
  'avdec_h264',
  'checksumsink',
  'rtpmp4gdepay',
  'avdec_aac',
  'tee',
  'queue',
  'filesink',
  'fakesink',
  'filesrc',
  'qtdemux',
  'h264parse',
];
const NO_GST = 'gst-launch-1.0 or a GStreamer plugin (good, bad, libav) is not installed: skipping';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else if (!hasGstreamer() || !hasGstElements(ELEMENTS)) {
  skipFile(NO_GST);
} else {
  let server: TestServer;
  let clipPath: string;
  let audio: SourceStream;
  /** ffmpeg's decode of the source: md5 per frame, presentation order. */
  let decoded: string[];

  t.before(async () => {
    server = await startServer();
    clipPath = path.join(server.dir, 'clip.mp4');
    await makeMp4(clipPath, { seconds: 3, size: '640x360', noise: 12, crf: 18, gop: 25, bframes: 2 });
    const put = await server.api('PUT', '/v1/media/clip.mp4', await readFile(clipPath));
    if (put.status !== 201) throw new Error(`upload failed: ${put.text}`);
    audio = await sourcePackets(clipPath, 'a');
    decoded = parseFrameMd5((await ffmpeg(['-i', clipPath, '-map', '0:v', '-fps_mode', 'passthrough', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
    // The tools (not a product test): GStreamer decodes the file like ffmpeg, so checksumsink hashes compare with
    // framemd5 (for 640x360 I420 avdec_h264's planes are tightly packed, strides 640/320, no padding).
    const r = await run(
      'gst-launch-1.0',
      ['-q', 'filesrc', `location=${clipPath}`, '!', 'qtdemux', '!', 'h264parse', '!', 'avdec_h264', '!', 'checksumsink', 'hash=md5'],
      30000,
    );
    requireSetup(r.code === 0, `gst-launch decoding the clip failed: ${r.stderr}`);
    requireSetup(JSON.stringify(checksums(r.stdout.toString())) === JSON.stringify(decoded), 'GStreamer and ffmpeg decode the clip to different frames');
  });
  t.teardown(() => server.stop());

  /** Lines "H:MM:SS.nnnnnnnnn <md5>" of checksumsink, the hashes only. */
  const checksums = (stdout: string): string[] =>
    stdout
      .split('\n')
      .map((l) => /^\d+:\d\d:\d\d\.\d+ ([0-9a-f]{32})$/.exec(l.trim())?.[1])
      .filter((h): h is string => h !== undefined);

  /** GStreamer caps of an SDP media section (what an SDP-reading client would derive). */
  function capsFromSdp(sdp: string, kind: 'video' | 'audio'): string {
    const section = sdp.split(/\r?\n(?=m=)/).find((s) => s.startsWith(`m=${kind}`))!;
    const rtpmap = /a=rtpmap:(\d+) ([\w-]+)\/(\d+)(?:\/(\d+))?/.exec(section)!;
    const fmtp = /a=fmtp:\d+ (.*)/.exec(section)![1]!.trim();
    const fields = [`application/x-rtp`, `media=${kind}`, `payload=${rtpmap[1]}`, `encoding-name=${rtpmap[2]}`, `clock-rate=${rtpmap[3]}`];
    if (rtpmap[4] !== undefined) fields.push(`encoding-params=(string)${rtpmap[4]}`);
    for (const kv of fmtp.split(';')) {
      const at = kv.indexOf('=');
      fields.push(`${kv.slice(0, at).trim()}=(string)"${kv.slice(at + 1).trim()}"`);
    }
    return fields.join(',');
  }

  t.test('H.264 and AAC over RTP to gst-launch: every frame and AU equals the source', async (t) => {
    const port = await freePortBlock(2);
    const { id, session } = await createPaused(server, { media: 'clip.mp4', destination: { host: '127.0.0.1', port } });
    const aus = path.join(server.dir, 'gst-aus.raw');
    // Receive buffers big enough for a keyframe even when gst-launch gets little CPU (tap
    // runs test files in parallel); the 212 KB default can't hold one sent as a burst.
    const udp = ['address=127.0.0.1', 'buffer-size=4194304'];
    const args = [
      '-q',
      '-e',
      'udpsrc',
      ...udp,
      `port=${port}`,
      `caps=${capsFromSdp(session.sdp, 'video')}`,
      '!',
      'rtph264depay',
      '!',
      'avdec_h264',
      '!',
      'checksumsink',
      'hash=md5',
      'udpsrc',
      ...udp,
      `port=${port + 2}`,
      `caps=${capsFromSdp(session.sdp, 'audio')}`,
      '!',
      'rtpmp4gdepay',
      '!',
      'tee',
      'name=aus',
      'aus.',
      '!',
      'queue',
      '!',
      'filesink',
      `location=${aus}`,
      'aus.',
      '!',
      'queue',
      '!',
      'avdec_aac',
      '!',
      'fakesink',
    ];
    const gst = spawn('gst-launch-1.0', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    gst.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    gst.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((resolve) => gst.on('close', resolve));
    const kill = setTimeout(() => gst.kill('SIGKILL'), 30000);
    try {
      // udpsrc binds its socket on the way to PLAYING: wait for both before the first packet.
      await waitUdpBound([port, port + 2]);
      const play = await server.api('PATCH', `/v1/sessions/${id}`, { state: 'playing' });
      t.equal(play.status, 200);
      await waitState(server, id, 'ended', 20000);
      // Until gst-launch has read every datagram and its pipeline has gone idle.
      await waitDrained(gst.pid, [port, port + 2], () => `${stdout.length} ${fileSizes([aus])}`);
      // -e: SIGINT becomes end-of-stream, so the decoder drains its last frames.
      gst.kill('SIGINT');
      const code = await closed;
      t.equal(code, 0, 'gst-launch ended cleanly');
    } finally {
      clearTimeout(kill);
      gst.kill('SIGKILL');
    }
    t.equal(stderr.trim(), '', 'GStreamer reports no errors or warnings');
    const got = checksums(stdout);
    t.equal(got.length, decoded.length, `avdec_h264 decoded ${got.length} of ${decoded.length} frames`);
    t.same(got, decoded, 'every decoded frame equals ffmpeg’s decode of the source');

    // Raw AUs out of rtpmp4gdepay: the source's, byte for byte, from the first one sent to the last.
    const raw = await readFile(aus);
    const all = await ffmpeg(['-i', clipPath, '-map', '0:a', '-c', 'copy', '-f', 'data', '-']);
    const offsets = [0];
    for (const p of audio.packets) offsets.push(offsets[offsets.length - 1]! + p.size);
    const start = offsets.findIndex((o) => o === all.length - raw.length);
    t.ok(start >= 0 && start < 4, `the AUs received are the source's from AU ${start} on`);
    t.ok(raw.equals(all.subarray(all.length - raw.length)), `${raw.length} bytes of AUs equal the source’s`);
  });
}
