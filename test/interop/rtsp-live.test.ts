// Joining a recording in progress by URL: ffmpeg pushes a looped H.264 + Opus
// clip into a record session named "livefeed"; two ffmpeg RTSP readers open
// rtsp://…/livefeed (one over UDP, one over TCP interleaved) while it records,
// and decode a contiguous run of the source from a keyframe on. Ending the
// recording ends their live relays, and with them the readers' input.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG, parseFrameMd5, startFfmpeg } from '../helpers/ffmpeg.js';
import { sourcePackets } from '../helpers/video.js';
import { cyclicRun, makeRecordSource, push, reference, senderSdp, type Reference } from '../helpers/record.js';
import { waitUntil } from '../helpers/ready.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  let src: string;
  let ref: Reference;
  let keyIndexes: number[];

  t.before(async () => {
    server = await startServer({ 'record.idleTimeoutMs': 10000 }, { rtspPort: 0 });
    src = path.join(server.dir, 'src.mp4');
    await makeRecordSource(src, 4);
    ref = await reference(src);
    const v = await sourcePackets(src, 'v');
    const byPts = [...v.packets].sort((a, b) => a.pts - b.pts);
    keyIndexes = byPts.flatMap((p, i) => (p.key ? [i] : []));
  });
  t.teardown(() => server.stop());

  const SEND_S = 9;
  /** ffmpeg's H.264 decoder's notices when a GOP's packets come without its keyframe (see ffmpeg-video.test.ts). */
  const LATE_JOIN_NOISE =
    /^\[h264 @ 0x[0-9a-f]+\] (mmco: unref short failure|co located POCs unavailable|reference picture missing during reorder|Missing reference picture, default is \d+)$|^\s*Last message repeated \d+ times$/;
  const lines = async (file: string): Promise<number> => parseFrameMd5(await readFile(file, 'utf8').catch(() => '')).length;

  t.test('rtsp://…/NAME of a recording in progress: ffmpeg over UDP and over TCP decodes the feed from a keyframe on', async (t) => {
    const sdp = await senderSdp(src, server.dir);
    const res = await fetch(`${server.url}/v1/sessions?name=livefeed`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
    const rec = (await res.json()) as ApiBody;
    t.equal(res.status, 201, 'the record session livefeed is created');
    const sender = push(src, { videoPort: rec.tracks[0].port, audioPort: rec.tracks[1].port, loop: true, seconds: SEND_S }, (SEND_S + 20) * 1000);
    t.teardown(() => sender.stop());
    // The recording is under way once packets arrive.
    await waitUntil(async () => ((await server.api('GET', `/v1/sessions/${rec.id}`)).body.tracks[0].stats?.packets ?? 0) > 50, 15000, 'the feed to arrive');

    const readers = (['udp', 'tcp'] as const).map((transport) => {
      const vOut = path.join(server.dir, `live-${transport}-v.md5`);
      const aOut = path.join(server.dir, `live-${transport}-a.md5`);
      const ff = startFfmpeg(
        [
          '-rtsp_transport',
          transport,
          '-i',
          `rtsp://127.0.0.1:${server.rtsp!.port!}/livefeed`,
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
      return { transport, vOut, aOut, ff };
    });
    // Both readers decode while ffmpeg still sends.
    await waitUntil(async () => (await Promise.all(readers.map((r) => lines(r.vOut)))).every((n) => n >= 50), 20000, 'both readers to decode 50 frames');
    t.equal(sender.child.exitCode, null, 'while the feed is still being sent');
    const listed = (await server.api<{ sessions: { live?: string; rtsp?: { transport: string } }[] }>('GET', '/v1/sessions')).body.sessions;
    t.same(
      listed
        .filter((s) => s.live === rec.id && s.rtsp !== undefined)
        .map((s) => s.rtsp!.transport)
        .sort(),
      ['tcp', 'udp'],
      'two live relays of the recording in /v1/sessions, one per transport',
    );
    const sent = await sender.done;
    t.equal(sent.code, 0, 'ffmpeg sent the looped clip');
    const del = await server.api('DELETE', `/v1/sessions/${rec.id}`);
    t.equal(del.status, 200, 'the recording ends');
    const byItself = await Promise.all(readers.map((r) => r.ff.exited(20000)));
    t.same(byItself, [true, true], 'both readers end when the recording ends (the relays’ BYEs)');
    const results = await Promise.all(readers.map((r) => r.ff.stop()));

    for (const [k, r] of readers.entries()) {
      const errors = results[k]!.stderr.split('\n').filter((l) => l.trim() !== '');
      t.same(
        errors.filter((l) => !LATE_JOIN_NOISE.test(l)),
        [],
        `${r.transport}: ffmpeg logs no errors but its decoder’s late-join notices`,
      );
      const got = parseFrameMd5(await readFile(r.vOut, 'utf8')).map((f) => f.hash);
      const match = cyclicRun(got, ref.frames);
      t.ok(got.length >= 100, `${r.transport}: decoded ${got.length} frames`);
      t.ok(keyIndexes.includes(match.start), `${r.transport}: the first frame is a keyframe of the source (frame ${match.start})`);
      t.ok(match.contiguous >= got.length - 1, `${r.transport}: every frame continues the source exactly: ${match.contiguous} of ${got.length}`);
      const opus = parseFrameMd5(await readFile(r.aOut, 'utf8')).map((f) => f.hash);
      const aRun = cyclicRun(opus, ref.opus);
      t.ok(opus.length >= 200, `${r.transport}: ${opus.length} Opus packets`);
      t.equal(aRun.contiguous, opus.length, `${r.transport}: the Opus packets continue the source exactly`);
    }
  });
}
