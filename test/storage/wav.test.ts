import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CorruptMediaError, UnsupportedMediaError } from '../../storage/errors.js';
import type { Sample } from '../../storage/types.js';
import { openWav, parseWavHeader, WavHeaderIncompleteError } from '../../storage/wav.js';

const dir = mkdtempSync(join(tmpdir(), 'offcast-wav-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// --- a tiny WAV writer ------------------------------------------------------

function chunk(id: string, body: Uint8Array, declaredSize = body.length): Uint8Array {
  const pad = body.length & 1;
  const out = new Uint8Array(8 + body.length + pad);
  out.set(Buffer.from(id, 'latin1'), 0);
  new DataView(out.buffer).setUint32(4, declaredSize, true);
  out.set(body, 8);
  return out;
}

interface FmtSpec {
  format?: number;
  channels: number;
  rate: number;
  bits: number;
  blockAlign?: number;
  /** Write WAVE_FORMAT_EXTENSIBLE with this subformat code. */
  extensibleSub?: number;
  /** Replace the GUID tail (extensible only). */
  badGuid?: boolean;
}

function fmtBody(f: FmtSpec): Uint8Array {
  const blockAlign = f.blockAlign ?? (f.channels * f.bits) / 8;
  const ext = f.extensibleSub !== undefined;
  const body = new Uint8Array(ext ? 40 : 16);
  const v = new DataView(body.buffer);
  v.setUint16(0, ext ? 0xfffe : (f.format ?? 1), true);
  v.setUint16(2, f.channels, true);
  v.setUint32(4, f.rate, true);
  v.setUint32(8, f.rate * blockAlign, true);
  v.setUint16(12, blockAlign, true);
  v.setUint16(14, f.bits, true);
  if (ext) {
    v.setUint16(16, 22, true);
    v.setUint16(18, f.bits, true);
    v.setUint32(20, f.channels === 2 ? 3 : 4, true);
    v.setUint16(24, f.extensibleSub!, true);
    const tail = [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71];
    if (f.badGuid) tail[5] = 0x42;
    body.set(tail, 26);
  }
  return body;
}

function riff(chunks: Uint8Array[], form = 'WAVE'): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.length, 4);
  const out = new Uint8Array(8 + total);
  out.set(Buffer.from('RIFF', 'latin1'), 0);
  new DataView(out.buffer).setUint32(4, total, true);
  out.set(Buffer.from(form, 'latin1'), 8);
  let at = 12;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Deterministic pseudo-random bytes (so sample content is not trivially periodic). */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function listChunk(): Uint8Array {
  return chunk('LIST', Buffer.from('INFOISFT\x0e\x00\x00\x00offcast tests\x00', 'latin1'));
}

let fileNo = 0;
function writeTemp(buf: Uint8Array): string {
  const p = join(dir, `f${fileNo++}.wav`);
  writeFileSync(p, buf);
  return p;
}

async function readAll(path: string): Promise<{ probe: Awaited<ReturnType<typeof openWav>>['probe']; samples: Sample[] }> {
  const reader = await openWav(path);
  try {
    const samples: Sample[] = [];
    for await (const s of reader.samples()) samples.push(s);
    return { probe: reader.probe, samples };
  } finally {
    await reader.close();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

// --- good files -------------------------------------------------------------

interface Good {
  name: string;
  fmt: FmtSpec;
  frames: number;
  before?: Uint8Array[];
  after?: Uint8Array[];
  codec: string;
}

const good: Good[] = [
  { name: 'mono 8 kHz s16', fmt: { channels: 1, rate: 8000, bits: 16 }, frames: 8000, codec: 'pcm_s16le' },
  { name: 'stereo 44.1 kHz s16', fmt: { channels: 2, rate: 44100, bits: 16 }, frames: 44100 + 17, codec: 'pcm_s16le' },
  { name: 'mono 48 kHz s16', fmt: { channels: 1, rate: 48000, bits: 16 }, frames: 24000, codec: 'pcm_s16le' },
  { name: 'stereo 48 kHz, 2 s (many blocks)', fmt: { channels: 2, rate: 48000, bits: 16 }, frames: 96000, codec: 'pcm_s16le' },
  {
    name: 'LIST chunk before data',
    fmt: { channels: 2, rate: 44100, bits: 16 },
    frames: 1000,
    before: [listChunk()],
    codec: 'pcm_s16le',
  },
  {
    name: 'odd-sized chunk with pad byte, and a chunk after data',
    fmt: { channels: 1, rate: 16000, bits: 16 },
    frames: 333,
    before: [chunk('junk', bytes(7, 3)), chunk('fact', new Uint8Array([77, 1, 0, 0]))],
    after: [listChunk()],
    codec: 'pcm_s16le',
  },
  {
    name: 'large chunk before data (header beyond the first read)',
    fmt: { channels: 1, rate: 8000, bits: 16 },
    frames: 100,
    before: [chunk('junk', bytes(100_001, 4))],
    codec: 'pcm_s16le',
  },
  {
    name: 'WAVE_FORMAT_EXTENSIBLE with PCM subformat',
    fmt: { channels: 2, rate: 32000, bits: 16, extensibleSub: 1 },
    frames: 3200,
    codec: 'pcm_s16le',
  },
  { name: 'G.711 mu-law', fmt: { format: 7, channels: 1, rate: 8000, bits: 8 }, frames: 8001, codec: 'pcm_mulaw' },
  { name: 'G.711 A-law', fmt: { format: 6, channels: 1, rate: 8000, bits: 8 }, frames: 4000, codec: 'pcm_alaw' },
  { name: 'empty data chunk', fmt: { channels: 1, rate: 8000, bits: 16 }, frames: 0, codec: 'pcm_s16le' },
];

for (const [i, g] of good.entries()) {
  t.test(`good: ${g.name}`, async (t) => {
    const blockAlign = (g.fmt.channels * g.fmt.bits) / 8;
    const pcm = bytes(g.frames * blockAlign, 100 + i);
    const file = riff([chunk('fmt ', fmtBody(g.fmt)), ...(g.before ?? []), chunk('data', pcm), ...(g.after ?? [])]);
    const path = writeTemp(file);
    const { probe, samples } = await readAll(path);
    const durationMs = Math.round((g.frames * 1000) / g.fmt.rate);
    t.same(probe, {
      format: 'wav',
      bytes: file.length,
      durationMs,
      tracks: [
        {
          index: 0,
          kind: 'audio',
          codec: g.codec,
          supported: true,
          clockRate: g.fmt.rate,
          channels: g.fmt.channels,
          durationMs,
        },
      ],
    });
    t.ok(Buffer.from(concat(samples.map((s) => s.data))).equals(Buffer.from(pcm)), 'sample bytes equal the data written');
    t.equal(
      samples.reduce((n, s) => n + s.duration, 0),
      g.frames,
      'sum of durations is the frame count',
    );
    let pts = 0;
    for (const s of samples) {
      t.equal(s.pts, pts, 'pts is the frame index');
      t.equal(s.dts, s.pts);
      t.equal(s.track, 0);
      t.equal(s.keyframe, true);
      t.equal(s.data.length, s.duration * blockAlign, 'whole frames');
      t.ok(s.data.length > 0 && s.data.length <= 64 * 1024, 'bounded block');
      pts += s.duration;
    }
    if (g.frames * blockAlign > 64 * 1024) t.ok(samples.length > 1, 'split into several blocks');
  });
}

t.test('parseWavHeader reports where the data is', async (t) => {
  const pcm = bytes(40, 1);
  const file = riff([chunk('fmt ', fmtBody({ channels: 2, rate: 22050, bits: 16 })), chunk('junk', bytes(3, 1)), chunk('data', pcm)]);
  const h = parseWavHeader(file, file.length);
  t.same(h, {
    formatTag: 1,
    extensible: false,
    channels: 2,
    sampleRate: 22050,
    bitsPerSample: 16,
    blockAlign: 4,
    // RIFF(12) + fmt(8+16) + junk(8+3+pad) + data header(8)
    dataOffset: 12 + 24 + 12 + 8,
    dataBytes: 40,
    frames: 10,
  });
  // Given only part of the header, it asks for more rather than calling it corrupt.
  const needed = (length: number): number | undefined => {
    try {
      parseWavHeader(file.subarray(0, length), file.length);
    } catch (e) {
      if (e instanceof WavHeaderIncompleteError) return e.bytesNeeded;
      throw e;
    }
    return undefined;
  };
  t.equal(needed(8), 12, 'needs the RIFF header');
  t.equal(needed(30), 36, 'needs the fmt body');
  t.equal(needed(40), 44, 'needs the junk chunk header');
  t.equal(needed(50), 56, 'needs the data chunk header (junk body and pad skipped)');
  t.equal(needed(56), undefined, 'the data chunk header suffices');
});

t.test('reader lifecycle', async (t) => {
  const path = writeTemp(riff([chunk('fmt ', fmtBody({ channels: 1, rate: 8000, bits: 16 })), chunk('data', bytes(200_000, 9))]));
  const reader = await openWav(path);
  // Two iterations are independent.
  let a = 0;
  for await (const s of reader.samples()) a += s.duration;
  let b = 0;
  for await (const s of reader.samples()) b += s.duration;
  t.equal(a, 100_000);
  t.equal(b, 100_000);
  let none = 0;
  for await (const _ of reader.samples({ tracks: [1] })) none++;
  t.equal(none, 0, 'track filter without track 0 yields nothing');
  // Closing mid-iteration ends the iteration.
  let seen = 0;
  for await (const _ of reader.samples()) {
    seen++;
    await reader.close();
  }
  t.equal(seen, 1, 'iteration stops after close');
  await reader.close(); // idempotent
  await t.rejects(async () => {
    for await (const _ of reader.samples()) void _;
  }, /closed/);
});

// --- bad files --------------------------------------------------------------

const okFmt = chunk('fmt ', fmtBody({ channels: 1, rate: 8000, bits: 16 }));

interface Bad {
  name: string;
  file: Uint8Array;
  error: typeof CorruptMediaError | typeof UnsupportedMediaError;
  message: RegExp;
}

const bad: Bad[] = [
  {
    name: 'truncated header (inside fmt)',
    file: riff([okFmt]).subarray(0, 30),
    error: CorruptMediaError,
    message: /WAV: truncated header: fmt chunk at offset 12 declares 16 bytes, file holds 10/,
  },
  { name: 'shorter than a RIFF header', file: Buffer.from('RIFF\x10\x00'), error: CorruptMediaError, message: /file holds 6 bytes/ },
  {
    name: 'truncated data',
    file: riff([okFmt, chunk('data', bytes(4000, 1), 88200)]),
    error: CorruptMediaError,
    message: /WAV: truncated: data chunk declares 88200 bytes, file holds 4000/,
  },
  { name: 'no data chunk', file: riff([okFmt, listChunk()]), error: CorruptMediaError, message: /no data chunk/ },
  {
    name: 'chunk overrunning the file, no data',
    file: riff([okFmt, chunk('LIST', bytes(10, 1), 5000)]),
    error: CorruptMediaError,
    message: /no data chunk \("LIST" chunk at offset 36 declares 5000 bytes, file holds 10\)/,
  },
  { name: 'no fmt chunk', file: riff([chunk('data', bytes(10, 1))]), error: CorruptMediaError, message: /data chunk at offset 12 comes before any fmt chunk/ },
  {
    name: 'data not a whole number of frames',
    file: riff([chunk('fmt ', fmtBody({ channels: 2, rate: 8000, bits: 16 })), chunk('data', bytes(1001, 1))]),
    error: CorruptMediaError,
    message: /data length 1001 is not a multiple of block align 4/,
  },
  {
    name: 'block align inconsistent with channels',
    file: riff([chunk('fmt ', fmtBody({ channels: 2, rate: 8000, bits: 16, blockAlign: 2 })), chunk('data', bytes(8, 1))]),
    error: CorruptMediaError,
    message: /block align 2 does not match 2 channel\(s\) of 16 bits/,
  },
  { name: 'fmt too short', file: riff([chunk('fmt ', bytes(12, 1))]), error: CorruptMediaError, message: /fmt chunk of 12 bytes is too short/ },
  {
    name: '24-bit PCM',
    file: riff([chunk('fmt ', fmtBody({ channels: 2, rate: 48000, bits: 24 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /^WAV: 24-bit PCM is not supported \(need 16-bit\)$/,
  },
  {
    name: '24-bit extensible PCM',
    file: riff([chunk('fmt ', fmtBody({ channels: 2, rate: 48000, bits: 24, extensibleSub: 1 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /24-bit PCM is not supported/,
  },
  {
    name: '3 channels',
    file: riff([chunk('fmt ', fmtBody({ channels: 3, rate: 48000, bits: 16 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /WAV: 3 channels are not supported \(need 1 or 2\)/,
  },
  {
    name: '96 kHz',
    file: riff([chunk('fmt ', fmtBody({ channels: 2, rate: 96000, bits: 16 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /WAV: 96000 Hz is not supported \(need 8000-48000 Hz\)/,
  },
  {
    name: '7 kHz',
    file: riff([chunk('fmt ', fmtBody({ channels: 1, rate: 7000, bits: 16 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /7000 Hz is not supported/,
  },
  {
    name: 'IEEE float',
    file: riff([chunk('fmt ', fmtBody({ format: 3, channels: 1, rate: 48000, bits: 32 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /format 0x0003 \(IEEE float\) is not supported/,
  },
  {
    name: 'extensible with an unknown subformat GUID',
    file: riff([chunk('fmt ', fmtBody({ channels: 1, rate: 8000, bits: 16, extensibleSub: 1, badGuid: true })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /format 0xfffe \(extensible, unknown subformat\)/,
  },
  {
    name: 'mu-law at 16 kHz',
    file: riff([chunk('fmt ', fmtBody({ format: 7, channels: 1, rate: 16000, bits: 8 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /mu-law with 8-bit samples, 1 channel\(s\), 16000 Hz is not supported \(need 8-bit mono 8000 Hz\)/,
  },
  {
    name: 'A-law stereo',
    file: riff([chunk('fmt ', fmtBody({ format: 6, channels: 2, rate: 8000, bits: 8 })), chunk('data', bytes(60, 1))]),
    error: UnsupportedMediaError,
    message: /A-law with 8-bit samples, 2 channel\(s\)/,
  },
  {
    name: 'not RIFF',
    file: Buffer.from('OggS\x00\x02 and some more bytes here'),
    error: UnsupportedMediaError,
    message: /not a RIFF\/WAVE file \(no RIFF header\)/,
  },
  { name: 'RIFF but AVI', file: riff([chunk('avih', bytes(56, 1))], 'AVI '), error: UnsupportedMediaError, message: /RIFF file of type "AVI " is not WAVE/ },
  { name: 'big-endian RIFX', file: Buffer.from('RIFX\x00\x00\x00\x04WAVE'), error: UnsupportedMediaError, message: /big-endian RIFX/ },
];

for (const b of bad) {
  t.test(`bad: ${b.name}`, async (t) => {
    const path = writeTemp(b.file);
    const err = await readAll(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(err, b.error, `${b.error.name}`);
    t.match((err as Error).message, b.message);
    t.equal((err as { statusCode?: number }).statusCode, b.error === CorruptMediaError ? 422 : 415);
  });
}

t.test('pure parser: TypeError for not-WAV, RangeError for inconsistent lengths', async (t) => {
  t.throws(() => parseWavHeader(Buffer.from('nope, not a wav file'), 20), TypeError);
  const truncated = riff([okFmt, chunk('data', bytes(10, 1), 100)]);
  t.throws(() => parseWavHeader(truncated, truncated.length), RangeError);
});

t.test('file shrinking after open is reported as corrupt', async (t) => {
  const file = riff([okFmt, chunk('data', bytes(200_000, 5))]);
  const path = writeTemp(file);
  const reader = await openWav(path);
  writeFileSync(path, file.subarray(0, 100_000));
  await t.rejects(async () => {
    for await (const _ of reader.samples()) void _;
  }, CorruptMediaError);
  await reader.close();
});

// --- ffmpeg-written files ---------------------------------------------------

const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

t.test('files written by ffmpeg match its own raw output', { skip: hasFfmpeg ? false : 'ffmpeg not installed' }, async (t) => {
  const cases = [
    { name: 'stereo 44.1 kHz s16', args: ['-ac', '2', '-ar', '44100', '-c:a', 'pcm_s16le'], raw: 's16le', codec: 'pcm_s16le', rate: 44100, channels: 2 },
    { name: 'mono 8 kHz mu-law', args: ['-ac', '1', '-ar', '8000', '-c:a', 'pcm_mulaw'], raw: 'mulaw', codec: 'pcm_mulaw', rate: 8000, channels: 1 },
    { name: 'mono 8 kHz A-law', args: ['-ac', '1', '-ar', '8000', '-c:a', 'pcm_alaw'], raw: 'alaw', codec: 'pcm_alaw', rate: 8000, channels: 1 },
  ];
  for (const c of cases) {
    const wav = join(dir, `ff-${c.raw}.wav`);
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=523:sample_rate=48000:duration=1.5',
      ...c.args,
      wav,
    ]);
    const raw = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', wav, '-c:a', 'copy', '-f', c.raw, '-'], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const { probe, samples } = await readAll(wav);
    t.equal(probe.tracks[0]!.codec, c.codec, `${c.name}: codec`);
    t.equal(probe.tracks[0]!.clockRate, c.rate, `${c.name}: rate`);
    t.equal(probe.tracks[0]!.channels, c.channels, `${c.name}: channels`);
    t.equal(probe.durationMs, 1500, `${c.name}: duration`);
    t.ok(Buffer.from(concat(samples.map((s) => s.data))).equals(raw), `${c.name}: bytes equal ffmpeg's`);
    t.equal(readFileSync(wav).length, probe.bytes);
  }
});
