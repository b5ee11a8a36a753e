// A disk error ends the recording that hit it (state failed, with the reason);
// the server and its other sessions go on. The full disk is a tiny tmpfs,
// which needs root to mount: elsewhere the test says so and skips.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../helpers/server.js';
import { TestSender, rtpPacket, payloadFor, sleep } from '../helpers/sender.js';
import { RtpSink } from '../helpers/rtp.js';
import { makeWav } from '../helpers/media.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

async function mountTinyDisk(): Promise<string | null> {
  const dir = await mkdtemp(path.join(tmpdir(), 'offcast-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160k', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    await rm(dir, { recursive: true, force: true });
    return null;
  }
}

const disk = await mountTinyDisk();
if (disk === null) {
  skipFile('cannot mount a tmpfs (needs root): skipping the disk-full test');
} else {
  t.teardown(async () => {
    try {
      execFileSync('umount', [disk], { stdio: 'ignore' });
    } catch {
      // busy or gone
    }
    await rm(disk, { recursive: true, force: true });
  });

  t.test('a full disk fails that recording only', async (t) => {
    const server = await startServer({ recordingsRoot: disk, 'record.flushMs': 100 });
    t.teardown(() => server.stop());
    const track = { kind: 'audio', codec: 'L16', payloadType: 96, clockRate: 48000, channels: 2 };
    const big = await server.api('POST', '/v1/sessions', { mode: 'record', name: 'filler', tracks: [track] });
    t.equal(big.status, 201, big.text);
    const quiet = await server.api('POST', '/v1/sessions', {
      mode: 'record',
      name: 'quiet',
      tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
    });
    t.equal(quiet.status, 201, quiet.text);
    // A play session keeps streaming through it all.
    t.equal((await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 2))).status, 201);
    const sink = await RtpSink.open();
    t.teardown(() => sink.close());
    const play = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', loop: true, destination: { host: '127.0.0.1', port: sink.port } });
    t.equal(play.status, 201, play.text);

    const tx = await TestSender.open();
    t.teardown(() => tx.close());
    // ~400 KB of L16 (rtpdump + WAV twice that) into a 160 KB disk.
    let view!: ApiBody;
    for (let i = 0; i < 400; i++) {
      await tx.send(rtpPacket(96, i, i * 240, 1, payloadFor(i, 960)), big.body.tracks[0].port);
      if (i % 20 === 19) {
        await sleep(30);
        view = (await server.api('GET', `/v1/sessions/${big.body.id}`)).body;
        if (view.state === 'failed') break;
      }
    }
    for (let k = 0; k < 50 && view.state !== 'failed'; k++) {
      await sleep(100);
      view = (await server.api('GET', `/v1/sessions/${big.body.id}`)).body;
    }
    t.equal(view.state, 'failed', 'the recording that hit the full disk failed');
    t.match(view.error, /disk error: .*(ENOSPC|no space)/i, `with the reason (${view.error})`);
    const other = (await server.api('GET', `/v1/sessions/${quiet.body.id}`)).body;
    t.equal(other.state, 'recording', 'the other recording goes on');
    const before = sink.packets.length;
    await sleep(300);
    t.ok(sink.packets.length > before + 5, 'the play session keeps sending');
    t.equal((await server.api('GET', '/healthz')).status, 200, 'the server is up');
    const del = await server.api('DELETE', `/v1/sessions/${big.body.id}`);
    t.equal(del.status, 200);
    t.equal(del.body.recording.state, 'failed');
  });
}
