// ffmpeg as the client: it reads the API's SDP and decodes our packets; the
// result is compared exactly with the source.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { hasFfmpeg, NO_FFMPEG, ffmpeg, startFfmpeg, parseFrameMd5 } from '../helpers/ffmpeg.js';
import { createPaused, waitState, freePortPair } from '../helpers/play.js';
import { makeWav, wavData } from '../helpers/media.js';
import { waitUdpBound } from '../helpers/ready.js';
import { alawDecodeRef, alawRef, ulawDecodeRef, ulawRef } from '../helpers/g711-ref.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  t.before(async () => {
    server = await startServer();
  });
  t.teardown(() => server.stop());

  /** Plays `media` to an ffmpeg that writes `outArgs`; returns when the session ended and ffmpeg stopped. */
  async function playToFfmpeg(body: Record<string, unknown>, outArgs: string[], out: string): Promise<{ session: ApiBody; stderr: string }> {
    const port = await freePortPair();
    const { id, session, sdpPath } = await createPaused(server, { ...body, destination: { host: '127.0.0.1', port } });
    const ff = startFfmpeg(['-protocol_whitelist', 'file,udp,rtp', '-i', sdpPath, ...outArgs, '-y', out], 120000);
    // ffmpeg opens its socket before the first packet: wait until it is bound.
    await waitUdpBound([port]);
    const play = await server.api('PATCH', `/v1/sessions/${id}`, { state: 'playing' });
    if (play.status !== 200) throw new Error(play.text);
    await waitState(server, id, 'ended');
    // The session's RTCP BYE ends ffmpeg's input: it writes everything it holds and exits.
    const byItself = await ff.exited(20000);
    const r = await ff.stop();
    if (!byItself) throw new Error(`ffmpeg did not end on the session's BYE: ${r.stderr}`);
    return { session, stderr: r.stderr };
  }

  t.test('L16: the PCM ffmpeg decodes equals the source exactly', async (t) => {
    const wav = makeWav(44100, 2, 3);
    t.equal((await server.api('PUT', '/v1/media/l16.wav', wav)).status, 201);
    const out = path.join(server.dir, 'l16.raw');
    const { session } = await playToFfmpeg({ media: 'l16.wav' }, ['-f', 's16le'], out);
    t.equal(session.tracks[0].payloadType, 10, 'L16/44100/2 uses static payload type 10');
    const got = await readFile(out);
    const want = wavData(wav);
    t.equal(got.length, want.length, `ffmpeg decoded ${got.length} of ${want.length} bytes: all, nothing extra`);
    t.ok(got.equals(want), 'decoded PCM equals the source, byte for byte');
  });

  for (const law of ['PCMU', 'PCMA'] as const) {
    t.test(`${law}: ffmpeg's decode equals the G.711 round trip of the source`, async (t) => {
      const wav = makeWav(8000, 1, 3);
      const name = `${law}.wav`;
      t.equal((await server.api('PUT', `/v1/media/${name}`, wav)).status, 201);
      const out = path.join(server.dir, `${law}.raw`);
      await playToFfmpeg({ media: name, codec: law }, ['-f', 's16le'], out);
      const got = await readFile(out);
      const src = wavData(wav);
      t.equal(got.length, src.length, `ffmpeg decoded ${got.length} of ${src.length} bytes`);
      // (1) Exact against the G.711 round trip of the standard's tables, computed by the reference
      //     in test/helpers/g711-ref.ts (not the product's codec).
      const codes = new Uint8Array(src.length / 2);
      const ours = Buffer.alloc(src.length);
      for (let i = 0; i < codes.length; i++) {
        codes[i] = (law === 'PCMU' ? ulawRef : alawRef)(src.readInt16LE(2 * i));
        ours.writeInt16LE((law === 'PCMU' ? ulawDecodeRef : alawDecodeRef)(codes[i]!), 2 * i);
      }
      t.ok(got.equals(ours.subarray(0, got.length)), 'decoded audio equals the G.711 round trip, sample for sample');
      // (2) Against ffmpeg's own round trip: identical except where ffmpeg's encoder picks the
      //     neighbouring code for inputs on a G.711 decision boundary — each such sample differs by
      //     one quantization step, and there are exactly as many as the source has such inputs.
      const srcPath = path.join(server.mediaRoot, name);
      const fmt = law === 'PCMU' ? 'mulaw' : 'alaw';
      const ffCodes = await ffmpeg(['-i', srcPath, '-f', fmt, '-']);
      await writeFile(path.join(server.dir, `${law}.codes`), ffCodes);
      const ffDecoded = await ffmpeg(['-f', fmt, '-ar', '8000', '-ac', '1', '-i', path.join(server.dir, `${law}.codes`), '-f', 's16le', '-']);
      let disputed = 0;
      let mismatched = 0;
      let onlyAtDisputed = true;
      for (let i = 0; i < got.length / 2; i++) {
        const isDisputed = ffCodes[i] !== codes[i];
        if (isDisputed) disputed++;
        if (got.readInt16LE(2 * i) !== ffDecoded.readInt16LE(2 * i)) {
          mismatched++;
          if (!isDisputed) onlyAtDisputed = false;
        }
      }
      t.ok(onlyAtDisputed, 'every difference from ffmpeg’s round trip is at an input ffmpeg encodes off the G.711 decision levels');
      t.equal(mismatched, disputed, `${disputed} such samples of ${got.length / 2}`);
      t.ok(disputed < (got.length / 2) * 0.05, 'and they are rare');
    });
  }

  t.test('Opus: every packet ffmpeg receives equals the source packet', async (t) => {
    const src = path.join(server.dir, 'src.opus');
    await ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:duration=4',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=660:duration=4',
      '-filter_complex',
      'amerge',
      '-c:a',
      'libopus',
      '-b:a',
      '64k',
      '-y',
      src,
    ]);
    const body = await readFile(src);
    const put = await server.api('PUT', '/v1/media/music.opus', body);
    t.equal(put.status, 201, put.text);
    t.match(put.body.tracks[0], { kind: 'audio', codec: 'opus', clockRate: 48000, channels: 2 });
    const out = path.join(server.dir, 'opus.md5');
    const { session } = await playToFfmpeg({ media: 'music.opus' }, ['-c:a', 'copy', '-f', 'framemd5'], out);
    t.equal(session.tracks[0].codec, 'opus');
    const want = parseFrameMd5((await ffmpeg(['-i', src, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString());
    const got = parseFrameMd5(await readFile(out, 'utf8'));
    t.ok(want.length > 150, `source has ${want.length} packets`);
    t.equal(got.length, want.length, `ffmpeg received ${got.length} of ${want.length} packets`);
    t.same(
      got.map((f) => f.hash),
      want.slice(0, got.length).map((f) => f.hash),
      'packet checksums equal, in order',
    );
    t.same(
      got.map((f) => f.size),
      want.slice(0, got.length).map((f) => f.size),
      'packet sizes equal',
    );
  });
}
