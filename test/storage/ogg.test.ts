import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CorruptMediaError, UnsupportedMediaError } from '../../storage/errors.js';
import { oggCrc32, OggPacketAssembler, openOggOpus, parseOggPage, parseOpusHead } from '../../storage/ogg.js';
import type { Probe, Sample } from '../../storage/types.js';
import { opusPacketDuration } from '../../storage/opus/toc.js';
import { hasFfmpeg as hasFfmpegTool, skipUnless } from '../helpers/tools.js';

const fixtures = fileURLToPath(new URL('../fixtures/audio/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'offcast-ogg-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const hasFfmpeg = hasFfmpegTool();

// --- an independent Ogg writer (bitwise CRC, not the reader's table) --------------

function crcBitwise(buf: Uint8Array): number {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 24;
    for (let i = 0; i < 8; i++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
    crc >>>= 0;
  }
  return crc >>> 0;
}

interface PageSpec {
  flags: number; // 1 continued, 2 bos, 4 eos
  granule: bigint;
  serial: number;
  sequence: number;
  lacing: number[];
  body: Uint8Array;
}

function encodePage(p: PageSpec, corruptCrc = false): Uint8Array {
  const out = new Uint8Array(27 + p.lacing.length + p.body.length);
  const v = new DataView(out.buffer);
  out.set([0x4f, 0x67, 0x67, 0x53], 0);
  v.setUint8(5, p.flags);
  v.setBigInt64(6, p.granule, true);
  v.setUint32(14, p.serial, true);
  v.setUint32(18, p.sequence, true);
  v.setUint8(26, p.lacing.length);
  out.set(p.lacing, 27);
  out.set(p.body, 27 + p.lacing.length);
  v.setUint32(22, (crcBitwise(out) ^ (corruptCrc ? 1 : 0)) >>> 0, true);
  return out;
}

interface Packet {
  data: Uint8Array;
  /** Granule position after this packet (undefined for header packets: written as 0). */
  granuleEnd?: bigint;
}

/**
 * Lays packets out in pages of at most `maxSegments` lacing values. Every packet in
 * `freshPage` starts a new page (RFC 7845: headers on their own pages).
 */
function paginate(packets: Packet[], serial: number, maxSegments: number, freshPage: Set<number>): PageSpec[] {
  const pages: PageSpec[] = [];
  let lacing: number[] = [];
  let parts: Uint8Array[] = [];
  let granule = -1n;
  let continued = false;
  let openPacket = false;
  const flush = (): void => {
    pages.push({ flags: continued ? 1 : 0, granule, serial, sequence: pages.length, lacing, body: Buffer.concat(parts) });
    continued = openPacket;
    lacing = [];
    parts = [];
    granule = -1n;
  };
  packets.forEach((packet, index) => {
    if (freshPage.has(index) && lacing.length > 0) flush();
    const values: number[] = [];
    for (let n = packet.data.length; ; n -= 255) {
      values.push(Math.min(n, 255));
      if (n < 255) break;
    }
    let at = 0;
    for (const [i, value] of values.entries()) {
      if (lacing.length === maxSegments) flush();
      lacing.push(value);
      parts.push(packet.data.subarray(at, at + value));
      at += value;
      openPacket = i < values.length - 1;
    }
    granule = packet.granuleEnd ?? 0n;
  });
  openPacket = false;
  flush();
  pages[0]!.flags |= 2;
  pages[pages.length - 1]!.flags |= 4;
  return pages;
}

function opusHead(channels = 2, preSkip = 312, family = 0, extra: number[] = []): Uint8Array {
  const b = new Uint8Array(19 + extra.length);
  b.set(Buffer.from('OpusHead', 'latin1'), 0);
  const v = new DataView(b.buffer);
  v.setUint8(8, 1);
  v.setUint8(9, channels);
  v.setUint16(10, preSkip, true);
  v.setUint32(12, 48000, true);
  v.setInt16(16, -256, true);
  v.setUint8(18, family);
  b.set(extra, 19);
  return b;
}

function opusTags(padding = 0): Uint8Array {
  const vendor = 'offcast test';
  const b = new Uint8Array(8 + 4 + vendor.length + 4 + padding);
  b.set(Buffer.from('OpusTags', 'latin1'), 0);
  new DataView(b.buffer).setUint32(8, vendor.length, true);
  b.set(Buffer.from(vendor, 'latin1'), 12);
  return b;
}

/** A fake Opus packet: a real TOC (config 19 = CELT 20 ms, code 0 = one frame) and filler. */
function fakeOpusPacket(length: number, seed: number, toc = (19 << 3) | 0): Uint8Array {
  const b = new Uint8Array(length);
  b[0] = toc;
  for (let i = 1; i < length; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

interface StreamSpec {
  serial?: number;
  head?: Uint8Array;
  tags?: Uint8Array;
  audio: Uint8Array[];
  samplesPerPacket?: number;
  startGranule?: bigint;
  /** Samples cut from the end (granule of the last page lowered). */
  endTrim?: bigint;
  maxSegments?: number;
}

function buildStreamPages(s: StreamSpec): PageSpec[] {
  const serial = s.serial ?? 0x1234abcd;
  const per = BigInt(s.samplesPerPacket ?? 960);
  let g = s.startGranule ?? 0n;
  const packets: Packet[] = [{ data: s.head ?? opusHead() }, { data: s.tags ?? opusTags() }];
  for (const a of s.audio) {
    g += per;
    packets.push({ data: a, granuleEnd: g });
  }
  const pages = paginate(packets, serial, s.maxSegments ?? 255, new Set([1, 2]));
  if (s.endTrim) pages[pages.length - 1]!.granule -= s.endTrim;
  return pages;
}

function writeFile(name: string, pages: PageSpec[] | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, pages instanceof Uint8Array ? pages : Buffer.concat(pages.map((pg) => encodePage(pg))));
  return p;
}

async function readAll(path: string): Promise<{ probe: Probe; samples: Sample[] }> {
  const reader = await openOggOpus(path);
  try {
    const samples: Sample[] = [];
    for await (const s of reader.samples()) samples.push(s);
    return { probe: reader.probe, samples };
  } finally {
    await reader.close();
  }
}

async function readError(path: string): Promise<Error | undefined> {
  return readAll(path).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
}

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

interface FfPacket {
  pts: number;
  duration: number;
  size: number;
  md5: string;
}

function ffmpegPackets(path: string): FfPacket[] {
  const out = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', path, '-map', '0:a:0', '-c:a', 'copy', '-f', 'framemd5', '-'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return out
    .split('\n')
    .filter((l) => /^\d+,/.test(l))
    .map((l) => {
      const f = l.split(',').map((x) => x.trim());
      return { pts: Number(f[2]), duration: Number(f[3]), size: Number(f[4]), md5: f[5]! };
    });
}

/**
 * Compares every packet with ffmpeg's demuxer: bytes, pts (ffmpeg's are shifted by
 * -preSkip), duration. Returns the differences (empty when all match).
 */
function diffWithFfmpeg(path: string, samples: Sample[], preSkip: number): string[] {
  const ff = ffmpegPackets(path);
  const diffs: string[] = [];
  if (samples.length !== ff.length) diffs.push(`${samples.length} packets, ffmpeg has ${ff.length}`);
  for (let i = 0; i < Math.min(ff.length, samples.length); i++) {
    const ours = samples[i]!;
    const theirs = ff[i]!;
    const last = i === ff.length - 1;
    const ok =
      ours.data.length === theirs.size &&
      md5(ours.data) === theirs.md5 &&
      ours.pts === theirs.pts + preSkip &&
      ours.dts === ours.pts &&
      // ffmpeg shortens the last packet by the end trim; the TOC duration is the full one.
      (last ? ours.duration >= theirs.duration : ours.duration === theirs.duration);
    if (!ok) diffs.push(`packet ${i}: ours ${JSON.stringify({ ...ours, data: ours.data.length })}, ffmpeg ${JSON.stringify(theirs)}`);
  }
  return diffs;
}

// --- fixtures against ffmpeg ----------------------------------------------------

const fixtureCases = [
  { file: 'sine-mono-2s.opus', channels: 1, durationMs: 2000, packetSamples: 960 },
  { file: 'stereo-3s.opus', channels: 2, durationMs: 3000, packetSamples: 960 },
  { file: 'noise-60ms-256k.opus', channels: 2, durationMs: 2000, packetSamples: 2880 },
];

for (const c of fixtureCases) {
  t.test(`fixture ${c.file}`, async (t) => {
    const path = join(fixtures, c.file);
    t.ok(statSync(path).size < 200 * 1024, 'fixture is small');
    const { probe, samples } = await readAll(path);
    t.same(probe, {
      format: 'ogg',
      bytes: statSync(path).size,
      durationMs: c.durationMs,
      tracks: [
        {
          index: 0,
          kind: 'audio',
          codec: 'opus',
          supported: true,
          clockRate: 48000,
          channels: c.channels,
          durationMs: c.durationMs,
          opus: { channels: c.channels, preSkip: 312, inputSampleRate: 48000, outputGain: 0, channelMappingFamily: 0 },
        },
      ],
    });
    t.equal(samples[0]!.pts, 0, 'first packet at 0');
    let pts = 0;
    let ok = true;
    for (const s of samples) {
      if (s.pts !== pts || s.duration !== c.packetSamples || !s.keyframe || s.track !== 0) ok = false;
      pts += s.duration;
    }
    t.ok(ok, 'contiguous pts, TOC durations, keyframes');
    if (hasFfmpeg) t.same(diffWithFfmpeg(path, samples, 312), [], "every packet equals ffmpeg's");
    else t.comment('ffmpeg not installed: packet comparison skipped');
  });
}

// --- synthetic streams: lacing, page spans, granules -----------------------------

t.test('packets spanning pages, 255-multiple lengths, long spans', async (t) => {
  const lengths = [1, 254, 255, 256, 510, 765, 1000, 255 * 4, 3000, 20_000, 65_025, 70_000, 2, 255];
  const audio = lengths.map((n, i) => fakeOpusPacket(n, i));
  for (const maxSegments of [1, 2, 3, 17, 255]) {
    const pages = buildStreamPages({ audio, maxSegments });
    const path = writeFile(`span-${maxSegments}.opus`, pages);
    const { probe, samples } = await readAll(path);
    t.equal(samples.length, audio.length, `maxSegments ${maxSegments}: packet count`);
    t.ok(
      samples.every((s, i) => Buffer.from(s.data).equals(Buffer.from(audio[i]!)) && s.pts === i * 960 && s.duration === 960),
      `maxSegments ${maxSegments}: packets equal, pts contiguous`,
    );
    t.equal(probe.durationMs, Math.round((audio.length * 960 - 312) / 48), 'duration from the last granule');
    if (maxSegments <= 3)
      t.ok(
        pages.some((p) => p.flags & 1 && p.granule === -1n),
        'has pages that only continue a packet',
      );
    if (hasFfmpeg && maxSegments === 3) {
      const ff = ffmpegPackets(path);
      t.same(
        ff.map((p) => p.md5),
        audio.map(md5),
        'ffmpeg demuxes the same packets from the synthetic file',
      );
    }
  }
});

t.test('TOC durations: codes 0-3 and frame sizes', async (t) => {
  const audio = [
    fakeOpusPacket(10, 1, (0 << 3) | 0), // SILK NB 10 ms, 1 frame: 480
    fakeOpusPacket(10, 2, (3 << 3) | 1), // SILK NB 60 ms, 2 frames: 5760
    fakeOpusPacket(10, 3, (13 << 3) | 2), // hybrid SWB 20 ms, 2 frames: 1920
    Buffer.from([(16 << 3) | 3, 5, 1, 2, 3]), // CELT 2.5 ms, code 3 with 5 frames: 600
    fakeOpusPacket(10, 4, (30 << 3) | 0), // CELT FB 10 ms: 480
  ];
  const durations = [480, 5760, 1920, 600, 480];
  const pages = paginate(
    [
      { data: opusHead() },
      { data: opusTags() },
      ...audio.map((data, i) => ({ data, granuleEnd: BigInt(durations.slice(0, i + 1).reduce((a, b) => a + b, 0)) })),
    ],
    7,
    255,
    new Set([1, 2]),
  );
  const { samples } = await readAll(writeFile('toc.opus', pages));
  t.same(
    samples.map((s) => [s.pts, s.duration]),
    [
      [0, 480],
      [480, 5760],
      [6240, 1920],
      [8160, 600],
      [8760, 480],
    ],
  );
});

t.test('granule positions: start offset and end trim (RFC 7845 4.4, 4.5)', async (t) => {
  const audio = Array.from({ length: 120 }, (_, i) => fakeOpusPacket(100, i));
  const start = 48000n * 10n; // a stream cut 10 s into a live source
  const { probe, samples } = await readAll(writeFile('offset.opus', buildStreamPages({ audio, startGranule: start, endTrim: 500n, maxSegments: 20 })));
  t.equal(samples[0]!.pts, 0, 'pts start at 0 whatever the first granule');
  t.equal(samples.at(-1)!.pts, 119 * 960);
  t.equal(probe.durationMs, Math.round((120 * 960 - 500 - 312) / 48), 'duration excludes start offset, pre-skip and trim');

  // One page holding everything, with the end trimmed: allowed because it is the last page.
  const single = buildStreamPages({ audio: audio.slice(0, 3), endTrim: 1000n });
  const r = await readAll(writeFile('single.opus', single));
  t.equal(r.samples.length, 3);
  t.equal(r.probe.durationMs, Math.round((3 * 960 - 1000 - 312) / 48));
});

t.test('multiplexed file: the Opus stream is read, others ignored', async (t) => {
  const vorbisPages = paginate(
    [{ data: Buffer.from('\x01vorbis fake identification header', 'latin1') }, { data: Buffer.from('\x03vorbis comment') }, { data: fakeOpusPacket(300, 1) }],
    0x5555,
    2,
    new Set([1]),
  );
  const audio = Array.from({ length: 30 }, (_, i) => fakeOpusPacket(200 + i, i));
  const opusPages = buildStreamPages({ audio, maxSegments: 4 });
  // BOS pages first (Vorbis, then Opus), then the rest interleaved.
  const order: PageSpec[] = [vorbisPages[0]!, opusPages[0]!];
  const rest = [...vorbisPages.slice(1), ...opusPages.slice(1)];
  rest.sort((a, b) => a.sequence - b.sequence || a.serial - b.serial);
  order.push(...rest);
  const { probe, samples } = await readAll(writeFile('mux.ogg', order));
  t.equal(probe.tracks[0]!.codec, 'opus');
  t.ok(samples.length === audio.length && samples.every((s, i) => Buffer.from(s.data).equals(Buffer.from(audio[i]!))), 'Opus packets only');
});

t.test('family 1 (multichannel): read, marked unsupported for RTP', async (t) => {
  const head = opusHead(6, 312, 1, [4, 2, 0, 4, 1, 2, 3, 5]);
  const { probe, samples } = await readAll(writeFile('surround.opus', buildStreamPages({ head, audio: [fakeOpusPacket(50, 1)] })));
  t.equal(probe.tracks[0]!.channels, 6);
  t.equal(probe.tracks[0]!.supported, false);
  t.equal(probe.tracks[0]!.opus!.channelMappingFamily, 1);
  t.equal(probe.tracks[0]!.opus!.outputGain, -256);
  t.equal(samples.length, 1);
});

// --- negative cases ----------------------------------------------------------------

function pagesOf(buf: Uint8Array): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (let at = 0; at < buf.length;) {
    const p = parseOggPage(buf, at);
    out.push({ offset: at, length: p.length });
    at += p.length;
  }
  return out;
}

t.test('flipped byte in a middle page: bad CRC', async (t) => {
  const orig = readFileSync(join(fixtures, 'stereo-3s.opus'));
  const pages = pagesOf(orig);
  const victim = pages[3]!;
  const bad = Buffer.from(orig);
  bad[victim.offset + victim.length - 10]! ^= 0x40;
  const err = await readError(writeFile('badcrc.opus', bad));
  t.type(err, CorruptMediaError);
  t.match(err?.message, new RegExp(`^Ogg: bad CRC in page at offset ${victim.offset}: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}$`));
  // A flipped CRC byte in the last page is found at open (tail scan).
  const bad2 = Buffer.from(orig);
  bad2[pages.at(-1)!.offset + 22]! ^= 0x01;
  const err2 = await openOggOpus(writeFile('badcrc-last.opus', bad2)).then(
    () => undefined,
    (e: Error) => e,
  );
  t.type(err2, CorruptMediaError);
  t.match(err2?.message, new RegExp(`last page: bad CRC in page at offset ${pages.at(-1)!.offset}`));
});

t.test('truncated last page', async (t) => {
  const orig = readFileSync(join(fixtures, 'sine-mono-2s.opus'));
  const pages = pagesOf(orig);
  const last = pages.at(-1)!;
  for (const cut of [100, last.length - 3, last.length - 20]) {
    const err = await openOggOpus(writeFile('trunc.opus', orig.subarray(0, orig.length - cut))).then(
      () => undefined,
      (e: Error) => e,
    );
    t.type(err, CorruptMediaError, `cut ${cut}`);
    t.match(err?.message, new RegExp(`^Ogg: last page: truncated page at offset ${last.offset}`));
  }
});

t.test('streams that are not Opus, or not complete', async (t) => {
  const audio = [fakeOpusPacket(100, 1), fakeOpusPacket(100, 2)];
  const cases: { name: string; file: Uint8Array | PageSpec[]; error: typeof CorruptMediaError; message: RegExp }[] = [
    {
      name: 'missing OpusHead',
      file: paginate([{ data: opusTags() }, { data: audio[0]!, granuleEnd: 960n }], 1, 255, new Set([1])),
      error: CorruptMediaError,
      message: /^Ogg: missing OpusHead \(stream 1 at offset 0 starts with 4f 70 75 73 54 61 67 73\)$/,
    },
    {
      name: 'missing OpusTags',
      file: paginate([{ data: opusHead() }, { data: audio[0]!, granuleEnd: 960n }, { data: audio[1]!, granuleEnd: 1920n }], 1, 255, new Set([1, 2])),
      error: CorruptMediaError,
      message: /^Ogg: page 1 at offset 47: missing OpusTags \(second packet starts with 98 26 45 64 83 a2 c1 e0 \.\.\.\)$/,
    },
    {
      name: 'ends after OpusHead',
      file: paginate([{ data: opusHead() }], 1, 255, new Set()),
      error: CorruptMediaError,
      message: /missing OpusTags \(the file ends after OpusHead\)/,
    },
    {
      name: 'Vorbis identification header',
      file: paginate([{ data: Buffer.from('\x01vorbis\x00\x00\x00\x00\x02\x44\xac', 'latin1') }, { data: Buffer.from('\x03vorbis') }], 9, 255, new Set([1])),
      error: UnsupportedMediaError,
      message: /^Ogg: no Opus stream \(found Vorbis\)$/,
    },
    {
      name: 'OpusHead with mapping family 255',
      file: buildStreamPages({ head: opusHead(2, 312, 255, [2, 0, 0, 1]), audio }),
      error: UnsupportedMediaError,
      message: /channel mapping family 255 is not supported/,
    },
    {
      name: 'OpusHead with 3 channels in family 0',
      file: buildStreamPages({ head: opusHead(3), audio }),
      error: CorruptMediaError,
      message: /mapping family 0 allows 1 or 2 channels, found 3/,
    },
    {
      name: 'not Ogg at all',
      file: Buffer.from('RIFF\x00\x00\x00\x00WAVEfmt '),
      error: UnsupportedMediaError,
      message: /^Ogg: no Ogg capture pattern at offset 0$/,
    },
    { name: 'empty file', file: new Uint8Array(0), error: CorruptMediaError, message: /^Ogg: empty file$/ },
  ];
  for (const c of cases) {
    const err = await readError(writeFile(`neg-${c.name.replace(/\W+/g, '-')}.opus`, c.file));
    t.type(err, c.error, `${c.name}: ${c.error.name}`);
    t.match(err?.message, c.message, `${c.name}: message`);
  }
});

const hasLibvorbis = hasFfmpeg && /libvorbis/.test(spawnSync('ffmpeg', ['-hide_banner', '-encoders'], { encoding: 'utf8' }).stdout);

t.test('Vorbis in Ogg made by ffmpeg', { skip: skipUnless(hasLibvorbis, 'ffmpeg with libvorbis not installed') }, async (t) => {
  const path = join(dir, 'vorbis.ogg');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=duration=0.5', '-c:a', 'libvorbis', path]);
  const err = await readError(path);
  t.type(err, UnsupportedMediaError);
  t.match(err?.message, /no Opus stream \(found Vorbis\)/);
});

t.test('stream-level corruption is reported with the page and offset', async (t) => {
  // Mostly 2-segment packets; one of 2000 bytes spans pages that complete nothing.
  const audio = Array.from({ length: 40 }, (_, i) => fakeOpusPacket(i === 20 ? 2000 : 300, i));
  const base = (): PageSpec[] => buildStreamPages({ audio, maxSegments: 5 });
  const offsetOf = (pages: PageSpec[], index: number): number => pages.slice(0, index).reduce((n, p) => n + 27 + p.lacing.length + p.body.length, 0);
  const completing = (pages: PageSpec[]): number => pages.findIndex((p, i) => i > 4 && p.granule > 0n && !(pages[i + 1]!.flags & 4));

  const cases: { name: string; mutate: (pages: PageSpec[]) => number; message: (at: number, pages: PageSpec[], i: number) => RegExp }[] = [
    {
      name: 'skipped sequence number',
      mutate: (pages) => {
        for (let i = 6; i < pages.length; i++) pages[i]!.sequence += 1;
        return 6;
      },
      message: (at) => new RegExp(`^Ogg: page 7 at offset ${at}: sequence number 7, expected 6 \\(page lost or out of order\\)$`),
    },
    {
      name: 'granule not at the end of the last packet',
      mutate: (pages) => {
        const i = completing(pages);
        pages[i]!.granule += 960n;
        return i;
      },
      message: (at, pages, i) =>
        new RegExp(
          `^Ogg: page ${i} at offset ${at}: granule position ${pages[i]!.granule} does not match the end of its last packet \\(${pages[i]!.granule - 960n}\\)$`,
        ),
    },
    {
      name: 'negative granule',
      mutate: (pages) => {
        const i = completing(pages);
        pages[i]!.granule = -5n;
        return i;
      },
      message: (at, _p, i) => new RegExp(`^Ogg: page ${i} at offset ${at}: negative granule position -5$`),
    },
    {
      name: 'decreasing granule on the last page',
      mutate: (pages) => {
        pages.at(-1)!.granule = 960n;
        return pages.length - 1;
      },
      message: (at, _p, i) => new RegExp(`^Ogg: page ${i} at offset ${at}: granule position 960 decreases \\(previous page: \\d+\\)$`),
    },
    {
      name: 'first audio page granule below its samples',
      mutate: (pages) => {
        pages[2]!.granule -= 1n;
        return 2;
      },
      message: (at, pages) =>
        new RegExp(`^Ogg: page 2 at offset ${at}: granule position ${pages[2]!.granule} is smaller than the \\d+ samples of its packets$`),
    },
    {
      name: 'continuation flag missing',
      mutate: (pages) => {
        const i = pages.findIndex((p, k) => k > 3 && p.flags & 1);
        pages[i]!.flags &= ~1;
        return i;
      },
      message: (at, _p, i) => new RegExp(`^Ogg: page ${i} at offset ${at}: does not continue the packet left open by the previous page$`),
    },
    {
      name: 'continuation flag without an open packet',
      mutate: (pages) => {
        const i = pages.findIndex((p, k) => k > 3 && !(p.flags & 1));
        pages[i]!.flags |= 1;
        return i;
      },
      message: (at, _p, i) => new RegExp(`^Ogg: page ${i} at offset ${at}: continues a packet, but none was started$`),
    },
    {
      name: 'granule on a page that completes no packet',
      mutate: (pages) => {
        const i = pages.findIndex((p, k) => k > 3 && p.granule === -1n);
        pages[i]!.granule = 5n;
        return i;
      },
      message: (at, _p, i) => new RegExp(`^Ogg: page ${i} at offset ${at}: granule position 5 on a page that completes no packet \\(need -1\\)$`),
    },
  ];
  for (const c of cases) {
    const pages = base();
    const i = c.mutate(pages);
    t.ok(i > 0, `${c.name}: a page to mutate`);
    const err = await readError(writeFile('mut.opus', pages));
    t.type(err, CorruptMediaError, `${c.name}: CorruptMediaError`);
    t.match(err?.message, c.message(offsetOf(pages, i), pages, i), `${c.name}: message`);
  }
  // Invalid TOC: code 3 with zero frames.
  const toc = buildStreamPages({ audio: [fakeOpusPacket(100, 1), Buffer.from([(19 << 3) | 3, 0, 0])] });
  toc.at(-1)!.granule = 1920n;
  const err = await readError(writeFile('toc-bad.opus', toc));
  t.type(err, CorruptMediaError);
  t.match(err?.message, /audio packet 1: Opus code 3 packet declares 0 frames/);
  // An empty audio packet.
  const empty = buildStreamPages({ audio: [fakeOpusPacket(100, 1), new Uint8Array(0)] });
  const err2 = await readError(writeFile('empty-packet.opus', empty));
  t.match(err2?.message, /audio packet 1: empty Opus packet/);
});

// --- pure helpers ------------------------------------------------------------------

t.test('parseOggPage', async (t) => {
  const buf = readFileSync(join(fixtures, 'sine-mono-2s.opus'));
  const p = parseOggPage(buf, 0);
  t.match(p, {
    offset: 0,
    position: 0,
    bos: true,
    eos: false,
    continued: false,
    granule: 0n,
    sequence: 0,
    segmentCount: 1,
    bodyOffset: 28,
    bodyLength: 19,
    length: 47,
  });
  t.equal(p.checksum, crcBitwise(Buffer.concat([buf.subarray(0, 22), Buffer.alloc(4), buf.subarray(26, 47)])), 'stored CRC is the bitwise CRC');
  t.equal(oggCrc32(buf, 0, 47, 22), p.checksum, 'table CRC equals bitwise CRC');
  t.equal(oggCrc32(Buffer.from('123456789'), 0, 9), 0x89a1897f, 'check value: CRC-32/POSIX (0x765e7680) without its final xor');
  const p2 = parseOggPage(buf, 47, 1047);
  t.equal(p2.position, 1047);
  t.equal(p2.sequence, 1);
  for (let cut = 1; cut < 47; cut++) {
    t.throws(() => parseOggPage(buf.subarray(0, cut), 0), cut < 4 ? RangeError : RangeError, `cut at ${cut}: truncated`);
  }
  t.throws(() => parseOggPage(Buffer.from('OggT' + 'x'.repeat(40)), 0), TypeError);
  const v1 = Buffer.from(buf.subarray(0, 47));
  v1[4] = 1;
  t.throws(() => parseOggPage(v1, 0), { name: 'TypeError', message: /version 1/ });
  const flags = Buffer.from(buf.subarray(0, 47));
  flags[5] = 0x0a;
  t.throws(() => parseOggPage(flags, 0), { name: 'RangeError', message: /reserved header flags 0xa/ });
  const crc = Buffer.from(buf.subarray(0, 47));
  crc[40]! ^= 1;
  t.throws(() => parseOggPage(crc, 0), { name: 'RangeError', message: /bad CRC in page at offset 0/ });
  // Granule positions use all 64 bits.
  const big = encodePage({ flags: 0, granule: 0x123456789abcn, serial: 1, sequence: 0xfffffffe, lacing: [1], body: Buffer.from([9]) });
  t.match(parseOggPage(big, 0), { granule: 0x123456789abcn, sequence: 0xfffffffe, serial: 1 });
  const neg = encodePage({ flags: 0, granule: -1n, serial: 0xffffffff, sequence: 0, lacing: [], body: new Uint8Array(0) });
  t.match(parseOggPage(neg, 0), { granule: -1n, serial: 0xffffffff, segmentCount: 0, length: 27 });
});

t.test('OggPacketAssembler', async (t) => {
  const data = Buffer.from(Array.from({ length: 600 }, (_, i) => i & 0xff));
  const pages = paginate([{ data }, { data: data.subarray(0, 255) }, { data: data.subarray(0, 10) }], 3, 2, new Set());
  const buf = Buffer.concat(pages.map((p) => encodePage(p)));
  const a = new OggPacketAssembler(1000);
  const got: Uint8Array[] = [];
  for (let at = 0; at < buf.length;) {
    const page = parseOggPage(buf, at);
    got.push(...a.push(page, buf).map((p) => p.data));
    at += page.length;
  }
  t.same(
    got.map((g) => Buffer.from(g)),
    [data, data.subarray(0, 255), data.subarray(0, 10)],
  );
  t.equal(a.pending, false);
  // Packets over the limit are cut but their length is kept.
  const small = new OggPacketAssembler(100);
  const one = encodePage({ flags: 2, granule: 0n, serial: 1, sequence: 0, lacing: [255, 45], body: data.subarray(0, 300) });
  const [p] = small.push(parseOggPage(one, 0), one);
  t.equal(p!.bytes, 300);
  t.equal(p!.data.length, 100);
});

t.test('opusPacketDuration and parseOpusHead', async (t) => {
  const table: [number[], number][] = [
    [[0 << 3], 480],
    [[1 << 3], 960],
    [[2 << 3], 1920],
    [[3 << 3], 2880],
    [[(11 << 3) | 1], 5760],
    [[12 << 3], 480],
    [[15 << 3], 960],
    [[16 << 3], 120],
    [[17 << 3], 240],
    [[(18 << 3) | 2], 960],
    [[31 << 3], 960],
    [[(31 << 3) | 3, 6], 5760],
    [[(16 << 3) | 3, 0x80 | 48], 5760],
  ];
  for (const [bytes, samples] of table) t.equal(opusPacketDuration(Uint8Array.from(bytes)), samples, `TOC ${bytes.map((b) => b.toString(16)).join(' ')}`);
  t.throws(() => opusPacketDuration(new Uint8Array(0)), RangeError);
  t.throws(() => opusPacketDuration(Uint8Array.from([3])), { message: /no frame count/ });
  t.throws(() => opusPacketDuration(Uint8Array.from([(31 << 3) | 3, 7])), { message: /more than 120 ms/ });
  t.throws(() => opusPacketDuration(Uint8Array.from([(3 << 3) | 3, 3])), { message: /180 ms \(3 frames\), more than 120 ms/ });

  t.match(parseOpusHead(opusHead(2, 3840)), { version: 1, channels: 2, preSkip: 3840, inputSampleRate: 48000, outputGain: -256, channelMappingFamily: 0 });
  t.throws(() => parseOpusHead(opusTags()), TypeError);
  t.throws(() => parseOpusHead(opusHead().subarray(0, 18)), RangeError);
  const v16 = opusHead();
  v16[8] = 0x10;
  t.throws(() => parseOpusHead(v16), { name: 'TypeError', message: /version 16/ });
  t.throws(() => parseOpusHead(opusHead(0)), { message: /0 channels/ });
  t.throws(() => parseOpusHead(opusHead(2, 312, 1, [1, 1])), { message: /too short for 2 channel mappings/ });
  t.throws(() => parseOpusHead(opusHead(2, 312, 1, [1, 2, 0, 1])), { message: /1 streams with 2 coupled/ });
  t.throws(() => parseOpusHead(opusHead(2, 312, 1, [1, 0, 0, 1])), { message: /mapping 1 exceeds the 1 decoded channels/ });
  t.match(parseOpusHead(opusHead(2, 312, 1, [1, 0, 0, 255])), { streamCount: 1, coupledCount: 0 });
});

t.test('reader lifecycle', async (t) => {
  const reader = await openOggOpus(join(fixtures, 'sine-mono-2s.opus'));
  let a = 0;
  for await (const _ of reader.samples()) a++;
  let b = 0;
  for await (const _ of reader.samples({ tracks: [0] })) b++;
  let c = 0;
  for await (const _ of reader.samples({ tracks: [] })) c++;
  t.same([a, b, c], [101, 101, 0]);
  let seen = 0;
  for await (const _ of reader.samples()) {
    seen++;
    await reader.close();
  }
  t.ok(seen >= 1 && seen < 101, 'iteration ends after close');
  await reader.close();
  await t.rejects(async () => {
    for await (const _ of reader.samples()) void _;
  }, /closed/);
});

t.test('duration when the Opus stream ends long before the file (tail search steps back)', async (t) => {
  const audio = Array.from({ length: 50 }, (_, i) => fakeOpusPacket(120, i));
  const opusPages = buildStreamPages({ audio, serial: 1 });
  // Another stream (unknown to us) carries 400 KB after the Opus stream has ended.
  const other = paginate(
    [{ data: Buffer.from('\x01vorbis fake', 'latin1') }, ...Array.from({ length: 100 }, (_, i) => ({ data: fakeOpusPacket(4000, i), granuleEnd: BigInt(i) }))],
    2,
    255,
    new Set([1]),
  );
  const pages = [opusPages[0]!, other[0]!, ...opusPages.slice(1), ...other.slice(1)];
  const path = writeFile('early-end.ogg', pages);
  t.ok(statSync(path).size > 3 * 131072, 'the Opus pages are several tail windows back');
  const { probe, samples } = await readAll(path);
  t.equal(samples.length, 50);
  t.equal(probe.durationMs, Math.round((50 * 960 - 312) / 48));
});

t.test('more stream-level errors', async (t) => {
  const audio = [fakeOpusPacket(100, 1), fakeOpusPacket(100, 2)];
  const fixture = readFileSync(join(fixtures, 'sine-mono-2s.opus'));

  const garbage = await readError(writeFile('garbage.opus', Buffer.concat([fixture, Buffer.from('trailing junk')])));
  t.type(garbage, CorruptMediaError);
  t.match(garbage?.message, new RegExp(`^Ogg: last page: no Ogg capture pattern at offset ${fixture.length}$`));

  const noBos = buildStreamPages({ audio });
  noBos[0]!.flags &= ~2;
  const e1 = await readError(writeFile('nobos.opus', noBos));
  t.type(e1, CorruptMediaError);
  t.match(e1?.message, /first page \(offset 0\) lacks the beginning-of-stream flag/);

  const huge = buildStreamPages({ audio: [fakeOpusPacket(1024 * 1024 + 1, 3)] });
  const e2 = await readError(writeFile('huge.opus', huge));
  t.type(e2, CorruptMediaError);
  t.match(e2?.message, /Opus packet of 1048577 bytes exceeds the 1048576-byte limit/);

  const far = buildStreamPages({ audio, startGranule: 1n << 60n });
  const e3 = await readError(writeFile('far.opus', far));
  t.type(e3, CorruptMediaError);
  t.match(e3?.message, /page 2 at offset \d+: granule position \d+ is out of range/);

  const extraBos = buildStreamPages({ audio: [...audio, ...audio], maxSegments: 1 });
  extraBos[3]!.flags |= 2;
  const e4 = await readError(writeFile('extrabos.opus', extraBos));
  t.match(e4?.message, /page 3 at offset \d+: beginning-of-stream flag in the middle of the stream/);

  const headPlus = paginate([{ data: opusHead() }, { data: opusTags() }, { data: audio[0]!, granuleEnd: 960n }], 1, 255, new Set([2]));
  const e5 = await readError(writeFile('headplus.opus', headPlus));
  t.match(e5?.message, /page 0 at offset 0: the OpusHead page must hold only the OpusHead packet/);

  const reserved = buildStreamPages({ audio });
  reserved[2]!.flags |= 0x10;
  const e6 = await readError(writeFile('reserved.opus', reserved));
  t.type(e6, CorruptMediaError);
  t.match(e6?.message, /^Ogg: page at offset 103 has reserved header flags 0x14$/);
});
