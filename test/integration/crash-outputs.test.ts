// Crash recovery for every output: recording folders as a kill -9 leaves them
// (manifest still "recording", rtpdump.part ending in a torn record, a stale
// playable .part), made here with a reference rtpdump writer from packets
// ffmpeg sent; a server starting on them must rebuild Ogg, Annex B, ADTS and
// WAV from every complete record, exactly. Plus a corrupt manifest (left
// alone, the server starts) and a recording that cannot be recovered.
import t, { type Test } from 'tap';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../helpers/server.js';
import { ffmpeg, hasFfmpeg, NO_FFMPEG, parseFrameMd5 } from '../helpers/ffmpeg.js';
import { decodedFrames, makeRecordSource, UdpTap } from '../helpers/record.js';
import { readRtpdumpRef, writeRtpdumpRef } from '../helpers/rtpdump-ref.js';
import { udpQueued, waitUntil } from '../helpers/ready.js';
import { payloadFor, rtpPacket } from '../helpers/sender.js';
import { skipFile } from '../helpers/tools.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  const work = await mkdtemp(path.join(tmpdir(), 'offcast-crash-outputs-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const root = path.join(work, 'recordings');

  /** The RTP packets and SDP ffmpeg sends for `args` (one output), caught by a tap of ours, at full speed. */
  async function capture(name: string, args: string[]): Promise<{ packets: Buffer[]; sdp: string }> {
    const tap = await UdpTap.open(null, 1);
    try {
      const sdpFile = path.join(work, `${name}.sdp`);
      await ffmpeg([...args, '-f', 'rtp', `rtp://127.0.0.1:${tap.port}`, '-sdp_file', sdpFile], 30000);
      await waitUntil(() => udpQueued([tap.port]) === 0, 5000, 'the tap to read every datagram');
      await new Promise((r) => setImmediate(r));
      return { packets: tap.seen.filter((x) => x.socket === 0).map((x) => x.msg), sdp: await readFile(sdpFile, 'utf8') };
    } finally {
      tap.close();
    }
  }

  function fmtpOf(sdp: string): Record<string, string> {
    const line = /^a=fmtp:\d+ (.*)$/m.exec(sdp)?.[1]?.trim() ?? '';
    const out: Record<string, string> = {};
    for (const kv of line.split(';')) {
      const at = kv.indexOf('=');
      if (at > 0) out[kv.slice(0, at).trim()] = kv.slice(at + 1).trim();
    }
    return out;
  }

  interface Crashed {
    name: string;
    kind: 'audio' | 'video';
    codec: string;
    payloadType: number;
    clockRate: number;
    channels?: number;
    fmtp: Record<string, string>;
    ext: string;
    contentType: string;
    /** The complete records; a torn copy of one more follows them. */
    packets: Buffer[];
    torn: Buffer;
  }

  /** The folder a kill -9 leaves: manifest "recording", rtpdump.part with a torn last record, a stale playable .part. */
  async function leaveCrashed(c: Crashed): Promise<void> {
    const dir = path.join(root, c.name);
    await mkdir(dir, { recursive: true });
    const track: Record<string, unknown> = {
      index: 0,
      kind: c.kind,
      codec: c.codec,
      payloadType: c.payloadType,
      clockRate: c.clockRate,
      fmtp: c.fmtp,
      file: `track0.${c.ext}`,
      contentType: c.contentType,
      rtpdump: 'track0.rtpdump',
      packets: 0,
      bytes: 0,
      lost: 0,
      duplicates: 0,
      reordered: 0,
      late: 0,
      durationMs: 0,
    };
    if (c.channels !== undefined) track.channels = c.channels;
    await writeFile(
      path.join(dir, 'recording.json'),
      JSON.stringify({ version: 1, name: c.name, state: 'recording', createdAt: new Date().toISOString(), durationMs: 0, tracks: [track] }),
    );
    const whole = writeRtpdumpRef(
      '127.0.0.1',
      5004,
      [...c.packets, c.torn].map((data, i) => ({ offsetMs: i * 20, data })),
    );
    // The torn record: its header and part of its packet reached the disk, the rest did not.
    await writeFile(path.join(dir, 'track0.rtpdump.part'), whole.subarray(0, whole.length - Math.ceil(c.torn.length / 2)));
    await writeFile(path.join(dir, `track0.${c.ext}.part`), Buffer.from('half-written playable file, rebuilt by recovery'));
  }

  const cases: Crashed[] = [];
  /** What each recovered file must hold, checked after the restart. */
  const checks: ((t: Test, dir: string) => Promise<void>)[] = [];

  t.before(async () => {
    // Opus in Ogg.
    const opusSrc = path.join(work, 'src.opus');
    await ffmpeg(['-f', 'lavfi', '-i', "aevalsrc='0.3*sin(2*PI*(300+150*t)*t)':s=48000", '-t', '3', '-c:a', 'libopus', '-b:a', '64k', '-y', opusSrc]);
    const opus = await capture('opus', ['-i', opusSrc, '-c', 'copy']);
    const opusKeep = opus.packets.slice(0, 100);
    cases.push({
      name: 'opus',
      kind: 'audio',
      codec: 'opus',
      payloadType: 97,
      clockRate: 48000,
      channels: 1,
      fmtp: fmtpOf(opus.sdp),
      ext: 'opus',
      contentType: 'audio/ogg',
      packets: opusKeep,
      torn: opus.packets[100]!,
    });
    const opusWant = parseFrameMd5((await ffmpeg(['-i', opusSrc, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
    checks.push(async (t, dir) => {
      const got = parseFrameMd5((await ffmpeg(['-i', path.join(dir, 'track0.opus'), '-c:a', 'copy', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
      t.equal(got.length, 100, 'Ogg: the 100 complete packets, not the torn one');
      t.same(got, opusWant.slice(0, 100), 'Ogg: each equal to the source’s, in order');
    });

    // H.264 in Annex B: cut after a whole access unit (marker bit), the torn record the next AU's first packet.
    const mp4 = path.join(work, 'src.mp4');
    await makeRecordSource(mp4, 2);
    const h264 = await capture('h264', ['-i', mp4, '-map', '0:v', '-c', 'copy']);
    const marks = h264.packets.flatMap((p, i) => ((p[1]! & 0x80) !== 0 ? [i] : []));
    const cut = marks[29]! + 1; // 30 access units
    cases.push({
      name: 'h264',
      kind: 'video',
      codec: 'H264',
      payloadType: 96,
      clockRate: 90000,
      fmtp: fmtpOf(h264.sdp),
      ext: 'h264',
      contentType: 'video/h264',
      packets: h264.packets.slice(0, cut),
      torn: h264.packets[cut]!,
    });
    const frames = new Set((await decodedFrames(['-i', mp4])).hashes);
    checks.push(async (t, dir) => {
      const v = await decodedFrames(['-f', 'h264', '-i', path.join(dir, 'track0.h264')]);
      t.equal(v.stderr.trim(), '', 'Annex B: decodes without an error');
      t.equal(v.hashes.length, 30, 'Annex B: the 30 complete access units');
      t.ok(
        v.hashes.every((h) => frames.has(h)),
        'Annex B: every decoded frame is one of the source’s',
      );
    });

    // AAC in ADTS.
    const m4a = path.join(work, 'src.m4a');
    await ffmpeg(['-f', 'lavfi', '-i', "aevalsrc='0.3*sin(2*PI*(300+200*t)*t)':s=48000", '-t', '3', '-c:a', 'aac', '-b:a', '128k', '-y', m4a]);
    const aac = await capture('aac', ['-i', m4a, '-c', 'copy']);
    const aacKeep = aac.packets.slice(0, 20);
    const aus = aacKeep.reduce((n, p) => n + p.readUInt16BE(12) / 16, 0);
    cases.push({
      name: 'aac',
      kind: 'audio',
      codec: 'MPEG4-GENERIC',
      payloadType: 97,
      clockRate: 48000,
      channels: 1,
      fmtp: fmtpOf(aac.sdp),
      ext: 'aac',
      contentType: 'audio/aac',
      packets: aacKeep,
      torn: aac.packets[20]!,
    });
    const adts = path.join(work, 'src.adts');
    await ffmpeg(['-i', m4a, '-c:a', 'copy', '-f', 'adts', '-y', adts]);
    const aacWant = parseFrameMd5((await ffmpeg(['-f', 'aac', '-i', adts, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
    checks.push(async (t, dir) => {
      const got = parseFrameMd5((await ffmpeg(['-f', 'aac', '-i', path.join(dir, 'track0.aac'), '-c:a', 'copy', '-f', 'framemd5', '-'])).toString()).map(
        (f) => f.hash,
      );
      t.equal(got.length, aus, `ADTS: the ${aus} AUs of the complete records`);
      t.same(got, aacWant.slice(0, aus), 'ADTS: each equal to the source’s, in order');
    });

    // PCMU in WAV: packets of our own.
    const pcmu = Array.from({ length: 50 }, (_, i) => rtpPacket(0, 7 + i, i * 160, 0x1234, payloadFor(i, 160)));
    cases.push({
      name: 'pcmu',
      kind: 'audio',
      codec: 'PCMU',
      payloadType: 0,
      clockRate: 8000,
      fmtp: {},
      ext: 'wav',
      contentType: 'audio/wav',
      packets: pcmu.slice(0, 49),
      torn: pcmu[49]!,
    });
    const codes = Buffer.concat(pcmu.slice(0, 49).map((p) => p.subarray(12)));
    await writeFile(path.join(work, 'codes.ulaw'), codes);
    const pcmWant = await ffmpeg(['-f', 'mulaw', '-ar', '8000', '-ac', '1', '-i', path.join(work, 'codes.ulaw'), '-f', 's16le', '-']);
    checks.push(async (t, dir) => {
      const got = await ffmpeg(['-i', path.join(dir, 'track0.wav'), '-f', 's16le', '-']);
      t.equal(got.length, 49 * 160 * 2, 'WAV: the samples of the 49 complete packets');
      t.ok(got.equals(pcmWant), 'WAV: sample for sample');
    });

    for (const c of cases) await leaveCrashed(c);
    // A manifest torn mid-write: not an offcast manifest, so recovery must leave the folder alone.
    await mkdir(path.join(root, 'torn-manifest'));
    await writeFile(path.join(root, 'torn-manifest', 'recording.json'), '{"version":1,"name":"torn-manifest","state":"recor');
    await writeFile(
      path.join(root, 'torn-manifest', 'track0.rtpdump.part'),
      writeRtpdumpRef(
        '127.0.0.1',
        5004,
        pcmu.map((data, i) => ({ offsetMs: i * 20, data })),
      ),
    );
    // One recovery cannot finish: its playable file's name is taken by a folder with something in it.
    await leaveCrashed({ ...cases[cases.length - 1]!, name: 'blocked' });
    await mkdir(path.join(root, 'blocked', 'track0.wav', 'inside'), { recursive: true });
  });

  t.test('a server starting on crashed folders rebuilds every output from the complete records', async (t) => {
    const server = await startServer({ recordingsRoot: root });
    t.teardown(() => server.stop());
    t.same(server.recovered.map((r) => r.name).sort(), ['aac', 'h264', 'opus', 'pcmu'], 'the four crashed recordings are recovered');
    for (const [k, c] of cases.entries()) {
      const dir = path.join(root, c.name);
      const m = (await server.api('GET', `/v1/recordings/${c.name}`)).body;
      t.match(m, { state: 'finished', recovered: true, reason: 'recovered' }, `${c.name}: finished, recovered`);
      t.equal(m.tracks?.[0]?.packets, c.packets.length, `${c.name}: the manifest counts the ${c.packets.length} complete records`);
      const files = await readdir(dir);
      t.notOk(
        files.some((f) => f.endsWith('.part')),
        `${c.name}: no temporary names left (${files.join(', ')})`,
      );
      const dump = readRtpdumpRef(await readFile(path.join(dir, 'track0.rtpdump')));
      t.notOk(dump.torn, `${c.name}: the rtpdump is cut back to its last complete record`);
      t.same(
        dump.records.map((r) => r.data.toString('hex')),
        c.packets.map((p) => p.toString('hex')),
        `${c.name}: holding every complete packet, unchanged`,
      );
      await checks[k]!(t, dir);
    }
  });

  t.test('a corrupt manifest is left alone; a recording that cannot be recovered stays unfinished; the server serves', async (t) => {
    const server = await startServer({ recordingsRoot: root });
    t.teardown(() => server.stop());
    t.equal((await server.api('GET', '/healthz')).status, 200, 'the server is up');
    t.same(server.recovered, [], 'nothing more to recover (the four were finished the first time)');
    const torn = await readdir(path.join(root, 'torn-manifest'));
    t.same(torn.sort(), ['recording.json', 'track0.rtpdump.part'], 'the torn manifest’s folder is untouched: nothing deleted');
    t.equal(await readFile(path.join(root, 'torn-manifest', 'recording.json'), 'utf8'), '{"version":1,"name":"torn-manifest","state":"recor', 'nor rewritten');
    const tornView = await server.api('GET', '/v1/recordings/torn-manifest');
    t.ok(tornView.status >= 400 && tornView.status < 500, `GET it: ${tornView.status} (${tornView.text.slice(0, 120)})`);
    const blocked = await readFile(path.join(root, 'blocked', 'recording.json'), 'utf8');
    t.match(JSON.parse(blocked), { state: 'recording' }, 'the blocked recording is still marked unfinished (tried again at the next start)');
    t.ok((await readdir(path.join(root, 'blocked'))).includes('track0.rtpdump.part'), 'its packets are kept');
    const view = await server.api('GET', '/v1/recordings/blocked');
    t.equal(view.status, 200, view.text.slice(0, 200));
    t.equal(view.body?.state, 'recording', 'its view says it is unfinished');
    const list = await server.api('GET', '/v1/recordings');
    t.equal(list.status, 200, 'the list still answers');
    const { recoverRecordings } = await import('../../offload/record/recover.js');
    const again = await recoverRecordings(root);
    t.same(again.recovered, [], 'recovery run again recovers nothing new');
    t.same(
      again.errors.map((e) => e.name),
      ['blocked'],
      'and names the one it could not recover',
    );
    t.match(again.errors[0]?.error ?? '', /track0\.wav|EISDIR|ENOTEMPTY|EEXIST|directory/i, `with the reason (${again.errors[0]?.error})`);
  });
}
