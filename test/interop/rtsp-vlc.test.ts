// VLC as an RTSP client, headless (cvlc, as a non-root user: VLC refuses root).
// Debian's VLC (3.0.24, vlc-bin + vlc-plugin-base) is built --disable-live555:
// it has no RTSP client. rtsp:// goes to its SAT>IP and Real RTSP modules,
// which serve only those servers, and VLC says "no access modules matched".
// This file checks that this is what happens (so the README's note stays true),
// and, with a VLC that has the live555 module, that it reads our stream: the
// frames it writes with --sout are frames of the source.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmod, readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG, ffmpeg, run, parseFrameMd5 } from '../helpers/ffmpeg.js';
import { makeMp4 } from '../helpers/video.js';
import { skipFile } from '../helpers/tools.js';

const hasVlc = spawnSync('sh', ['-c', 'command -v cvlc'], { stdio: 'ignore' }).status === 0;
spawnSync('cvlc', ['--version'], { stdio: 'ignore', env: { ...process.env, HOME: '/tmp' } }).status === 0 || spawnSync('which', ['cvlc']).status === 0;
const NO_VLC = 'cvlc is not installed (CI installs vlc-bin and vlc-plugin-base with apt-get): skipping';

/** cvlc as a user VLC accepts (nobody when we are root). */
function cvlc(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const root = process.getuid?.() === 0;
  return root ? run('runuser', ['-u', 'nobody', '--', 'cvlc', ...args], timeoutMs) : run('cvlc', args, timeoutMs);
}

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else if (!hasVlc) {
  skipFile(NO_VLC);
} else {
  let server: TestServer;
  let clipPath: string;
  let decoded: string[];

  t.before(async () => {
    server = await startServer({}, { rtspPort: 0 });
    clipPath = path.join(server.dir, 'clip.mp4');
    await makeMp4(clipPath, { seconds: 3, size: '320x240', noise: 4, crf: 23, gop: 25, bframes: 2 });
    const put = await server.api('PUT', '/v1/media/clip.mp4', await readFile(clipPath));
    if (put.status !== 201) throw new Error(`upload failed: ${put.text}`);
    decoded = parseFrameMd5((await ffmpeg(['-i', clipPath, '-map', '0:v', '-fps_mode', 'passthrough', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
    // The output folder must be writable by the user VLC runs as.
    await chmod(server.dir, 0o777);
  });
  t.teardown(() => server.stop());

  t.test('cvlc rtsp://…: this VLC either has no RTSP client (Debian: no live555), or receives frames of the source', async (t) => {
    const modules = (await cvlc(['--list'], 30000)).stdout.toString();
    const live555 = /^\s*live555\s/m.test(modules);
    const out = path.join(server.dir, 'vlc.ts');
    const r = await cvlc(
      [
        '-vv',
        '--no-audio',
        '--play-and-exit',
        '--run-time=15',
        `rtsp://127.0.0.1:${server.rtsp!.port!}/clip.mp4`,
        '--sout',
        `#std{access=file,mux=ts,dst=${out}}`,
      ],
      40000,
    );
    if (!live555) {
      t.comment('this VLC has no live555 module: it cannot open rtsp:// URLs (README: RTSP, "VLC")');
      t.match(r.stderr, /no access modules matched/, 'VLC finds no module for rtsp://');
      t.match(r.stderr, /only real\/helix rtsp servers supported/, 'its Real RTSP module talked to us and declined');
      t.notMatch(modules, /^\s*live555\s/m, 'no live555 module is listed');
      return;
    }
    const frames = parseFrameMd5((await ffmpeg(['-i', out, '-map', '0:v', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
    t.ok(frames.length >= decoded.length / 2, `VLC wrote ${frames.length} frames`);
    const source = new Set(decoded);
    t.ok(
      frames.every((h) => source.has(h)),
      'every frame VLC wrote is a frame of the source',
    );
  });
}
