import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { buildAudioSpecificConfig, parseAdtsFrames } from '../../storage/aac.js';
import { openOggOpus, parseOggPage, type OggPage } from '../../storage/ogg.js';
import type { MediaReader, Sample } from '../../storage/types.js';
import { openWav, parseWavHeader } from '../../storage/wav.js';
import { AdtsWriter } from '../../storage/writers/adts.js';
import { AnnexBWriter } from '../../storage/writers/annexb.js';
import { OggOpusWriter } from '../../storage/writers/ogg.js';
import type { ContainerWriter, RecordedFrame } from '../../storage/writers/types.js';
import { wavHeader, WavWriter, type WavCodec } from '../../storage/writers/wav.js';
import { ffmpeg, hasFfmpeg, hasGstreamer, NO_FFMPEG, parseFrameMd5, run } from '../helpers/ffmpeg.js';
import { makeWav, wavData } from '../helpers/media.js';
import { missingTool, skipUnless } from '../helpers/tools.js';

const fixtures = fileURLToPath(new URL('../fixtures/audio/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'offcast-writers-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const noFfmpeg = skipUnless(hasFfmpeg(), NO_FFMPEG);

/** An extended RTP timestamp past 2^32, as the recorder hands them after unwrapping. */
const TS_BASE = 2 ** 32 + 123456;

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function md5(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex');
}

interface Script {
  frames: RecordedFrame[];
  /** Call flush() after these frame indexes. */
  flushAfter?: Set<number>;
  /** Call flush() right before end(). */
  flushBeforeEnd?: boolean;
}

/** Runs a writer like the recorder does; returns the finished file and what a crash before end() leaves. */
function record(w: ContainerWriter, s: Script): { file: Uint8Array; crashed: Uint8Array } {
  const parts: Uint8Array[] = [...w.begin()];
  s.frames.forEach((f, i) => {
    // Copy as DurableFile does: chunks may be views of the frame.
    for (const c of w.frame(f)) parts.push(c.slice());
    if (s.flushAfter?.has(i)) parts.push(...w.flush());
  });
  if (s.flushBeforeEnd) parts.push(...w.flush());
  const crashed = concat(parts);
  const { tail, patches } = w.end();
  const file = concat([...parts, ...tail]);
  for (const p of patches) file.set(p.bytes, p.offset);
  return { file, crashed };
}

async function allSamples(reader: MediaReader): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of reader.samples()) out.push(s);
  await reader.close();
  return out;
}

/** Pages of an Ogg file (each checked by the reader's parser, CRC included). */
function oggPages(file: Uint8Array): OggPage[] {
  const pages: OggPage[] = [];
  for (let at = 0; at < file.length;) {
    const p = parseOggPage(file, at);
    pages.push(p);
    at += p.length;
  }
  return pages;
}

// =============================================================================
// Ogg Opus

interface OpusIn {
  data: Uint8Array;
  duration: number;
}

async function fixturePackets(name: string): Promise<OpusIn[]> {
  const reader = await openOggOpus(join(fixtures, name));
  return (await allSamples(reader)).map((s) => ({ data: s.data, duration: s.duration }));
}

/** Timestamps for a packet list (contiguous), as a sender would stamp them. */
function stamp(packets: OpusIn[], base = TS_BASE): RecordedFrame[] {
  let ts = base;
  return packets.map((p) => {
    const f = { ts, data: p.data, keyframe: true };
    ts += p.duration;
    return f;
  });
}

const TOC_DURATIONS = [
  480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240,
  480, 960,
];

interface OggCheck {
  /** Expected packets in the file, in order. */
  packets: Uint8Array[];
  channels: number;
}

async function checkOgg(t: Test, path: string, file: Uint8Array, want: OggCheck): Promise<void> {
  writeFileSync(path, file);
  const pages = oggPages(file);
  t.ok(pages[0]!.bos && pages.slice(1).every((p) => !p.bos), 'BOS on the first page only');
  t.ok(pages.at(-1)!.eos && pages.slice(0, -1).every((p) => !p.eos), 'EOS on the last page only');
  t.same(
    pages.map((p) => p.sequence),
    pages.map((_, i) => i),
    'page sequence numbers 0, 1, 2, ...',
  );
  t.equal(pages[0]!.granule, 0n, 'OpusHead page granule 0');
  t.equal(pages[1]!.granule, 0n, 'OpusTags page granule 0');
  // Our reader checks every page's granule against the packet durations (strict).
  const reader = await openOggOpus(path);
  t.equal(reader.probe.tracks[0]!.opus!.preSkip, 0, 'pre-skip 0');
  t.equal(reader.probe.tracks[0]!.channels, want.channels);
  const samples = await allSamples(reader);
  t.equal(samples.length, want.packets.length, 'packet count');
  const mismatch = samples.findIndex((s, i) => Buffer.compare(s.data, want.packets[i]!) !== 0);
  t.equal(mismatch, -1, 'every packet read back equals the expected one');
  let pts = 0;
  const ptsOk = samples.every((s) => {
    const ok = s.pts === pts && s.duration === TOC_DURATIONS[s.data[0]! >> 3]! * framesIn(s.data);
    pts += s.duration;
    return ok;
  });
  t.ok(ptsOk, 'pts are the running sum of packet durations');
  const lastGranule = [...pages].reverse().find((p) => p.granule !== -1n)!.granule;
  t.equal(Number(lastGranule), pts, 'last granule = total duration');
}

function framesIn(p: Uint8Array): number {
  const code = p[0]! & 3;
  return code === 0 ? 1 : code === 3 ? p[1]! & 0x3f : 2;
}

/** ffmpeg reads the same packets (by md5) with the same timestamps. */
async function checkOggWithFfmpeg(t: Test, path: string, packets: Uint8Array[]): Promise<void> {
  const md5s = parseFrameMd5((await ffmpeg(['-i', path, '-c', 'copy', '-f', 'framemd5', '-'])).toString());
  t.same(
    md5s.map((m) => m.hash),
    packets.map(md5),
    'ffmpeg -c copy: packet checksums equal the expected packets',
  );
  let pts = 0;
  const want = packets.map((p) => {
    const d = TOC_DURATIONS[p[0]! >> 3]! * framesIn(p);
    const r = { pts, duration: d };
    pts += d;
    return r;
  });
  t.same(
    md5s.map((m) => ({ pts: m.pts, duration: m.duration })),
    want,
    'ffmpeg: pts and durations',
  );
}

t.test('OggOpusWriter: contiguous packets read back exactly (ours and ffmpeg)', async (t) => {
  for (const [name, channels] of [
    ['sine-mono-2s.opus', 1],
    ['stereo-3s.opus', 2],
    ['noise-60ms-256k.opus', 2],
  ] as const) {
    const packets = await fixturePackets(name);
    const w = new OggOpusWriter({ channels, serial: 0x1234abcd });
    const flushAfter = new Set(packets.map((_, i) => i).filter((i) => i % 50 === 49)); // ~1 s
    const { file, crashed } = record(w, { frames: stamp(packets), flushAfter });
    const path = join(dir, `plain-${name}`);
    await checkOgg(t, path, file, { packets: packets.map((p) => p.data), channels });
    // A crash leaves the pages flushed so far, without EOS: still readable, up to the last flush.
    writeFileSync(`${path}.part`, crashed);
    const partial = await allSamples(await openOggOpus(`${path}.part`));
    const flushed = Math.max(...flushAfter) + 1;
    t.ok(partial.length >= flushed && partial.length < packets.length, `crashed file: ${partial.length} packets readable`);
    t.ok(
      partial.every((s, i) => Buffer.compare(s.data, packets[i]!.data) === 0),
      'crashed file: a prefix of the input',
    );
    t.ok(
      oggPages(file).every((p) => p.serial === 0x1234abcd),
      'serial as given',
    );
    t.ok(
      oggPages(file).every((p) => p.bodyLength < 4096 + 1276),
      'pages close at about 4 KB',
    );
    t.same(w.stats, { packets: packets.length, dropped: 0, filled: 0, discontinuities: 0, misaligned: 0 });
    t.equal(
      w.granule,
      packets.reduce((n, p) => n + p.duration, 0),
    );
    if (noFfmpeg) {
      t.comment(NO_FFMPEG);
      continue;
    }
    await checkOggWithFfmpeg(
      t,
      path,
      packets.map((p) => p.data),
    );
    const pcm = await ffmpeg(['-i', path, '-f', 's16le', '-']);
    t.equal(pcm.length, w.granule * channels * 2, 'ffmpeg decodes exactly granule samples');
  }
});

t.test('OggOpusWriter: gaps become TOC-only packets, bad and late packets are dropped', async (t) => {
  const packets = await fixturePackets('stereo-3s.opus'); // 20 ms CELT packets
  const frames = stamp(packets);
  const lost = new Set([3, 10, 11, 12, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50]);
  const input: RecordedFrame[] = [];
  const expected: Uint8Array[] = [];
  frames.forEach((f, i) => {
    if (lost.has(i)) {
      expected.push(Uint8Array.of(f.data[0]! & 0xfc)); // one zero-length frame of the same config
      return;
    }
    input.push(f);
    expected.push(f.data);
    if (i === 5) input.push({ ...frames[5]! }); // duplicate
    if (i === 7) input.push({ ...frames[2]! }); // late (reordered beyond repair)
    if (i === 8) input.push({ ts: frames[9]!.ts, data: new Uint8Array(0), keyframe: true }); // R1: empty
    if (i === 9) input.push({ ts: frames[10]!.ts, data: Uint8Array.of(0xfb, 0x00), keyframe: true }); // code 3, 0 frames
  });
  const w = new OggOpusWriter({ channels: 2 });
  const flushAfter = new Set([20, 60, 100]);
  const { file } = record(w, { frames: input, flushAfter });
  t.same(w.stats, { packets: packets.length - lost.size, dropped: 4, filled: lost.size, discontinuities: 0, misaligned: 0 });
  t.equal(w.granule, frames.at(-1)!.ts - TS_BASE + 960, 'granule = ts span of the stream');
  const path = join(dir, 'gaps.opus');
  await checkOgg(t, path, file, { packets: expected, channels: 2 });
  if (noFfmpeg) return void t.comment(NO_FFMPEG);
  await checkOggWithFfmpeg(t, path, expected);
  const pcm = await ffmpeg(['-i', path, '-f', 's16le', '-']);
  t.equal(pcm.length, w.granule * 2 * 2, 'ffmpeg decodes the fillers too (concealment): timing kept');
  if (!hasGstreamer()) return void t.comment(missingTool('gst-launch-1.0 is not installed: skipping the libopus check'));
  // A second decoder (oggdemux + libopus), on a file that ends with an empty EOS page.
  const w2 = new OggOpusWriter({ channels: 2 });
  const eosPath = join(dir, 'gaps-empty-eos.opus');
  writeFileSync(eosPath, record(w2, { frames: input, flushAfter, flushBeforeEnd: true }).file);
  const raw = join(dir, 'gaps.raw');
  const g = await run('gst-launch-1.0', [
    '-q',
    'filesrc',
    `location=${eosPath}`,
    '!',
    'oggdemux',
    '!',
    'opusdec',
    '!',
    'audio/x-raw,format=S16LE',
    '!',
    'filesink',
    `location=${raw}`,
  ]);
  t.equal(g.code, 0, `gst-launch exits 0 ${g.stderr}`);
  t.equal(readFileSync(raw).length, w2.granule * 2 * 2, 'GStreamer (libopus) decodes exactly granule samples');
});

t.test('OggOpusWriter: fillers for gaps the last frame size does not divide', async (t) => {
  // SILK NB 60 ms (config 3), stereo, then gaps of 2 x 60 ms + 37.5 ms + 0.5 ms.
  const silk60 = (fill: number): Uint8Array => Uint8Array.of((3 << 3) | 0x04, fill, fill, fill);
  const frames: RecordedFrame[] = [
    { ts: 1000, data: silk60(1), keyframe: true },
    { ts: 1000 + 2880 + 2 * 2880 + 1800 + 24, data: silk60(2), keyframe: true },
  ];
  const w = new OggOpusWriter({ channels: 2 });
  const { file } = record(w, { frames });
  const celtNb = (ms: number): number => ((({ 20: 19, 10: 18, 5: 17, 2.5: 16 }) as Record<number, number>)[ms]! << 3) | 0x04;
  const expected = [
    silk60(1),
    Uint8Array.of((3 << 3) | 0x04),
    Uint8Array.of((3 << 3) | 0x04),
    Uint8Array.of(celtNb(20)),
    Uint8Array.of(celtNb(10)),
    Uint8Array.of(celtNb(5)),
    Uint8Array.of(celtNb(2.5)),
    silk60(2),
  ];
  t.same(w.stats, { packets: 2, dropped: 0, filled: 6, discontinuities: 0, misaligned: 1 });
  await checkOgg(t, join(dir, 'fill-mixed.opus'), file, { packets: expected, channels: 2 });
});

t.test('OggOpusWriter: a jump beyond maxGapMs is a discontinuity, not filled', async (t) => {
  const packets = (await fixturePackets('sine-mono-2s.opus')).slice(0, 4);
  const frames = stamp(packets);
  frames[2] = { ...frames[2]!, ts: frames[2]!.ts + 48000 * 2 }; // 2 s jump
  frames[3] = { ...frames[3]!, ts: frames[2]!.ts + 960 };
  const w = new OggOpusWriter({ channels: 1, maxGapMs: 1000 });
  const { file } = record(w, { frames });
  t.same(w.stats, { packets: 4, dropped: 0, filled: 0, discontinuities: 1, misaligned: 0 });
  await checkOgg(t, join(dir, 'jump.opus'), file, { packets: packets.map((p) => p.data), channels: 1 });
});

t.test('OggOpusWriter: packets spanning pages, lengths that are multiples of 255', async (t) => {
  const fill = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
  // Code 3 CBR, 48 frames of 2.5 ms (CELT FB), 1275 bytes each: 61,202 bytes.
  const big = (seed: number): Uint8Array => {
    const p = fill(2 + 48 * 1275, seed);
    p[0] = (28 << 3) | 3;
    p[1] = 48;
    return p;
  };
  // The same with 70,000 bytes of padding: 131,478 bytes, more than two pages can hold.
  const padded = (seed: number): Uint8Array => {
    const lengthBytes = [...Array<number>(275).fill(255), 70000 - 275 * 254];
    const p = fill(2 + lengthBytes.length + 48 * 1275 + 70000, seed);
    p[0] = (28 << 3) | 3;
    p[1] = 0x40 | 48;
    p.set(lengthBytes, 2);
    return p;
  };
  const code0 = (n: number, seed: number): Uint8Array => {
    const p = fill(n, seed);
    p[0] = 31 << 3; // CELT FB 20 ms, one frame
    return p;
  };
  const packets: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) packets.push(code0(100, i)); // 2,000 bytes, 20 segments
  packets.push(big(1), code0(510, 2), code0(255, 3), code0(1020, 4), padded(5), code0(1, 6), big(7));
  const durations = packets.map((p) => (p[0]! >> 3 === 28 ? 5760 : 960));
  const frames = stamp(packets.map((data, i) => ({ data, duration: durations[i]! })));
  const w = new OggOpusWriter({ channels: 2 });
  const { file } = record(w, { frames });
  const pages = oggPages(file);
  t.ok(
    pages.some((p) => p.continued),
    'some page continues a packet',
  );
  t.ok(
    pages.some((p) => p.granule === -1n && p.segmentCount === 255),
    'a page entirely inside one packet has granule -1',
  );
  t.ok(pages.every((p) => p.segmentCount <= 255));
  const path = join(dir, 'span.opus');
  await checkOgg(t, path, file, { packets, channels: 2 });
  if (noFfmpeg) return void t.comment(NO_FFMPEG);
  await checkOggWithFfmpeg(t, path, packets);
});

t.test('OggOpusWriter: end() right after flush() writes an empty EOS page', async (t) => {
  const packets = (await fixturePackets('sine-mono-2s.opus')).slice(0, 30);
  for (const flushBeforeEnd of [true, false]) {
    const w = new OggOpusWriter({ channels: 1 });
    const { file } = record(w, { frames: stamp(packets), flushBeforeEnd });
    const last = oggPages(file).at(-1)!;
    if (flushBeforeEnd) {
      t.equal(last.segmentCount, 0, 'empty last page');
      t.equal(last.granule, -1n, 'no packet completes on it: granule -1 (RFC 3533 6)');
    } else {
      t.ok(last.segmentCount > 0, 'EOS set on the last data page');
    }
    const path = join(dir, `eos-${flushBeforeEnd}.opus`);
    await checkOgg(t, path, file, { packets: packets.map((p) => p.data), channels: 1 });
    if (noFfmpeg) continue;
    const r = await run('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'warning', '-i', path, '-f', 's16le', '-']);
    t.equal(r.code, 0);
    t.equal(r.stderr, '', 'ffmpeg has no warning');
    t.equal(r.stdout.length, w.granule * 2);
  }
});

t.test('OggOpusWriter: no audio at all, and misuse', async (t) => {
  const w = new OggOpusWriter({ channels: 2, inputSampleRate: 16000 });
  t.throws(() => w.frame({ ts: 0, data: Uint8Array.of(0xf8), keyframe: true }), /before begin/);
  t.same(w.flush(), [], 'nothing to flush before begin');
  const { file } = record(w, { frames: [] });
  t.throws(() => w.frame({ ts: 0, data: Uint8Array.of(0xf8), keyframe: true }), /after end/);
  t.same(w.end(), { tail: [], patches: [] }, 'end is idempotent');
  t.equal(oggPages(file).length, 3, 'OpusHead, OpusTags, empty EOS page');
  const path = join(dir, 'empty.opus');
  writeFileSync(path, file);
  const reader = await openOggOpus(path);
  t.equal(reader.probe.durationMs, 0);
  t.equal(reader.probe.tracks[0]!.opus!.inputSampleRate, 16000);
  t.same(await allSamples(reader), []);
  t.throws(() => new OggOpusWriter({ channels: 3 as 2 }), RangeError);
  t.throws(() => new OggOpusWriter({ channels: 1, serial: 2 ** 32 }), RangeError);
  t.throws(() => new OggOpusWriter({ channels: 1, maxGapMs: -1 }), RangeError);
  const tags = oggPages(file)[1]!;
  t.equal(Buffer.from(file.subarray(tags.bodyOffset + 12, tags.bodyOffset + 19)).toString(), 'offcast', 'vendor string');
});

// =============================================================================
// WAV

interface WavCase {
  codec: WavCodec;
  sampleRate: number;
  channels: number;
  /** Sample data of the whole stream. */
  data: Uint8Array;
  frameSamples: number;
  silence: number;
  ffmpegFormat: string;
}

function g711Bytes(n: number, seed: number): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x >>> 24;
  });
}

const wavCases: WavCase[] = [
  { codec: 'pcm_s16le', sampleRate: 48000, channels: 2, data: wavData(makeWav(48000, 2, 2)), frameSamples: 960, silence: 0, ffmpegFormat: 's16le' },
  { codec: 'pcm_s16le', sampleRate: 8000, channels: 1, data: wavData(makeWav(8000, 1, 2)), frameSamples: 160, silence: 0, ffmpegFormat: 's16le' },
  // 16,081 bytes: an odd data chunk needs a pad byte.
  { codec: 'pcm_mulaw', sampleRate: 8000, channels: 1, data: g711Bytes(16081, 1), frameSamples: 160, silence: 0xff, ffmpegFormat: 'mulaw' },
  { codec: 'pcm_alaw', sampleRate: 8000, channels: 1, data: g711Bytes(16000, 2), frameSamples: 160, silence: 0xd5, ffmpegFormat: 'alaw' },
];

t.test('WavWriter: samples read back exactly, gaps filled with silence (ours and ffmpeg)', async (t) => {
  for (const c of wavCases) {
    const blockAlign = c.channels * (c.codec === 'pcm_s16le' ? 2 : 1);
    const frameBytes = c.frameSamples * blockAlign;
    const lost = new Set([2, 7, 8, 9, 30]);
    const input: RecordedFrame[] = [];
    const expected: Uint8Array[] = [];
    let dropped = 0;
    for (let i = 0; i * frameBytes < c.data.length; i++) {
      const data = c.data.subarray(i * frameBytes, (i + 1) * frameBytes);
      const ts = TS_BASE + i * c.frameSamples;
      if (lost.has(i)) {
        expected.push(new Uint8Array(data.length).fill(c.silence));
        continue;
      }
      input.push({ ts, data, keyframe: true });
      expected.push(data);
      if (i === 4) input.push({ ts, data, keyframe: true }, { ts: ts - 1, data, keyframe: true }); // duplicate, late
      if (i === 5 && blockAlign > 1) input.push({ ts: ts + c.frameSamples, data: data.subarray(1), keyframe: true }); // partial frame
      dropped += i === 4 ? 2 : i === 5 && blockAlign > 1 ? 1 : 0;
    }
    const want = concat(expected);
    const w = new WavWriter({ codec: c.codec, sampleRate: c.sampleRate, channels: c.channels });
    const { file, crashed } = record(w, { frames: input });
    const name = `${c.codec}-${c.sampleRate}-${c.channels}`;
    t.equal(w.stats.dropped, dropped, `${name}: dropped`);
    t.equal(w.stats.silenceFrames, [...lost].length * c.frameSamples, `${name}: silence frames`);
    t.equal(w.stats.frames, want.length / blockAlign);

    const header = parseWavHeader(file, file.length);
    t.equal(header.dataBytes, want.length, `${name}: data size patched`);
    t.equal(header.dataOffset, c.codec === 'pcm_s16le' ? 44 : 58);
    const view = new DataView(file.buffer);
    t.equal(view.getUint32(4, true), file.length - 8, `${name}: RIFF size counts the pad byte`);
    t.equal(file.length, header.dataOffset + want.length + (want.length & 1));
    if (c.codec !== 'pcm_s16le') {
      t.equal(Buffer.from(file.subarray(38, 42)).toString(), 'fact');
      t.equal(view.getUint32(46, true), want.length, `${name}: fact sample count`);
      t.equal(view.getUint16(36, true), 0, 'cbSize 0');
    }
    t.same(file.subarray(0, header.dataOffset), wavHeader(w.format, want.length), 'wavHeader() gives the same header');

    const path = join(dir, `${name}.wav`);
    writeFileSync(path, file);
    const got = concat((await allSamples(await openWav(path))).map((s) => s.data));
    t.ok(Buffer.compare(got, want) === 0, `${name}: openWav reads the input with silence at the gaps`);

    // A crash leaves the placeholder sizes: readers that stream to the end still play it,
    // and rewriting the header with wavHeader() recovers it.
    t.equal(crashed.length, header.dataOffset + want.length, 'a crash before end() leaves header and data');
    t.throws(() => parseWavHeader(crashed, crashed.length), RangeError, 'placeholder sizes are not a finished file');
    const recovered = crashed.slice();
    recovered.set(wavHeader(w.format, want.length), 0);
    t.equal(parseWavHeader(recovered, recovered.length).dataBytes, want.length, 'recovered with wavHeader()');
    if (noFfmpeg) {
      t.comment(NO_FFMPEG);
      continue;
    }
    for (const [label, p, bytes] of [
      ['finished', path, file],
      ['crashed', `${path}.part`, crashed],
    ] as const) {
      writeFileSync(p, bytes);
      const out = await ffmpeg(['-i', p, '-c:a', 'copy', '-f', c.ffmpegFormat, '-']);
      t.ok(Buffer.compare(out, want) === 0, `${name}: ffmpeg reads the ${label} file's samples exactly`);
    }
  }
});

t.test('WavWriter: discontinuity, misuse, limits', async (t) => {
  const w = new WavWriter({ codec: 'pcm_mulaw', sampleRate: 8000, channels: 1, maxGapMs: 100 });
  t.throws(() => w.frame({ ts: 0, data: new Uint8Array(160), keyframe: true }), /before begin/);
  w.begin();
  t.equal(w.frame({ ts: 0, data: new Uint8Array(160), keyframe: true }).length, 1);
  t.equal(w.frame({ ts: 160 + 800, data: new Uint8Array(160), keyframe: true }).length, 2, '100 ms gap: filled');
  t.equal(w.frame({ ts: 160 + 800 + 160 + 801, data: new Uint8Array(160), keyframe: true }).length, 1, '100.1 ms: not filled');
  t.same(w.stats, { frames: 1280, dropped: 0, silenceFrames: 800, discontinuities: 1 });
  t.same(w.flush(), []);
  const { tail, patches } = w.end();
  t.same(tail, [], 'even data: no pad byte');
  t.equal(patches.length, 1);
  t.same(w.end(), { tail: [], patches: [] }, 'end is idempotent');
  t.throws(() => new WavWriter({ codec: 'pcm_f32le' as WavCodec, sampleRate: 8000, channels: 1 }), RangeError);
  t.throws(() => new WavWriter({ codec: 'pcm_s16le', sampleRate: 0, channels: 1 }), RangeError);
  t.throws(() => new WavWriter({ codec: 'pcm_s16le', sampleRate: 8000, channels: 0 }), RangeError);
  t.throws(() => wavHeader({ codec: 'pcm_s16le', sampleRate: 8000, channels: 1 }, 2 ** 32 - 10), RangeError, 'over 4 GiB');
  t.throws(() => wavHeader({ codec: 'pcm_s16le', sampleRate: 8000, channels: 1 }, 3.5), RangeError);
  const unknown = new DataView(wavHeader({ codec: 'pcm_alaw', sampleRate: 8000, channels: 1 }, 0xffffffff).buffer);
  t.equal(unknown.getUint32(4, true), 0xffffffff, 'placeholder RIFF size');
  t.equal(unknown.getUint32(54, true), 0xffffffff, 'placeholder data size');
});

// =============================================================================
// ADTS

t.test('AdtsWriter: AUs read back exactly; ffmpeg decodes it like its own ADTS', { skip: noFfmpeg }, async (t) => {
  for (const [rate, channels] of [
    [48000, 2],
    [22050, 1],
  ] as const) {
    const source = join(dir, `src-${rate}-${channels}.aac`);
    await ffmpeg([
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=${rate}:duration=1`,
      '-ac',
      String(channels),
      '-c:a',
      'aac',
      '-b:a',
      '48k',
      '-f',
      'adts',
      '-y',
      source,
    ]);
    const original = new Uint8Array(readFileSync(source));
    const { frames, end } = parseAdtsFrames(original);
    t.equal(end, original.length);
    const asc = buildAudioSpecificConfig(frames[0]!.objectType, rate, frames[0]!.channelConfiguration);
    const w = new AdtsWriter({ audioSpecificConfig: asc });
    const input = frames.map((f, i) => ({ ts: i * 1024, data: f.data, keyframe: true }));
    const { file } = record(w, { frames: input, flushAfter: new Set([10]) });
    t.equal(w.stats.frames, frames.length);
    const back = parseAdtsFrames(file);
    t.equal(back.end, file.length, 'whole frames only');
    t.same(
      back.frames.map((f) => md5(f.data)),
      frames.map((f) => md5(f.data)),
      'every AU read back',
    );
    t.ok(back.frames.every((f) => f.sampleRate === rate && f.channelConfiguration === channels && f.objectType === 2));
    t.ok(Buffer.compare(file, original) === 0, "byte-identical to ffmpeg's adts muxer");
    const path = join(dir, `ours-${rate}-${channels}.aac`);
    writeFileSync(path, file);
    const a = await ffmpeg(['-i', source, '-f', 's16le', '-']);
    const b = await ffmpeg(['-i', path, '-f', 's16le', '-']);
    t.ok(a.length > 0 && Buffer.compare(a, b) === 0, 'ffmpeg decodes the same audio');
  }
});

t.test('AdtsWriter: configs ADTS cannot carry, bad AUs', async (t) => {
  t.throws(() => new AdtsWriter({ audioSpecificConfig: buildAudioSpecificConfig(2, 44000, 2) }), RangeError, 'explicit rate');
  t.throws(() => new AdtsWriter({ audioSpecificConfig: buildAudioSpecificConfig(23, 48000, 1) }), RangeError, 'AAC-LD');
  t.throws(() => new AdtsWriter({ audioSpecificConfig: new Uint8Array(0) }), RangeError, 'empty config');
  t.throws(() => new AdtsWriter({ audioSpecificConfig: Uint8Array.of(0, 0) }), TypeError, 'object type 0');
  const w = new AdtsWriter({ audioSpecificConfig: buildAudioSpecificConfig(2, 48000, 2) });
  t.same(w.begin(), []);
  t.same(w.frame({ ts: 0, data: new Uint8Array(0), keyframe: true }), []);
  t.same(w.frame({ ts: 0, data: new Uint8Array(8185), keyframe: true }), []);
  const ok = w.frame({ ts: 0, data: new Uint8Array(8184).fill(7), keyframe: true });
  t.equal(ok.length, 2);
  t.equal(parseAdtsFrames(concat(ok)).frames[0]!.data.length, 8184, 'largest AU');
  t.same(w.stats, { frames: 1, dropped: 2 });
  t.same(w.end(), { tail: [], patches: [] });
});

// =============================================================================
// Annex B

/** NAL units of an Annex B stream (a minimal start-code scan, independent of storage/h264). */
function splitNals(buf: Uint8Array): Uint8Array[] {
  const starts: number[] = [];
  for (let i = 0; i + 2 < buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1) {
      starts.push(i + 3);
      i += 2;
    }
  }
  return starts.map((s, k) => {
    let end = k + 1 < starts.length ? starts[k + 1]! - 3 : buf.length;
    while (end > s && buf[end - 1] === 0) end--; // the next start code's zero_byte
    return buf.subarray(s, end);
  });
}

/** Groups NAL units into access units (one slice per picture, as x264 writes by default). */
function accessUnits(nals: Uint8Array[]): RecordedFrame[] {
  const aus: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let hasVcl = false;
  for (const nal of nals) {
    const type = nal[0]! & 0x1f;
    const vcl = type === 1 || type === 5;
    const firstSlice = vcl && (nal[1]! & 0x80) !== 0; // first_mb_in_slice == 0
    if (hasVcl && (!vcl || firstSlice)) {
      aus.push(current);
      current = [];
      hasVcl = false;
    }
    current.push(nal);
    hasVcl ||= vcl;
  }
  if (current.length > 0) aus.push(current);
  return aus.map((nals, i) => ({ ts: i * 3600, data: new Uint8Array(0), nals, keyframe: nals.some((n) => (n[0]! & 0x1f) === 5) }));
}

t.test('AnnexBWriter: ffmpeg decodes the rewritten stream to the same frames', { skip: noFfmpeg }, async (t) => {
  const source = join(dir, 'src.h264');
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=160x120:rate=25:duration=2',
    '-c:v',
    'libx264',
    '-g',
    '10',
    '-bf',
    '2',
    '-pix_fmt',
    'yuv420p',
    '-f',
    'h264',
    '-y',
    source,
  ]);
  const nals = splitNals(new Uint8Array(readFileSync(source)));
  const aus = accessUnits(nals);
  const sps = nals.filter((n) => (n[0]! & 0x1f) === 7);
  const pps = nals.filter((n) => (n[0]! & 0x1f) === 8);
  t.equal(aus.length, 50, '50 access units');
  t.equal(aus.filter((a) => a.keyframe).length, 5, 'an IDR every 10 frames');
  const framemd5 = async (path: string): Promise<string[]> => parseFrameMd5((await ffmpeg(['-i', path, '-f', 'framemd5', '-'])).toString()).map((f) => f.hash);
  const original = await framemd5(source);
  t.equal(original.length, 50);

  const variants: { name: string; frames: RecordedFrame[]; want: string[]; dropped: number }[] = [
    { name: 'in-band parameter sets kept', frames: aus, want: original, dropped: 0 },
    {
      name: 'parameter sets only from the SDP',
      frames: aus.map((a) => ({ ...a, nals: a.nals!.filter((n) => ![7, 8].includes(n[0]! & 0x1f)) })),
      want: original,
      dropped: 0,
    },
    // Joined mid-GOP: what comes before the next IDR cannot be decoded and is dropped.
    { name: 'joined mid-GOP', frames: aus.slice(13), want: original.slice(20), dropped: 7 },
  ];
  for (const v of variants) {
    const w = new AnnexBWriter({ sps, pps });
    const { file } = record(w, { frames: v.frames });
    const path = join(dir, `${v.name.replace(/\W+/g, '-')}.h264`);
    writeFileSync(path, file);
    t.equal(w.stats.dropped, v.dropped, `${v.name}: dropped before the first IDR`);
    t.same(await framemd5(path), v.want, `${v.name}: same decoded frames`);
  }
});

t.test('AnnexBWriter: byte layout', async (t) => {
  const sps = Uint8Array.of(0x67, 1, 2);
  const pps = Uint8Array.of(0x68, 3);
  const w = new AnnexBWriter({ sps: [sps], pps: [pps, new Uint8Array(0)] });
  t.same(concat(w.begin()), Uint8Array.of(0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3));
  t.same(w.frame({ ts: 0, data: new Uint8Array(0), nals: [Uint8Array.of(0x41, 9)], keyframe: false }), [], 'P before IDR dropped');
  t.same(w.frame({ ts: 0, data: new Uint8Array(0), keyframe: true }), [], 'no NALs: dropped');
  const idr = w.frame({ ts: 0, data: new Uint8Array(0), nals: [Uint8Array.of(0x65, 7), new Uint8Array(0), Uint8Array.of(0x65, 8)], keyframe: true });
  t.same(concat(idr), Uint8Array.of(0, 0, 0, 1, 0x65, 7, 0, 0, 0, 1, 0x65, 8));
  t.same(concat(w.frame({ ts: 1, data: new Uint8Array(0), nals: [Uint8Array.of(0x41, 9)], keyframe: false })), Uint8Array.of(0, 0, 0, 1, 0x41, 9));
  t.same(w.stats, { frames: 2, dropped: 2, emptyNals: 1 });
});
