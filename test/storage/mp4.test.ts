import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CorruptMediaError, MediaError, UnsupportedMediaError } from '../../storage/errors.js';
import { openMp4, rescale, splitLengthPrefixed } from '../../storage/mp4.js';
import type { MediaReader, Sample } from '../../storage/types.js';
import { hasFfmpeg as hasFfmpegTool, skipUnless } from '../helpers/tools.js';

const hasFfmpeg = hasFfmpegTool();
const noFfmpeg = skipUnless(hasFfmpeg, 'ffmpeg/ffprobe not installed: MP4 fixtures cannot be generated');
const hasX265 = hasFfmpeg && execFileSync('ffmpeg', ['-hide_banner', '-encoders']).toString().includes('libx265');
const dir = mkdtempSync(join(tmpdir(), 'offcast-mp4-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// --- fixtures ------------------------------------------------------------------

const VIDEO_IN = ['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=30:duration=3'];
const AUDIO_IN = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=3'];
const X264 = ['-c:v', 'libx264', '-bf', '2', '-g', '50', '-pix_fmt', 'yuv420p', '-preset', 'veryfast'];
const AAC = ['-c:a', 'aac', '-ac', '2'];

function ffmpeg(name: string, args: string[]): string {
  const path = join(dir, name);
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args, path]);
  return path;
}

const made = new Map<string, string>();
/** Builds a fixture once (lazily, so a skipped run builds nothing). */
function fixture(name: string): string {
  let path = made.get(name);
  if (path !== undefined) return path;
  switch (name) {
    case 'av.mp4': // moov at the end (ffmpeg's default)
      path = ffmpeg(name, [...VIDEO_IN, ...AUDIO_IN, ...X264, ...AAC]);
      break;
    case 'av-faststart.mp4':
      path = ffmpeg(name, ['-i', fixture('av.mp4'), '-c', 'copy', '-movflags', '+faststart']);
      break;
    case 'av.mov':
      path = ffmpeg(name, ['-i', fixture('av.mp4'), '-c', 'copy', '-f', 'mov']);
      break;
    case 'negative-cts.mp4': // ctts v1 with negative offsets
      path = ffmpeg(name, ['-i', fixture('av.mp4'), '-c', 'copy', '-movflags', '+negative_cts_offsets']);
      break;
    case 'delayed-audio.mp4': // audio starts 0.5 s later: an empty edit at its start
      path = ffmpeg(name, [...VIDEO_IN, '-itsoffset', '0.5', ...AUDIO_IN, ...X264, ...AAC]);
      break;
    case 'video-only.mp4':
      path = ffmpeg(name, [...VIDEO_IN, ...X264, '-movflags', '+faststart']);
      break;
    case 'avc3.mp4': // parameter sets repeated in the stream
      path = ffmpeg(name, [...VIDEO_IN, ...X264, '-x264-params', 'repeat-headers=1', '-tag:v', 'avc3', '-movflags', '+faststart']);
      break;
    case 'audio-only.mp4': // 48 kHz mono
      path = ffmpeg(name, ['-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=48000:duration=2', '-c:a', 'aac', '-ac', '1']);
      break;
    case 'h264-ac3.mp4':
      path = ffmpeg(name, [...VIDEO_IN, ...AUDIO_IN, ...X264, '-c:a', 'ac3']);
      break;
    case 'unsupported.mp4':
      path = ffmpeg(name, [...VIDEO_IN, ...AUDIO_IN, ...(hasX265 ? ['-c:v', 'libx265', '-tag:v', 'hvc1'] : ['-c:v', 'mpeg4']), '-c:a', 'mp2']);
      break;
    case 'fragmented.mp4':
      path = ffmpeg(name, ['-i', fixture('av.mp4'), '-c', 'copy', '-movflags', 'frag_keyframe+empty_moov']);
      break;
    case 'with-subtitles.mp4':
    case 'subtitles-only.mp4': {
      const srt = join(dir, 'subs.srt');
      writeFileSync(srt, '1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,500 --> 00:00:02,500\nworld\n');
      path =
        name === 'with-subtitles.mp4'
          ? ffmpeg(name, ['-i', fixture('video-only.mp4'), '-i', srt, '-map', '0:v', '-map', '1:s', '-c:v', 'copy', '-c:s', 'mov_text'])
          : ffmpeg(name, ['-i', srt, '-c:s', 'mov_text']);
      break;
    }
    default:
      throw new Error(`unknown fixture ${name}`);
  }
  made.set(name, path);
  return path;
}

function copyWith(name: string, from: string, edit: (b: Buffer) => Buffer | void): string {
  const bytes = Buffer.from(readFileSync(from));
  const out = edit(bytes) ?? bytes;
  const path = join(dir, name);
  writeFileSync(path, out);
  return path;
}

// --- ffprobe / ffmpeg as the reference ------------------------------------------

interface FfStream {
  index: number;
  codec_type: string;
  codec_name: string;
  time_base: string;
  sample_rate?: string;
  channels?: number;
  width?: number;
  height?: number;
}
interface FfPacket {
  stream_index: number;
  pts: number;
  dts: number;
  duration: number;
  flags: string;
  pos: string;
  size: string;
}

function ffprobe(path: string): { streams: FfStream[]; packets: FfPacket[] } {
  const out = execFileSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-show_entries',
      'stream=index,codec_type,codec_name,time_base,sample_rate,channels,width,height:packet=stream_index,pts,dts,duration,flags,pos,size',
      '-of',
      'json',
      path,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return JSON.parse(out.toString()) as { streams: FfStream[]; packets: FfPacket[] };
}

/** Per stream, [size, md5] of every packet as ffmpeg's demuxer returns it (-c copy). */
function framemd5(path: string): Map<number, [number, string][]> {
  const out = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', path, '-map', '0', '-c', 'copy', '-f', 'framemd5', '-'], {
    maxBuffer: 64 * 1024 * 1024,
  }).toString();
  const byStream = new Map<number, [number, string][]>();
  for (const line of out.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(',').map((s) => s.trim());
    const stream = Number(f[0]);
    if (!byStream.has(stream)) byStream.set(stream, []);
    byStream.get(stream)!.push([Number(f[4]), f[5]!]);
  }
  return byStream;
}

/** round(v * clock / timescale) with halves up, in BigInt: independent of the reader's rescale. */
function toClock(v: number, timescale: number, clock: number): number {
  const num = 2n * BigInt(v) * BigInt(clock) + BigInt(timescale);
  const den = 2n * BigInt(timescale);
  let q = num / den;
  if (num % den !== 0n && num < 0n) q -= 1n; // floor
  return Number(q);
}

async function collect(reader: MediaReader, tracks?: number[]): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of reader.samples(tracks === undefined ? undefined : { tracks })) out.push(s);
  return out;
}

function md5(parts: Uint8Array[]): string {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** A video sample back in its MP4 form: each NAL with a 4-byte length (x264's lengthSize). */
function lengthPrefixed(nals: Uint8Array[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (const n of nals) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, n.length);
    parts.push(len, n);
  }
  return parts;
}

/**
 * Compares probe and every sample of `path` with ffprobe/ffmpeg: track list, clock
 * rates, durations, per-track packet count, bytes (md5), keyframes, and pts/dts/duration
 * (ffprobe's, applying the same common zero: the earliest dts/pts over the tracks).
 * `lastDuration: false` skips the last sample's duration (and so the track
 * durations): with several edits ffmpeg's demuxer replaces the stts value.
 * Returns the list of differences (empty when all match).
 */
async function diffWithFfmpeg(path: string, reader: MediaReader, opts: { lastDuration?: boolean } = {}): Promise<string[]> {
  const checkLast = opts.lastDuration ?? true;
  const diffs: string[] = [];
  const ff = ffprobe(path);
  const hashes = framemd5(path);
  const { probe } = reader;
  if (probe.format !== 'mp4') diffs.push(`format ${probe.format}`);
  if (probe.bytes !== statSync(path).size) diffs.push(`bytes ${probe.bytes}`);
  if (probe.tracks.length !== ff.streams.length) diffs.push(`${probe.tracks.length} tracks, ffprobe ${ff.streams.length}`);
  const timescale = (s: FfStream): number => Number(s.time_base.split('/')[1]);
  const clockOf = (s: FfStream): number => (s.codec_type === 'video' ? 90000 : Number(s.sample_rate));

  // The common zero, from ffprobe's numbers.
  let zero: { v: number; ts: number } | undefined;
  for (const p of ff.packets) {
    const s = ff.streams[p.stream_index]!;
    if (!probe.tracks[p.stream_index]?.supported) continue;
    for (const v of [p.dts, p.pts]) {
      if (zero === undefined || v / timescale(s) < zero.v / zero.ts) zero = { v, ts: timescale(s) };
    }
  }
  const samples = await collect(reader);
  let maxDuration = 0;
  for (const s of ff.streams) {
    const track = probe.tracks[s.index]!;
    const packets = ff.packets.filter((p) => p.stream_index === s.index);
    const ts = timescale(s);
    const ms = Math.round((packets.reduce((sum, p) => sum + p.duration, 0) * 1000) / ts);
    maxDuration = Math.max(maxDuration, ms);
    if (track.kind !== s.codec_type) diffs.push(`track ${s.index}: kind ${track.kind}, ffprobe ${s.codec_type}`);
    if (checkLast && track.durationMs !== ms) diffs.push(`track ${s.index}: durationMs ${track.durationMs}, ffprobe ${ms}`);
    if (!track.supported) continue;
    const clock = clockOf(s);
    if (track.clockRate !== clock) diffs.push(`track ${s.index}: clockRate ${track.clockRate}, expected ${clock}`);
    if (s.codec_type === 'audio' && track.channels !== s.channels) diffs.push(`track ${s.index}: channels ${track.channels}`);
    if (s.codec_type === 'video' && (track.h264?.width !== s.width || track.h264?.height !== s.height)) {
      diffs.push(`track ${s.index}: size ${track.h264?.width}x${track.h264?.height}`);
    }
    const ours = samples.filter((x) => x.track === s.index);
    const md5s = hashes.get(s.index) ?? [];
    if (ours.length !== packets.length) diffs.push(`track ${s.index}: ${ours.length} samples, ffprobe ${packets.length}`);
    if (md5s.length !== packets.length) diffs.push(`track ${s.index}: ffmpeg framemd5 has ${md5s.length} packets`);
    const zeroHere = toClock(zero!.v, zero!.ts, clock);
    for (let i = 0; i < Math.min(ours.length, packets.length); i++) {
      const o = ours[i]!;
      const p = packets[i]!;
      const expected = {
        pts: toClock(p.pts, ts, clock) - zeroHere,
        dts: toClock(p.dts, ts, clock) - zeroHere,
        duration: checkLast || i < packets.length - 1 ? toClock(p.dts + p.duration, ts, clock) - toClock(p.dts, ts, clock) : o.duration,
        keyframe: s.codec_type === 'audio' || p.flags.startsWith('K'),
        md5: md5s[i]?.[1],
      };
      const got = {
        pts: o.pts,
        dts: o.dts,
        duration: o.duration,
        keyframe: o.keyframe,
        md5: o.nals ? md5(lengthPrefixed(o.nals)) : md5([o.data]),
      };
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        diffs.push(`track ${s.index} sample ${i}: ours ${JSON.stringify(got)}, ffmpeg ${JSON.stringify(expected)}`);
        if (diffs.length > 20) return diffs;
      }
    }
  }
  if (checkLast && probe.durationMs !== maxDuration) diffs.push(`durationMs ${probe.durationMs}, expected ${maxDuration}`);
  // Interleaving: non-decreasing dts in seconds across tracks; nothing negative.
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.dts < 0 || s.pts < 0) diffs.push(`sample ${i} has a negative timestamp`);
    if (i > 0) {
      const prev = samples[i - 1]!;
      const a = prev.dts / probe.tracks[prev.track]!.clockRate;
      const b = s.dts / probe.tracks[s.track]!.clockRate;
      if (b < a) diffs.push(`sample ${i} (track ${s.track}) at ${b}s comes after one at ${a}s`);
    }
  }
  return diffs;
}

async function rejects(t: Test, path: string, type: typeof CorruptMediaError | typeof UnsupportedMediaError, message: RegExp): Promise<void> {
  try {
    const r = await openMp4(path);
    await r.close();
    t.fail(`opened ${path}, expected ${type.name}`);
  } catch (err) {
    t.type(err, type, `${type.name}: ${(err as Error).message}`);
    t.match((err as Error).message, message);
    t.equal((err as MediaError).statusCode, type === CorruptMediaError ? 422 : 415);
  }
}

// --- pure helpers ---------------------------------------------------------------

t.test('rescale is exact integer rounding, negative values included', async (t) => {
  const cases: [number, number, number, number][] = [
    [1024, 15360, 90000, 6000],
    [-1024, 15360, 90000, -6000],
    [-1024, 44100, 44100, -1024],
    [1, 3, 2, 1], // 0.666 -> 1
    [-1, 3, 2, -1], // -0.666 -> -1
    [1, 4, 2, 1], // 0.5 rounds up
    [-1, 4, 2, 0], // -0.5 rounds up
    [2 ** 40 + 7, 90000, 48000, toClock(2 ** 40 + 7, 90000, 48000)],
  ];
  for (const [v, from, to, want] of cases) t.equal(rescale(v, from, to), want, `${v} @${from} -> @${to}`);
  for (let v = -5000; v <= 5000; v += 37) t.equal(rescale(v, 15360, 90000), toClock(v, 15360, 90000));
});

t.test('splitLengthPrefixed', async (t) => {
  const s = Uint8Array.of(0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41);
  t.same(
    splitLengthPrefixed(s, 4).map((n) => [...n]),
    [[0x65, 1], [0x41]],
  );
  t.same(
    splitLengthPrefixed(Uint8Array.of(0, 1, 9, 0, 0), 2).map((n) => [...n]),
    [[9]],
    'zero-length NAL skipped',
  );
  t.same(
    splitLengthPrefixed(Uint8Array.of(1, 7, 1, 8), 1).map((n) => [...n]),
    [[7], [8]],
  );
  t.throws(() => splitLengthPrefixed(Uint8Array.of(0, 0, 0, 3, 1, 2), 4), RangeError, 'length past the sample');
  t.throws(() => splitLengthPrefixed(Uint8Array.of(0, 0, 0, 1, 1, 0, 0), 4), RangeError, 'length prefix cut');
});

// --- files made by ffmpeg -------------------------------------------------------

t.test('H.264 (B-frames) + AAC, moov at end and faststart, MOV', { skip: noFfmpeg }, async (t) => {
  const results: Sample[][] = [];
  for (const name of ['av.mp4', 'av-faststart.mp4', 'av.mov']) {
    const path = fixture(name);
    const reader = await openMp4(path);
    t.teardown(() => reader.close());
    const { probe } = reader;
    t.match(
      probe.tracks,
      [
        { index: 0, kind: 'video', codec: 'h264', supported: true, clockRate: 90000 },
        { index: 1, kind: 'audio', codec: 'aac', supported: true, clockRate: 44100, channels: 2 },
      ],
      `${name}: tracks`,
    );
    const h264 = probe.tracks[0]!.h264!;
    t.equal(h264.sps.length, 1);
    t.equal(h264.pps.length, 1);
    t.equal(h264.sps[0]![0]! & 0x1f, 7, 'SPS NAL');
    t.equal(h264.pps[0]![0]! & 0x1f, 8, 'PPS NAL');
    t.equal(h264.profileLevelId, Buffer.from(h264.sps[0]!.subarray(1, 4)).toString('hex'));
    t.same(
      probe.tracks[1]!.aac,
      { audioSpecificConfig: Uint8Array.of(0x12, 0x10, 0x56, 0xe5, 0x00), objectType: 2, sampleRate: 44100, channels: 2 },
      'ASC as ffmpeg writes it',
    );
    t.same(await diffWithFfmpeg(path, reader), [], `${name}: every sample equals ffmpeg's`);
    results.push(await collect(reader));
  }
  const strip = (ss: Sample[]): unknown[] => ss.map((s) => ({ ...s, data: [...s.data], nals: s.nals?.map((n) => [...n]) }));
  t.same(strip(results[1]!), strip(results[0]!), 'faststart yields the same samples as moov-at-end');
  t.same(strip(results[2]!), strip(results[0]!), 'MOV yields the same samples');
});

t.test('64-bit box size and size 0 (to the end of the file)', { skip: noFfmpeg }, async (t) => {
  const plain = await openMp4(fixture('av.mp4'));
  t.teardown(() => plain.close());
  const want = (await collect(plain)).map((s) => [s.track, s.pts, md5(s.nals ?? [s.data])]);
  // ffmpeg writes ftyp, free (8 bytes), mdat: fold free into a 16-byte mdat header
  // with a 64-bit size, as QuickTime's 'wide' allows; no byte of data moves.
  const large = copyWith('largesize.mp4', fixture('av.mp4'), (b) => {
    const free = b.indexOf(Buffer.from('free')) - 4;
    t.equal(b.readUInt32BE(free), 8);
    t.equal(b.toString('latin1', free + 12, free + 16), 'mdat');
    const mdatSize = b.readUInt32BE(free + 8);
    b.writeUInt32BE(1, free);
    b.write('mdat', free + 4, 'latin1');
    b.writeUInt32BE(0, free + 8);
    b.writeUInt32BE(mdatSize + 8, free + 12);
  });
  // faststart: the mdat is the last box; size 0 means "to the end of the file".
  const toEnd = copyWith('size0.mp4', fixture('av-faststart.mp4'), (b) => {
    b.writeUInt32BE(0, b.lastIndexOf(Buffer.from('mdat')) - 4);
  });
  for (const path of [large, toEnd]) {
    const r = await openMp4(path);
    t.teardown(() => r.close());
    t.same(
      (await collect(r)).map((s) => [s.track, s.pts, md5(s.nals ?? [s.data])]),
      want,
      path,
    );
  }
});

t.test('track selection, keyframes, B-frame timing', { skip: noFfmpeg }, async (t) => {
  const reader = await openMp4(fixture('av.mp4'));
  t.teardown(() => reader.close());
  const all = await collect(reader);
  const audio = await collect(reader, [1]);
  const video = await collect(reader, [0]);
  t.ok(audio.length > 100 && audio.every((s) => s.track === 1 && s.keyframe && s.nals === undefined));
  t.same(
    audio.map((s) => s.pts),
    all.filter((s) => s.track === 1).map((s) => s.pts),
  );
  t.ok(video.every((s) => s.track === 0 && s.data.length === 0 && s.nals!.length > 0));
  t.equal(video.filter((s) => s.keyframe).length, 2, 'IDR at 0 and 50 (-g 50)');
  t.ok(video[0]!.keyframe && video[50]!.keyframe);
  t.equal(video[0]!.dts, 0, 'video has the earliest dts: the common zero');
  t.equal(video[0]!.pts, 6000, 'first pts = two frames of B-frame delay');
  t.ok(
    video.some((s) => s.pts < s.dts + 3000 * 2 && s.pts > s.dts),
    'B-frame reordering present',
  );
  t.equal(audio[0]!.pts, 2940 - 1024, 'AAC priming frame kept, 1024 before presentation start');
  t.same(await collect(reader, [5]), [], 'unknown track selects nothing');
});

t.test('edit lists and ctts variants', { skip: noFfmpeg }, async (t) => {
  // ctts v1: the dts move earlier by the largest negative offset, as in ffmpeg.
  const negative = await openMp4(fixture('negative-cts.mp4'));
  t.teardown(() => negative.close());
  t.same(await diffWithFfmpeg(fixture('negative-cts.mp4'), negative), [], "negative ctts: every sample equals ffmpeg's");
  const plain = await openMp4(fixture('av.mp4'));
  t.teardown(() => plain.close());
  // Same presentation as the edit-list form of the file (only the decode delay differs).
  const relative = (ss: Sample[]): number[] => ss.map((s) => s.pts - ss[0]!.pts);
  const negVideo = await collect(negative, [0]);
  t.same(relative(negVideo), relative(await collect(plain, [0])), 'same relative video pts as the edit-list form');
  t.ok(
    negVideo.every((s) => s.pts >= s.dts),
    'pts >= dts',
  );
  t.equal(negVideo[0]!.pts - negVideo[0]!.dts, 3000, 'one frame of decode delay left');

  // An empty edit (0.476 s) then media_time 0: the audio track starts later.
  const delayed = await openMp4(fixture('delayed-audio.mp4'));
  t.teardown(() => delayed.close());
  t.same(await diffWithFfmpeg(fixture('delayed-audio.mp4'), delayed, { lastDuration: false }), [], "empty edit: every sample equals ffmpeg's");
  t.equal(delayed.probe.tracks[1]!.durationMs, plain.probe.tracks[1]!.durationMs, 'durations from stts');
  const video = (await collect(delayed, [0]))[0]!;
  const audio = (await collect(delayed, [1]))[0]!;
  t.equal(video.dts, 0);
  // Video dts starts at -2 frames (-1024 @15360 = -6000 @90k): audio at 0.476 s + 6000/90000 s.
  t.equal(audio.pts, Math.round(0.476 * 44100) + 2940, `audio starts 0.476 s after the video's first pts (pts ${audio.pts})`);
});

t.test('video-only and audio-only files', { skip: noFfmpeg }, async (t) => {
  const v = await openMp4(fixture('video-only.mp4'));
  t.teardown(() => v.close());
  t.equal(v.probe.tracks.length, 1);
  t.same(await diffWithFfmpeg(fixture('video-only.mp4'), v), []);
  const a = await openMp4(fixture('audio-only.mp4'));
  t.teardown(() => a.close());
  t.match(a.probe.tracks, [{ kind: 'audio', codec: 'aac', clockRate: 48000, channels: 1 }]);
  t.same(await diffWithFfmpeg(fixture('audio-only.mp4'), a), []);
  const samples = await collect(a);
  t.equal(samples[0]!.pts, 0, 'the priming frame is at the common zero');
  t.equal(samples[1]!.pts, 1024);
});

t.test('avc3: parameter sets from the first sample when avcC has none', { skip: noFfmpeg }, async (t) => {
  const src = fixture('avc3.mp4');
  const withParams = await openMp4(src);
  t.teardown(() => withParams.close());
  t.same(await diffWithFfmpeg(src, withParams), []);
  // avcC: version, profile, compat, level, 0xfc|lengthSize-1, 0xe0|numSPS. With 0 SPS,
  // the SPS length's high byte (0) reads as 0 PPS: an avcC without parameter sets.
  const stripped = copyWith('avc3-no-params.mp4', src, (b) => {
    b[b.indexOf(Buffer.from('avcC')) + 9] = 0xe0;
  });
  const reader = await openMp4(stripped);
  t.teardown(() => reader.close());
  const h264 = reader.probe.tracks[0]!.h264!;
  t.same(h264.sps, withParams.probe.tracks[0]!.h264!.sps, 'SPS from the first sample');
  t.same(h264.pps, withParams.probe.tracks[0]!.h264!.pps, 'PPS from the first sample');
  t.match(h264, { width: 320, height: 240, profileLevelId: withParams.probe.tracks[0]!.h264!.profileLevelId });
  // The same file as avc1 has no parameter sets at all: corrupt.
  const avc1 = copyWith('avc1-no-params.mp4', stripped, (b) => {
    b.write('avc1', b.indexOf(Buffer.from('avc3')));
  });
  await rejects(t, avc1, CorruptMediaError, /^MP4: track 1: avcC holds no SPS$/);
});

t.test('unsupported tracks', { skip: noFfmpeg }, async (t) => {
  const mixed = await openMp4(fixture('h264-ac3.mp4'));
  t.teardown(() => mixed.close());
  t.match(mixed.probe.tracks, [
    { kind: 'video', codec: 'h264', supported: true },
    { kind: 'audio', codec: 'ac-3', supported: false, channels: 2 },
  ]);
  t.ok(mixed.probe.tracks[1]!.durationMs > 2900, 'unsupported tracks still have a duration');
  const samples = await collect(mixed);
  t.ok(samples.length > 0 && samples.every((s) => s.track === 0), 'only the supported track streams');
  await rejects(
    t,
    fixture('unsupported.mp4'),
    UnsupportedMediaError,
    new RegExp(`^MP4: no supported track: ${hasX265 ? 'hvc1' : 'mp4v'} \\(video\\), mp4a\\.6b \\(audio\\); offcast streams H\\.264 and AAC-LC from MP4$`),
  );
  await rejects(t, fixture('fragmented.mp4'), UnsupportedMediaError, /^MP4: fragmented MP4 is not supported$/);
  // Subtitle tracks: not in the probe (TrackKind has no kind for them), named when nothing streams.
  const subs = await openMp4(fixture('with-subtitles.mp4'));
  t.teardown(() => subs.close());
  t.match(subs.probe.tracks, [{ index: 0, kind: 'video', codec: 'h264', supported: true }]);
  t.equal(subs.probe.tracks.length, 1);
  await rejects(t, fixture('subtitles-only.mp4'), UnsupportedMediaError, /^MP4: no supported track: tx3g \(subtitles\); offcast streams/);
  // HE-AAC: the audio-only file with its AudioSpecificConfig (5 bytes) replaced by an
  // explicit SBR one: aot 5, 24 kHz core, stereo, 48 kHz extension, aot 2.
  const heaac = copyWith('he-aac.mp4', fixture('audio-only.mp4'), (b) => {
    const at = b.indexOf(Buffer.from('118856e500', 'hex'));
    t.ok(at > 0, 'ASC found in the file');
    Buffer.from('2b11881000', 'hex').copy(b, at);
  });
  await rejects(t, heaac, UnsupportedMediaError, /^MP4: no supported track: mp4a\.40\.5 \(audio, HE-AAC\)/);
});

// --- corrupt files ----------------------------------------------------------------

t.test('corrupt and truncated files', { skip: noFfmpeg }, async (t) => {
  const atEnd = fixture('av.mp4');
  const fast = fixture('av-faststart.mp4');
  const size = statSync(atEnd).size;
  const moovAt = readFileSync(atEnd).lastIndexOf(Buffer.from('moov')) - 4;
  const fastMoovAt = readFileSync(fast).indexOf(Buffer.from('moov')) - 4;
  const fastMoovSize = readFileSync(fast).readUInt32BE(fastMoovAt);

  await rejects(
    t,
    copyWith('empty.mp4', atEnd, () => Buffer.alloc(0)),
    CorruptMediaError,
    /^MP4: empty file$/,
  );
  await rejects(
    t,
    copyWith('cut-moov-end.mp4', atEnd, (b) => b.subarray(0, moovAt + Math.floor((size - moovAt) / 2))),
    CorruptMediaError,
    new RegExp(`^MP4: truncated moov: box at byte ${moovAt} declares ${size - moovAt} bytes, file holds \\d+$`),
  );
  await rejects(
    t,
    copyWith('cut-moov-start.mp4', fast, (b) => b.subarray(0, fastMoovAt + 200)),
    CorruptMediaError,
    new RegExp(`^MP4: truncated moov: box at byte ${fastMoovAt} declares ${fastMoovSize} bytes, file holds ${fastMoovAt + 200}$`),
  );
  await rejects(
    t,
    copyWith('cut-mdat-end.mp4', atEnd, (b) => b.subarray(0, moovAt - 1000)),
    CorruptMediaError,
    /^MP4: no moov box \(file truncated: 'mdat' at byte \d+ declares \d+ bytes, file holds \d+\)$/,
  );
  const cutAt = fastMoovAt + fastMoovSize + 30000;
  await rejects(
    t,
    copyWith('cut-mdat.mp4', fast, (b) => b.subarray(0, cutAt)),
    CorruptMediaError,
    new RegExp(`^MP4: truncated: sample \\d+ of track [12] ends at byte \\d+, file holds ${cutAt}$`),
  );
  await rejects(
    t,
    copyWith('no-moov.mp4', atEnd, (b) => b.subarray(0, moovAt)),
    CorruptMediaError,
    /^MP4: no moov box$/,
  );

  let seed = 7;
  const random = Buffer.alloc(5000);
  for (let i = 0; i < random.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    random[i] = seed >>> 24;
  }
  random[4] = 0x01; // certainly not a box type
  await rejects(
    t,
    copyWith('garbage.mp4', atEnd, () => random),
    CorruptMediaError,
    /^MP4: not an MP4 file \(garbage box type at byte 0\)$/,
  );
  await rejects(
    t,
    copyWith('text.mp4', atEnd, () => Buffer.from('hello world, not a movie at all')),
    CorruptMediaError,
    /^MP4: not an MP4 file \(first box type 'o wo' is none of ftyp, moov, mdat, free\.\.\.\)$/,
  );
  await rejects(
    t,
    copyWith('box-size-3.mp4', atEnd, (b) => {
      b.writeUInt32BE(3, 0);
    }),
    CorruptMediaError,
    /^MP4: not an MP4 file \(garbage box size 3 for 'ftyp' at byte 0\)$/,
  );
  // The second top-level box (after ftyp) gets a tiny size.
  await rejects(
    t,
    copyWith('box-size-second.mp4', atEnd, (b) => {
      b.writeUInt32BE(5, b.readUInt32BE(0));
    }),
    CorruptMediaError,
    /^MP4: garbage box size 5 for '\w+' at byte \d+$/,
  );
  // Junk after a complete moov is tolerated (samples are checked against the file size).
  const trailing = await openMp4(copyWith('trailing.mp4', atEnd, (b) => Buffer.concat([b, Buffer.from([0, 0, 0, 0, 0xff])])));
  t.equal(trailing.probe.tracks.length, 2, 'trailing junk after moov: opens');
  await trailing.close();
  // stsz of track 1 claims far more entries than its box holds.
  await rejects(
    t,
    copyWith('stsz-count.mp4', fast, (b) => {
      b.writeUInt32BE(0x0fffffff, b.indexOf(Buffer.from('stsz')) + 12);
    }),
    CorruptMediaError,
    /^MP4: corrupt moov: 'stsz' in track 1 needs \d+ bytes, box holds \d+$/,
  );
  // stsz with a constant sample size and a huge count: would allocate without bound.
  await rejects(
    t,
    copyWith('stsz-constant.mp4', fast, (b) => {
      const at = b.indexOf(Buffer.from('stsz'));
      b.writeUInt32BE(1000, at + 8);
      b.writeUInt32BE(0xffffffff, at + 12);
    }),
    CorruptMediaError,
    /^MP4: corrupt moov: 'stsz' in track 1 declares 4294967295 samples of 1000 bytes/,
  );
  // A constant-size stsz where no sample table is (here in a udta at the end of
  // moov): mp4box parsed it, and 200 million samples were an array V8 could not
  // grow, a fatal error that ended the process. The reader skips boxes it does not
  // read (mp4-hostile.test.ts has the rest of them): the file opens.
  const strayStsz = await openMp4(
    copyWith('stsz-in-udta.mp4', atEnd, (b) => {
      const stsz = Buffer.alloc(20);
      stsz.writeUInt32BE(20, 0);
      stsz.write('stsz', 4, 'latin1');
      stsz.writeUInt32BE(1, 12);
      stsz.writeUInt32BE(200_000_000, 16);
      const udta = Buffer.concat([Buffer.from([0, 0, 0, 28]), Buffer.from('udta'), stsz]);
      t.equal(moovAt + b.readUInt32BE(moovAt), b.length, 'moov is the last box');
      b.writeUInt32BE(b.readUInt32BE(moovAt) + udta.length, moovAt);
      return Buffer.concat([b, udta]);
    }),
  );
  t.match(strayStsz.probe.tracks, [{ codec: 'h264' }, { codec: 'aac' }], "a stray 'stsz' in udta: skipped");
  await strayStsz.close();
  // An sgpd there: mp4box made an object per declared entry without reading a byte, for minutes.
  const straySgpd = await openMp4(
    copyWith('sgpd-in-udta.mp4', atEnd, (b) => {
      const sgpd = Buffer.alloc(20);
      sgpd.writeUInt32BE(20, 0);
      sgpd.write('sgpd', 4, 'latin1');
      sgpd.write('zzzz', 12, 'latin1'); // no entry parser: nothing read per entry
      sgpd.writeUInt32BE(300_000_000, 16);
      const udta = Buffer.concat([Buffer.from([0, 0, 0, 28]), Buffer.from('udta'), sgpd]);
      b.writeUInt32BE(b.readUInt32BE(moovAt) + udta.length, moovAt);
      return Buffer.concat([b, udta]);
    }),
  );
  t.match(straySgpd.probe.tracks, [{ codec: 'h264' }, { codec: 'aac' }], "a stray 'sgpd' in udta: skipped");
  await straySgpd.close();
  // A child box larger than moov.
  await rejects(
    t,
    copyWith('trak-size.mp4', fast, (b) => {
      b.writeUInt32BE(0x7fffffff, b.indexOf(Buffer.from('trak')) - 4);
    }),
    CorruptMediaError,
    /^MP4: corrupt moov: 'trak' at byte \d+ declares 2147483647 bytes, its parent holds \d+$/,
  );
});

t.test('broken NAL length in a sample', { skip: noFfmpeg }, async (t) => {
  const src = fixture('av-faststart.mp4');
  const packets = ffprobe(src).packets.filter((p) => p.stream_index === 0);
  const broken = copyWith('broken-nal.mp4', src, (b) => {
    b.writeUInt32BE(0x00ffffff, Number(packets[2]!.pos));
  });
  const reader = await openMp4(broken);
  t.teardown(() => reader.close());
  let count = 0;
  try {
    for await (const s of reader.samples()) if (s.track === 0) count++;
    t.fail('no error');
  } catch (err) {
    t.type(err, CorruptMediaError);
    t.match((err as Error).message, /^MP4: broken NAL length in sample 3 of track 1: NAL of 16777215 bytes at byte 4 runs past the \d+-byte sample$/);
  }
  t.equal(count, 2, 'the samples before it were delivered');
});

t.test('fuzzed moov: only MediaErrors, never a crash or hang', { skip: noFfmpeg }, async (t) => {
  const src = readFileSync(fixture('av-faststart.mp4'));
  const moovAt = src.indexOf(Buffer.from('moov')) - 4;
  const moovEnd = moovAt + src.readUInt32BE(moovAt);
  let seed = 12345;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const outcomes = { opened: 0, corrupt: 0, unsupported: 0 };
  const path = join(dir, 'fuzz.mp4');
  for (let round = 0; round < 400; round++) {
    const b = Buffer.from(src);
    for (let k = 1 + next(4); k > 0; k--) {
      const at = moovAt + 8 + next(moovEnd - moovAt - 12);
      // Single bytes, or a whole 32-bit field (sizes, counts, offsets) set to an extreme.
      if (round % 2 === 0) b[at] = next(256);
      else b.writeUInt32BE([0, 1, 0x7fffffff, 0xffffffff, next(2 ** 31)][next(5)]!, at & ~3);
    }
    writeFileSync(path, b);
    try {
      const r = await openMp4(path);
      outcomes.opened++;
      try {
        for await (const s of r.samples()) void s;
      } catch (err) {
        if (!(err instanceof MediaError)) throw err;
      } finally {
        await r.close();
      }
    } catch (err) {
      if (err instanceof CorruptMediaError) outcomes.corrupt++;
      else if (err instanceof UnsupportedMediaError) outcomes.unsupported++;
      else {
        t.fail(`round ${round}: ${(err as Error).stack}`);
        break;
      }
    }
  }
  t.equal(outcomes.opened + outcomes.corrupt + outcomes.unsupported, 400, JSON.stringify(outcomes));
});

t.test('ASC equals the config ffmpeg writes in its own SDP', { skip: noFfmpeg }, async (t) => {
  const path = fixture('audio-only.mp4');
  const sdp = join(dir, 'a.sdp');
  // A tiny send to a loopback port nobody listens on, only for the SDP file.
  execFileSync(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-y', '-i', path, '-map', '0:a', '-c', 'copy', '-t', '0.1', '-f', 'rtp', 'rtp://127.0.0.1:5996', '-sdp_file', sdp],
    { timeout: 20000 },
  );
  const config = /config=([0-9A-Fa-f]+)/.exec(readFileSync(sdp, 'utf8'))?.[1];
  const reader = await openMp4(path);
  t.teardown(() => reader.close());
  t.equal(Buffer.from(reader.probe.tracks[0]!.aac!.audioSpecificConfig).toString('hex'), config?.toLowerCase());
});
