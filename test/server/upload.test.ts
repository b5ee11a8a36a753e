// Uploads as an attacker or a careless client sends them, over real HTTP:
// crafted and corrupt media refused at upload (422, nothing stored), media
// probed off the HTTP thread, reserved names, concurrent uploads of one name,
// and temp files a crash left behind.
import net from 'node:net';
import { readdir, readFile, writeFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig } from '../../config/index.js';
import { buildServer } from '../../server/app.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import type { ApiBody } from '../helpers/apiTypes.js';

const OPUS_FIXTURE = new URL('../fixtures/audio/sine-mono-2s.opus', import.meta.url);
const H264_FIXTURE = new URL('../fixtures/h264/baseline.h264', import.meta.url);

let server: TestServer;
t.before(async () => {
  // Room for the concurrent-upload test's 8 at once (limits.uploads is 4 by default).
  server = await startServer({ 'limits.uploads': 16 });
});
t.teardown(() => server?.stop());

/** Files in the media folder, dot-files (upload temp files) included. */
async function mediaDir(): Promise<string[]> {
  return (await readdir(server.mediaRoot)).sort();
}

function isRefused(t: Test, res: { status: number; body: ApiBody; text: string }, status: number, code: string, what: string): void {
  t.equal(res.status, status, `${what}: ${status} (${res.text.slice(0, 300)})`);
  t.equal(res.body?.code, code, `${what}: ${code}`);
}

// --- media built byte by byte (independent of the readers under test) ------------

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function box(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([u32be(8 + body.length), Buffer.from(type, 'latin1'), body]);
}

function fullBox(type: string, version: number, flags: number, ...parts: Buffer[]): Buffer {
  return box(type, u32be(((version & 0xff) << 24) | (flags & 0xffffff)), ...parts);
}

/** An MPEG-4 descriptor (ISO 14496-1): tag, one-byte length (bodies here are < 128 bytes). */
function descriptor(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag, body.length]), body]);
}

/**
 * An AAC-LC .m4a (44.1 kHz stereo) whose one track declares `count` samples:
 * constant size `sampleSize` in one chunk when sampleSize > 0, else a size table
 * of `sizes`. The mdat holds `mdatBytes` zero bytes.
 */
function makeM4a(o: { count: number; sampleSize: number; sizes?: number[]; mdatBytes: number }): Buffer {
  const asc = Buffer.from([0x12, 0x10]); // AAC-LC, 44100 Hz, 2 channels
  const dcd = descriptor(4, Buffer.concat([Buffer.from([0x40, 0x15, 0, 0, 0]), u32be(128000), u32be(128000), descriptor(5, asc)]));
  const esd = descriptor(3, Buffer.concat([Buffer.from([0, 1, 0]), dcd, descriptor(6, Buffer.from([2]))]));
  const esds = fullBox('esds', 0, 0, esd);
  const mp4a = box(
    'mp4a',
    Buffer.alloc(6), // reserved
    Buffer.from([0, 1]), // data_reference_index
    Buffer.alloc(8), // reserved
    Buffer.from([0, 2, 0, 16]), // channel_count 2, sample_size 16
    Buffer.alloc(4), // pre_defined, reserved
    u32be(44100 << 16),
    esds,
  );
  const stsd = fullBox('stsd', 0, 0, u32be(1), mp4a);
  const stts = fullBox('stts', 0, 0, u32be(1), u32be(o.count), u32be(1024));
  const stsc = fullBox('stsc', 0, 0, u32be(1), u32be(1), u32be(o.count), u32be(1));
  const sizes = o.sizes ?? [];
  const stsz = fullBox('stsz', 0, 0, u32be(o.sampleSize), u32be(o.count), ...(o.sampleSize === 0 ? sizes.map(u32be) : []));
  const ftyp = box('ftyp', Buffer.from('M4A '), u32be(0), Buffer.from('M4A mp42isom'));
  const build = (chunkOffset: number): Buffer => {
    const stco = fullBox('stco', 0, 0, u32be(1), u32be(chunkOffset));
    const stbl = box('stbl', stsd, stts, stsc, stsz, stco);
    const minf = box('minf', fullBox('smhd', 0, 0, Buffer.alloc(4)), stbl);
    const mdhd = fullBox('mdhd', 0, 0, u32be(0), u32be(0), u32be(44100), u32be(o.count * 1024), Buffer.from([0x55, 0xc4, 0, 0]));
    const hdlr = fullBox('hdlr', 0, 0, u32be(0), Buffer.from('soun'), Buffer.alloc(12), Buffer.from('sound\0'));
    const mdia = box('mdia', mdhd, hdlr, minf);
    const tkhd = fullBox(
      'tkhd',
      0,
      7,
      u32be(0),
      u32be(0),
      u32be(1),
      u32be(0),
      u32be(0),
      Buffer.alloc(8),
      Buffer.alloc(4),
      Buffer.from([1, 0, 0, 0]),
      Buffer.alloc(36),
      u32be(0),
      u32be(0),
    );
    const trak = box('trak', tkhd, mdia);
    const mvhd = fullBox(
      'mvhd',
      0,
      0,
      u32be(0),
      u32be(0),
      u32be(1000),
      u32be(0),
      u32be(0x10000),
      Buffer.from([1, 0]),
      Buffer.alloc(10),
      Buffer.alloc(36),
      Buffer.alloc(24),
      u32be(2),
    );
    return box('moov', mvhd, trak);
  };
  const moovSize = build(0).length;
  const moov = build(ftyp.length + moovSize + 8);
  const mdatHeader = Buffer.concat([u32be(8 + o.mdatBytes), Buffer.from('mdat')]);
  return Buffer.concat([ftyp, moov, mdatHeader, Buffer.alloc(o.mdatBytes)]);
}

/** The Ogg page CRC (RFC 3533: polynomial 0x04c11db7, no reflection, init 0). */
function oggCrc(page: Buffer): number {
  let crc = 0;
  for (const byte of page) {
    crc ^= byte << 24;
    for (let k = 0; k < 8; k++) crc = crc & 0x80000000 ? ((crc << 1) ^ 0x04c11db7) >>> 0 : (crc << 1) >>> 0;
  }
  return crc >>> 0;
}

/** The pages of an Ogg file (offset and length of each), walked from their headers. */
function oggPages(file: Buffer): { at: number; length: number }[] {
  const pages: { at: number; length: number }[] = [];
  let at = 0;
  while (at + 27 <= file.length) {
    if (file.toString('latin1', at, at + 4) !== 'OggS') throw new Error(`no page at ${at}`);
    const segments = file[at + 26]!;
    let length = 27 + segments;
    for (let i = 0; i < segments; i++) length += file[at + 27 + i]!;
    pages.push({ at, length });
    at += length;
  }
  return pages;
}

/** A copy of `file` with page `index`'s granule position set, its CRC recomputed. */
function withGranule(file: Buffer, index: number, granule: bigint): Buffer {
  const out = Buffer.from(file);
  const p = oggPages(out)[index]!;
  const page = out.subarray(p.at, p.at + p.length);
  page.writeBigInt64LE(granule, 6);
  page.writeUInt32LE(0, 22);
  page.writeUInt32LE(oggCrc(page), 22);
  return out;
}

// --- tests --------------------------------------------------------------------------

t.test('a crafted MP4 (millions of 1-byte samples in one chunk) is refused at once, and /healthz answers meanwhile', async (t) => {
  // 5M constant-size samples: 20 bytes of stsz that a parser expands per sample.
  const count = 5_000_000;
  const m4a = makeM4a({ count, sampleSize: 1, mdatBytes: count });
  const before = await mediaDir();
  let polling = true;
  let slowest = 0;
  let answered = 0;
  const poll = (async () => {
    while (polling) {
      const started = performance.now();
      const res = await fetch(`${server.url}/healthz`);
      await res.text();
      if (res.status === 200) answered++;
      slowest = Math.max(slowest, performance.now() - started);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const started = performance.now();
  const res = await server.api('PUT', '/v1/media/crafted.m4a', m4a);
  const tookMs = performance.now() - started;
  polling = false;
  await poll;
  isRefused(t, res, 422, 'OFFCAST_CORRUPT_MEDIA', 'crafted m4a');
  t.match(res.body?.message, /samples/, `the message names the samples (${res.body?.message})`);
  t.ok(tookMs < 5000, `refused in ${Math.round(tookMs)} ms`);
  t.ok(answered > 0, `/healthz answered ${answered} times during the upload`);
  t.ok(slowest < 1000, `/healthz never waited a second (slowest ${Math.round(slowest)} ms)`);
  t.same(await mediaDir(), before, 'nothing stored');
});

t.test('a well-formed m4a made by the same builder is accepted (the builder is sound)', async (t) => {
  // 20 silent AAC-LC frames: a real (if quiet) file, so the refusals above are about the counts.
  const frame = Buffer.from([0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c]);
  const count = 20;
  const m4a = makeM4a({ count, sampleSize: 0, sizes: new Array<number>(count).fill(frame.length), mdatBytes: 0 });
  const withData = Buffer.concat([
    m4a.subarray(0, m4a.length - 8),
    Buffer.concat([u32be(8 + count * frame.length), Buffer.from('mdat')]),
    ...new Array<Buffer>(count).fill(frame),
  ]);
  const res = await server.api('PUT', '/v1/media/small.m4a', withData);
  t.equal(res.status, 201, `stored (${res.text.slice(0, 300)})`);
  t.match(res.body, { format: 'mp4', tracks: [{ kind: 'audio', codec: 'aac', supported: true }] });
});

t.test('empty media is refused at upload: WAV with a 0-byte data chunk, Ogg with only headers, MP4 with no samples', async (t) => {
  const before = await mediaDir();
  const wav = makeWav(8000, 1, 0.1).subarray(0, 44);
  wav.writeUInt32LE(36, 4);
  wav.writeUInt32LE(0, 40);
  isRefused(t, await server.api('PUT', '/v1/media/empty.wav', wav), 422, 'OFFCAST_CORRUPT_MEDIA', 'WAV with an empty data chunk');

  const opus = await readFile(OPUS_FIXTURE);
  const pages = oggPages(opus);
  // OpusHead and OpusTags pages only; the tags page is made the end of the stream.
  const headers = Buffer.from(opus.subarray(0, pages[1]!.at + pages[1]!.length));
  const tags = headers.subarray(pages[1]!.at);
  tags[5] = tags[5]! | 0x04;
  tags.writeUInt32LE(0, 22);
  tags.writeUInt32LE(oggCrc(tags), 22);
  isRefused(t, await server.api('PUT', '/v1/media/headers.opus', headers), 422, 'OFFCAST_CORRUPT_MEDIA', 'Ogg with only headers');

  const mp4 = makeM4a({ count: 0, sampleSize: 0, mdatBytes: 0 });
  isRefused(t, await server.api('PUT', '/v1/media/nothing.m4a', mp4), 422, 'OFFCAST_CORRUPT_MEDIA', 'MP4 with no samples');
  t.same(await mediaDir(), before, 'nothing stored');
});

t.test('Ogg with granule positions that decrease or reach 2^62 is refused at upload, not when played', async (t) => {
  const opus = await readFile(OPUS_FIXTURE);
  const pages = oggPages(opus);
  t.ok(pages.length >= 5, `the fixture has ${pages.length} pages`);
  const before = await mediaDir();
  const third = opus.readBigInt64LE(pages[3]!.at + 6);
  const decreasing = withGranule(opus, 4, third - 960n);
  isRefused(t, await server.api('PUT', '/v1/media/decreasing.opus', decreasing), 422, 'OFFCAST_CORRUPT_MEDIA', 'decreasing granule');
  const huge = withGranule(opus, 3, 1n << 62n);
  isRefused(t, await server.api('PUT', '/v1/media/huge.opus', huge), 422, 'OFFCAST_CORRUPT_MEDIA', 'granule 2^62');
  t.same(await mediaDir(), before, 'nothing stored');
  // The unmodified file goes in: the refusals are about the granules.
  t.equal((await server.api('PUT', '/v1/media/fine.opus', opus)).status, 201, 'the original is accepted');
});

t.test('an Annex B file with only SPS/PPS (or only SEI) is refused', async (t) => {
  const h264 = await readFile(H264_FIXTURE);
  // Cut before the first slice (NAL type 1 or 5): what stays is parameter sets and SEI.
  let cut = -1;
  for (let i = 0; i + 3 < h264.length && cut < 0; i++) {
    if (h264[i] === 0 && h264[i + 1] === 0 && h264[i + 2] === 1) {
      const type = h264[i + 3]! & 0x1f;
      if (type === 1 || type === 5) cut = i > 0 && h264[i - 1] === 0 ? i - 1 : i;
    }
  }
  t.ok(cut > 0, 'found the first slice');
  const before = await mediaDir();
  isRefused(t, await server.api('PUT', '/v1/media/params.h264', h264.subarray(0, cut)), 422, 'OFFCAST_CORRUPT_MEDIA', 'SPS/PPS only');
  const sei = Buffer.from([0, 0, 0, 1, 0x06, 0x05, 0x01, 0x00, 0x80]);
  isRefused(t, await server.api('PUT', '/v1/media/sei.h264', sei), 422, 'OFFCAST_CORRUPT_MEDIA', 'SEI only');
  t.same(await mediaDir(), before, 'nothing stored');
});

t.test('names of files being written (*.part, *.tmp.*) are reserved', async (t) => {
  const wav = makeWav(8000, 1, 0.1);
  const before = await mediaDir();
  for (const name of ['take.part', 'take.tmp', 'take.tmp.1', 'take.wav.tmp-2', 'take.partial', 'TAKE.PART']) {
    isRefused(t, await server.api('PUT', `/v1/media/${name}`, wav), 400, 'OFFCAST_RESERVED_NAME', name);
  }
  t.same(await mediaDir(), before, 'nothing stored');
  t.equal((await server.api('PUT', '/v1/media/take.parts.wav', wav)).status, 201, 'a name that only contains "part" is fine');
});

t.test('concurrent uploads of one name: each answer is that upload’s own probe', async (t) => {
  // Different lengths, so each probe says whose it is.
  const bodies = Array.from({ length: 8 }, (_, i) => makeWav(8000, 1, 0.25 * (i + 1)));
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all(bodies.map((b) => server.api('PUT', '/v1/media/race.wav', b)));
    results.forEach((res, i) => {
      t.ok(res.status === 200 || res.status === 201, `round ${round}, upload ${i}: ${res.status}`);
      t.equal(res.body?.bytes, bodies[i]!.length, `round ${round}, upload ${i}: its own size`);
      t.equal(res.body?.durationMs, Math.round((bodies[i]!.length - 44) / 16), `round ${round}, upload ${i}: its own duration`);
    });
  }
  const stored = await readFile(path.join(server.mediaRoot, 'race.wav'));
  t.ok(
    bodies.some((b) => b.equals(stored)),
    'the stored file is one of the uploads, whole',
  );
  t.notOk(
    (await mediaDir()).some((n) => n.startsWith('.upload-')),
    'no temp files left',
  );
});

t.test('upload temp files a crash left behind are removed at start', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'offcast-upload-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const mediaRoot = path.join(dir, 'media');
  await mkdir(mediaRoot);
  await writeFile(path.join(mediaRoot, '.upload-0123456789ab'), Buffer.alloc(4096));
  await writeFile(path.join(mediaRoot, '.upload-deadbeef0000'), Buffer.alloc(10));
  await writeFile(path.join(mediaRoot, 'keep.wav'), makeWav(8000, 1, 0.1));
  await writeFile(path.join(mediaRoot, '.hidden'), 'not ours');
  const config = loadConfig({
    argv: [],
    env: {},
    // No RTSP listener: parallel test files must not fight over port 8554.
    overrides: { 'http.port': 0, mediaRoot, recordingsRoot: path.join(dir, 'recordings'), 'log.level': 'silent', 'rtsp.port': 0 },
  });
  const s = await buildServer(config, { logger: false });
  try {
    t.same((await readdir(mediaRoot)).sort(), ['.hidden', 'keep.wav'], 'the temp files are gone, everything else stays');
  } finally {
    await s.close();
  }
});

t.test('media and recordings share one namespace: an upload never shadows a recording, nor a recording an upload (409)', async (t) => {
  const wav = makeWav(8000, 1, 0.2);
  const track = { kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 };
  const rec = await server.api('POST', '/v1/sessions', { mode: 'record', name: 'feed1', tracks: [track] });
  t.equal(rec.status, 201, `record session created (${rec.text.slice(0, 200)})`);
  const before = await mediaDir();
  const during = await server.api('PUT', '/v1/media/feed1', wav);
  isRefused(t, during, 409, 'OFFCAST_CONFLICT', 'upload while the name is being recorded');
  t.match(during.body?.message, /recording feed1 is in progress/);
  t.same(await mediaDir(), before, 'nothing stored');

  const stop = await server.api('DELETE', `/v1/sessions/${rec.body.id}`);
  t.equal(stop.status, 200, 'recording stopped');
  const after = await server.api('PUT', '/v1/media/feed1', wav);
  isRefused(t, after, 409, 'OFFCAST_CONFLICT', 'upload over a finished recording');
  t.match(after.body?.message, /a recording named feed1 exists/);
  t.same(await mediaDir(), before, 'nothing stored');

  // An upload in progress (headers and part of the body sent) holds its name against record sessions.
  const u = new URL(server.url);
  const socket = net.connect(Number(u.port), u.hostname);
  t.teardown(() => socket.destroy());
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(`PUT /v1/media/incoming HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\nContent-Length: ${wav.length}\r\n\r\n`);
  socket.write(wav.subarray(0, 100));
  const deadline = performance.now() + 10000;
  while (!(await mediaDir()).some((n) => n.startsWith('.upload-'))) {
    if (performance.now() > deadline) throw new Error('the upload never started');
    await new Promise((r) => setTimeout(r, 20));
  }
  const clash = await server.api('POST', '/v1/sessions', { mode: 'record', name: 'incoming', tracks: [track] });
  isRefused(t, clash, 409, 'OFFCAST_CONFLICT', 'record session named like an upload in progress');
  t.match(clash.body?.message, /being uploaded/);
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => resolve(text));
  });
  socket.write(wav.subarray(100));
  const text = await answer;
  t.match(text, /^HTTP\/1\.1 201/, `the upload completes (${text.split('\r\n')[0]})`);
});

t.test('empty media put in the library by hand (not uploaded) is refused when played: 422, never a session that spins', async (t) => {
  const wav = makeWav(8000, 1, 0.1).subarray(0, 44);
  wav.writeUInt32LE(36, 4);
  wav.writeUInt32LE(0, 40);
  await writeFile(path.join(server.mediaRoot, 'byhand.wav'), wav);
  const res = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'byhand.wav',
    destination: { host: '127.0.0.1', port: 40000 },
    loop: true,
    speed: 'max',
  });
  isRefused(t, res, 422, 'OFFCAST_CORRUPT_MEDIA', 'play of an empty WAV');
  t.match(res.body?.message, /no samples/);
  const list = await server.api('GET', '/v1/sessions');
  t.equal(list.status, 200);
  t.notOk(JSON.stringify(list.body).includes('byhand.wav'), 'no session left running');
});
