import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sample } from '../../../storage/types.js';
import type { PacketEmit } from '../../../offload/codecs/types.js';
import {
  alawToLinear,
  alawToUlaw,
  decodeAlaw,
  decodeUlaw,
  encodeAlaw,
  encodeUlaw,
  linearToAlaw,
  linearToUlaw,
  transcodeAlawToUlaw,
  transcodeUlawToAlaw,
  ulawToAlaw,
  ulawToLinear,
} from '../../../offload/codecs/g711/g711.js';
import { checkG711Source, G711Payloader, type G711Encoding, type G711SourceCodec } from '../../../offload/codecs/g711/payloader.js';
import { G711Depacketizer } from '../../../offload/codecs/g711/depacketizer.js';
import { hasFfmpeg as hasFfmpegTool, skipUnless } from '../../helpers/tools.js';

const fixtures = fileURLToPath(new URL('../../fixtures/g711/', import.meta.url));
const hasFfmpeg = hasFfmpegTool();
const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

// ---------------------------------------------------------------------------
// Spot values, derived from the G.711 segment tables (Table 1a A-law, Table 2a
// mu-law) and the G.191 reading of 16-bit input (14 / 13 MSBs; a negative value
// taken by its one's complement, so -1 is "negative zero").
// ---------------------------------------------------------------------------

t.test('mu-law spot values from the G.711 tables', async (t) => {
  const cases: Array<[input: number, code: number, why: string]> = [
    [0, 0xff, 'positive zero: interval 0..1, character 1111 1111'],
    [-1, 0x7f, "negative zero (one's complement of -1 is 0)"],
    [3, 0xff, '14-bit 0 still'],
    [4, 0xfe, '14-bit 1: interval 1..3, value 2'],
    [-5, 0x7e, "one's complement 4 -> 14-bit 1"],
    [123, 0xf0, '14-bit 30: last interval of segment 1 (29..31)'],
    [124, 0xef, '14-bit 31: decision value 31 opens segment 2 (31..35, value 33)'],
    [-125, 0x6f, 'negative 14-bit 31'],
    [32635, 0x80, '14-bit 8158: last interval 7903..8159'],
    [32767, 0x80, 'overload clips to the last interval'],
    [-32768, 0x00, 'negative overload'],
  ];
  for (const [input, code, why] of cases) t.equal(hex(linearToUlaw(input)), hex(code), `${input} -> ${hex(code)}: ${why}`);

  const decoded: Array<[code: number, value: number]> = [
    [0xff, 0],
    [0x7f, 0],
    [0xfe, 8],
    [0x7e, -8],
    [0xf0, 120],
    [0xef, 132],
    [0x80, 32124],
    [0x00, -32124],
  ];
  for (const [code, value] of decoded) t.equal(ulawToLinear(code), value, `${hex(code)} decodes to ${value} (interval midpoint x 4)`);
});

t.test('A-law spot values from the G.711 tables', async (t) => {
  const cases: Array<[input: number, code: number, why: string]> = [
    [0, 0xd5, 'positive, interval 0..2 (13-bit): 1000 0000 with even bits inverted'],
    [-1, 0x55, 'negative zero'],
    [15, 0xd5, '12-bit 0'],
    [16, 0xd4, '12-bit 1: interval 2..4'],
    [-16, 0x55, "one's complement 15 -> 12-bit 0"],
    [-17, 0x54, "one's complement 16 -> 12-bit 1"],
    [511, 0xca, '13-bit 63: last interval of segment 1 (62..64)'],
    [512, 0xf5, '13-bit 64: decision value 64 opens segment 2 (64..68, value 66)'],
    [32767, 0xaa, 'last interval 3968..4096'],
    [-32768, 0x2a, 'negative overload'],
  ];
  for (const [input, code, why] of cases) t.equal(hex(linearToAlaw(input)), hex(code), `${input} -> ${hex(code)}: ${why}`);

  const decoded: Array<[code: number, value: number]> = [
    [0xd5, 8],
    [0x55, -8],
    [0xd4, 24],
    [0xca, 504],
    [0xf5, 528],
    [0xaa, 32256],
    [0x2a, -32256],
  ];
  for (const [code, value] of decoded) t.equal(alawToLinear(code), value, `${hex(code)} decodes to ${value} (interval midpoint x 8)`);
});

t.test('out-of-range input clamps to int16', async (t) => {
  t.equal(linearToUlaw(40000), linearToUlaw(32767));
  t.equal(linearToUlaw(-40000), linearToUlaw(-32768));
  t.equal(linearToAlaw(1e9), linearToAlaw(32767));
  t.equal(linearToAlaw(-1e9), linearToAlaw(-32768));
});

// ---------------------------------------------------------------------------
// Exhaustive: a second encoder written from the decision values of the G.711
// tables (threshold lists, not bit tricks), over all 65536 inputs.
// ---------------------------------------------------------------------------

/** Lower decision value of each of the 128 magnitude intervals, in 14-bit units (mu-law). */
function ulawDecisionValues(): number[] {
  const lower = [0]; // interval 0..1 -> 0
  for (let x = 1; x < 31; x += 2) lower.push(x); // segment 1: step 2
  let start = 31;
  for (let segment = 2; segment <= 8; segment++) {
    const step = 2 << (segment - 1);
    for (let i = 0; i < 16; i++) lower.push(start + i * step);
    start += 16 * step;
  }
  return lower;
}

/** Lower decision value of each of the 128 magnitude intervals, in 12-bit units (A-law 13-bit / 2). */
function alawDecisionValues(): number[] {
  const lower: number[] = [];
  for (let x = 0; x < 32; x++) lower.push(x); // segments 1 and 2: step 2 in 13-bit
  let start = 32;
  for (let segment = 3; segment <= 8; segment++) {
    const step = 1 << (segment - 2);
    for (let i = 0; i < 16; i++) lower.push(start + i * step);
    start += 16 * step;
  }
  return lower;
}

function intervalOf(lower: number[], magnitude: number): number {
  let index = 0;
  while (index + 1 < lower.length && lower[index + 1] <= magnitude) index++;
  return index;
}

t.test('encoders match a decision-value model of G.711 on all 65536 inputs', async (t) => {
  const ulawLower = ulawDecisionValues();
  const alawLower = alawDecisionValues();
  t.equal(ulawLower.length, 128);
  t.equal(alawLower.length, 128);
  t.equal(ulawLower[127], 7903, 'mu-law last interval starts at 7903');
  t.equal(alawLower[127] * 2, 3968, 'A-law last interval starts at 3968');
  let ulawBad = 0;
  let alawBad = 0;
  for (let x = -32768; x < 32768; x++) {
    const negative = x < 0;
    const ulawIndex = intervalOf(ulawLower, (negative ? ~x : x) >> 2);
    const ulawModel = (negative ? 0x7f : 0xff) - ulawIndex;
    const alawIndex = intervalOf(alawLower, (negative ? ~x : x) >> 4);
    const alawModel = (alawIndex | (negative ? 0 : 0x80)) ^ 0x55;
    if (linearToUlaw(x) !== ulawModel) ulawBad++;
    if (linearToAlaw(x) !== alawModel) alawBad++;
  }
  t.equal(ulawBad, 0, 'mu-law differences');
  t.equal(alawBad, 0, 'A-law differences');
});

t.test('decoders return the midpoint of each interval, and encoding a decoded value gives the code back', async (t) => {
  let bad = 0;
  for (let code = 0; code < 256; code++) {
    // Negative zero decodes to 0, which encodes as positive zero.
    const ulawBack = code === 0x7f ? 0xff : code;
    if (linearToUlaw(ulawToLinear(code)) !== ulawBack) bad++;
    if (linearToAlaw(alawToLinear(code)) !== code) bad++;
    if (ulawToLinear(code) !== -ulawToLinear(code ^ 0x80)) bad++;
    if (alawToLinear(code) !== -alawToLinear(code ^ 0x80)) bad++;
  }
  t.equal(bad, 0);
});

// ---------------------------------------------------------------------------
// Exhaustive: ffmpeg's pcm_mulaw / pcm_alaw (fixtures from make.sh).
// ---------------------------------------------------------------------------

function readFixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(fixtures, name)));
}

t.test('decoders equal ffmpeg on all 256 codes', async (t) => {
  for (const [law, decode] of [
    ['ulaw', ulawToLinear],
    ['alaw', alawToLinear],
  ] as const) {
    const reference = readFixture(`ffmpeg-${law}-decode.s16le`);
    t.equal(reference.length, 512);
    const view = new DataView(reference.buffer, reference.byteOffset, reference.byteLength);
    const differing: number[] = [];
    for (let code = 0; code < 256; code++) if (decode(code) !== view.getInt16(2 * code, true)) differing.push(code);
    t.same(differing, [], `${law}: codes where we differ from ffmpeg`);
    // The bulk decoder writes the same bytes.
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const out = new Uint8Array(512);
    t.equal((law === 'ulaw' ? decodeUlaw : decodeAlaw)(codes, out), 512);
    t.same(out, reference, `${law}: bulk decode equals ffmpeg byte for byte`);
  }
});

/** Position of a code on the 256-step line from most negative to most positive. */
function ulawRank(code: number): number {
  return code & 0x80 ? 128 + (0xff - code) : code;
}
function alawRank(code: number): number {
  const index = (code ^ 0x55) & 0x7f;
  return code & 0x80 ? 128 + index : 127 - index;
}

t.test('encoders against ffmpeg on all 65536 inputs', async (t) => {
  // ffmpeg picks the nearest reconstruction level on a 14-bit grid; G.711 uses
  // decision values, which are not midpoints at segment boundaries, and reads a
  // negative sample by its one's complement. Both choose the same code except
  // for 964 inputs per law, where ffmpeg takes the neighbouring level.
  const ramp = new Uint8Array(131072);
  for (let i = 0; i < 65536; i++) {
    const value = (i - 32768) & 0xffff;
    ramp[2 * i] = value & 0xff;
    ramp[2 * i + 1] = value >> 8;
  }
  const cases = [
    { law: 'ulaw', encode: encodeUlaw, rank: ulawRank, minusOne: 0x7e },
    { law: 'alaw', encode: encodeAlaw, rank: alawRank, minusOne: 0x55 },
  ] as const;
  for (const { law, encode, rank, minusOne } of cases) {
    const reference = readFixture(`ffmpeg-${law}-encode.bin`);
    t.equal(reference.length, 65536);
    const ours = new Uint8Array(65536);
    t.equal(encode(ramp, ours), 65536);
    let differing = 0;
    let notNeighbours = 0;
    let positiveZeroSideDiffers = 0;
    for (let i = 0; i < 65536; i++) {
      if (ours[i] === reference[i]) continue;
      differing++;
      if (Math.abs(rank(ours[i]) - rank(reference[i])) !== 1) notNeighbours++;
      if (i - 32768 >= 0 && i - 32768 < 100) positiveZeroSideDiffers++;
    }
    t.equal(differing, 964, `${law}: inputs where ffmpeg picks another code`);
    t.equal(notNeighbours, 0, `${law}: every difference is one level`);
    t.equal(positiveZeroSideDiffers, 0, `${law}: small positive inputs agree`);
    t.equal(hex(reference[32768 - 1]), hex(minusOne), `${law}: ffmpeg encodes -1 as ${hex(minusOne)}`);
  }
});

t.test('fixtures are what ffmpeg produces', { skip: skipUnless(hasFfmpeg, 'ffmpeg not installed: fixtures not re-checked') }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'offcast-g711-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('sh', [join(fixtures, 'make.sh'), dir]);
  for (const name of ['ffmpeg-ulaw-encode.bin', 'ffmpeg-alaw-encode.bin', 'ffmpeg-ulaw-decode.s16le', 'ffmpeg-alaw-decode.s16le']) {
    t.ok(Buffer.from(readFileSync(join(dir, name))).equals(readFileSync(join(fixtures, name))), name);
  }
});

// ---------------------------------------------------------------------------
// Bulk functions and transcoding.
// ---------------------------------------------------------------------------

function xorshift(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

function randomBytes(length: number, seed: number): Uint8Array {
  const next = xorshift(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = next() & 0xff;
  return out;
}

function s16At(pcm: Uint8Array, i: number): number {
  return ((pcm[2 * i] | (pcm[2 * i + 1] << 8)) << 16) >> 16;
}

t.test('bulk encoders equal the per-sample functions', async (t) => {
  const pcm = randomBytes(2001, 7); // odd: the trailing byte is ignored
  const ulaw = new Uint8Array(1000);
  const alaw = new Uint8Array(1000);
  t.equal(encodeUlaw(pcm, ulaw), 1000);
  t.equal(encodeAlaw(pcm, alaw), 1000);
  t.same(
    ulaw,
    Uint8Array.from({ length: 1000 }, (_, i) => linearToUlaw(s16At(pcm, i))),
  );
  t.same(
    alaw,
    Uint8Array.from({ length: 1000 }, (_, i) => linearToAlaw(s16At(pcm, i))),
  );
  t.throws(() => encodeUlaw(pcm, new Uint8Array(999)), RangeError);
  t.throws(() => encodeAlaw(pcm, new Uint8Array(999)), RangeError);
  t.throws(() => decodeUlaw(ulaw, new Uint8Array(1999)), RangeError);
  t.throws(() => decodeAlaw(alaw, new Uint8Array(1999)), RangeError);
  t.throws(() => transcodeUlawToAlaw(ulaw, new Uint8Array(999)), RangeError);
  t.throws(() => transcodeAlawToUlaw(alaw, new Uint8Array(999)), RangeError);
});

t.test('transcoding is decode then encode, for all 256 codes', async (t) => {
  const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const toAlaw = new Uint8Array(256);
  const toUlaw = new Uint8Array(256);
  transcodeUlawToAlaw(codes, toAlaw);
  transcodeAlawToUlaw(codes, toUlaw);
  let bad = 0;
  for (let code = 0; code < 256; code++) {
    if (toAlaw[code] !== linearToAlaw(ulawToLinear(code)) || ulawToAlaw(code) !== toAlaw[code]) bad++;
    if (toUlaw[code] !== linearToUlaw(alawToLinear(code)) || alawToUlaw(code) !== toUlaw[code]) bad++;
  }
  t.equal(bad, 0);
  t.equal(hex(ulawToAlaw(0xff)), '0xd5', 'mu-law zero -> A-law smallest positive');
  t.equal(hex(ulawToAlaw(0x80)), '0xaa', 'mu-law max -> A-law max');
  // In place.
  const inPlace = codes.slice();
  transcodeUlawToAlaw(inPlace, inPlace);
  t.same(inPlace, toAlaw);
});

// ---------------------------------------------------------------------------
// Source check, payloader, depacketizer.
// ---------------------------------------------------------------------------

t.test('checkG711Source', async (t) => {
  t.equal(checkG711Source(8000, 1), null);
  t.equal(checkG711Source(8000, 1, 'PCMA'), null);
  t.equal(
    checkG711Source(48000, 2),
    'PCMU needs 8000 Hz mono audio; this file is 48000 Hz stereo — use L16, or convert it: ffmpeg -i in.wav -ar 8000 -ac 1 out.wav',
  );
  t.equal(
    checkG711Source(8000, 2, 'PCMA'),
    'PCMA needs 8000 Hz mono audio; this file is 8000 Hz stereo — use L16, or convert it: ffmpeg -i in.wav -ar 8000 -ac 1 out.wav',
  );
  t.match(checkG711Source(16000, 1), /this file is 16000 Hz mono/);
  t.match(checkG711Source(8000, 6), /this file is 8000 Hz 6-channel/);
});

interface Emitted {
  payload: Uint8Array;
  rtpTs: number;
  marker: boolean;
  sendTs: number;
  sync: boolean;
}

function collector(): { emit: PacketEmit; packets: Emitted[] } {
  const packets: Emitted[] = [];
  const emit: PacketEmit = (payload, rtpTs, marker, sendTs, sync) => {
    packets.push({ payload: payload.slice(), rtpTs, marker, sendTs, sync });
  };
  return { emit, packets };
}

function sampleOf(data: Uint8Array, pts: number, duration: number): Sample {
  return { track: 0, data, pts, dts: pts, duration, keyframe: true };
}

const convertWhole: Record<G711Encoding, Record<G711SourceCodec, (src: Uint8Array) => Uint8Array>> = {
  PCMU: {
    pcm_s16le: (src) => Uint8Array.from({ length: src.length >> 1 }, (_, i) => linearToUlaw(s16At(src, i))),
    pcm_mulaw: (src) => src.slice(),
    pcm_alaw: (src) => src.map(alawToUlaw),
  },
  PCMA: {
    pcm_s16le: (src) => Uint8Array.from({ length: src.length >> 1 }, (_, i) => linearToAlaw(s16At(src, i))),
    pcm_mulaw: (src) => src.map(ulawToAlaw),
    pcm_alaw: (src) => src.slice(),
  },
};

t.test('payloader -> depacketizer round trips', async (t) => {
  const encodings: G711Encoding[] = ['PCMU', 'PCMA'];
  const sources: G711SourceCodec[] = ['pcm_s16le', 'pcm_mulaw', 'pcm_alaw'];
  const budgets: Array<[payloadBytes: number, packetSamples: number]> = [
    [100, 100],
    [160, 160],
    [1200, 160],
    [161, 160],
    [1, 1],
  ];
  const blockPatterns = [[1, 7, 333], [160], [1000], [37, 160, 3]];
  let seed = 1;
  for (const encoding of encodings) {
    for (const source of sources) {
      for (const [payloadBytes, packetSamples] of budgets) {
        for (const blocks of blockPatterns) {
          const total = payloadBytes === 1 ? 50 : 1234;
          const startPts = seed % 2 === 0 ? 0 : 8000 * 3 + 17;
          const bytesPerSample = source === 'pcm_s16le' ? 2 : 1;
          const input = randomBytes(total * bytesPerSample, seed++);
          const name = `${encoding} from ${source}, payloadBytes ${payloadBytes}, blocks ${blocks.join('/')}, pts ${startPts}`;

          const payloader = new G711Payloader(encoding, source, { payloadBytes, spread: 0 }, { clockRate: 8000, channels: 1 });
          t.equal(payloader.clockRate, 8000);
          const { emit, packets } = collector();
          let done = 0;
          for (let b = 0; done < total; b++) {
            const frames = Math.min(blocks[b % blocks.length], total - done);
            payloader.push(sampleOf(input.subarray(done * bytesPerSample, (done + frames) * bytesPerSample), startPts + done, frames), emit);
            done += frames;
          }
          payloader.flush(emit);

          const expected = convertWhole[encoding][source](input);
          const expectedCount = Math.ceil(total / packetSamples);
          let ok = packets.length === expectedCount;
          for (let i = 0; ok && i < packets.length; i++) {
            const p = packets[i];
            const length = Math.min(packetSamples, total - i * packetSamples);
            const ts = startPts + i * packetSamples;
            ok =
              p.payload.length === length &&
              p.rtpTs === ts &&
              p.sendTs === ts &&
              !p.marker &&
              p.sync &&
              Buffer.from(p.payload).equals(expected.subarray(i * packetSamples, i * packetSamples + length));
          }
          t.ok(ok, `${name}: ${expectedCount} packets of ${packetSamples} samples with exact bytes and timestamps`);

          const depacketizer = new G711Depacketizer();
          const out: Uint8Array[] = [];
          let tsOk = true;
          for (const p of packets) {
            const frames = depacketizer.push(p.payload, p.rtpTs, p.marker, 0);
            if (frames.length !== 1 || frames[0].rtpTs !== p.rtpTs || !frames[0].keyframe) tsOk = false;
            out.push(...frames.map((f) => f.data));
          }
          t.ok(tsOk, `${name}: one frame per packet with its rtpTs`);
          t.ok(Buffer.concat(out).equals(expected), `${name}: depacketized bytes`);
          t.same(depacketizer.stats, { malformed: 0, dropped: 0 });
        }
      }
    }
  }
});

t.test('payloader: a jump in pts closes the current packet', async (t) => {
  const payloader = new G711Payloader('PCMU', 'pcm_mulaw', { payloadBytes: 1200, spread: 0 });
  const { emit, packets } = collector();
  payloader.push(sampleOf(new Uint8Array(100).fill(1), 0, 100), emit);
  payloader.push(sampleOf(new Uint8Array(100).fill(2), 5000, 100), emit);
  payloader.flush(emit);
  t.same(
    packets.map((p) => [p.rtpTs, p.payload.length, p.payload[0]]),
    [
      [0, 100, 1],
      [5000, 100, 2],
    ],
  );
  payloader.flush(emit);
  t.equal(packets.length, 2, 'a second flush emits nothing');
});

t.test('payloader reuses one scratch buffer', async (t) => {
  const payloader = new G711Payloader('PCMA', 'pcm_s16le', { payloadBytes: 160, spread: 0 });
  const buffers = new Set<ArrayBufferLike>();
  payloader.push(sampleOf(new Uint8Array(2 * 800), 0, 800), (payload) => buffers.add(payload.buffer));
  t.equal(buffers.size, 1);
});

t.test('payloader rejects what is not 8000 Hz mono', async (t) => {
  t.throws(() => new G711Payloader('PCMU', 'pcm_s16le', { payloadBytes: 1200, spread: 0 }, { clockRate: 48000, channels: 2 }), {
    name: 'RangeError',
    message: 'PCMU needs 8000 Hz mono audio; this file is 48000 Hz stereo — use L16, or convert it: ffmpeg -i in.wav -ar 8000 -ac 1 out.wav',
  });
  t.throws(() => new G711Payloader('PCMA', 'pcm_alaw', { payloadBytes: 1200, spread: 0 }, { clockRate: 16000, channels: 1 }), RangeError);
  t.throws(() => new G711Payloader('PCMU', 'pcm_s16le', { payloadBytes: 0, spread: 0 }), RangeError);
  t.throws(() => new G711Payloader('G722' as G711Encoding, 'pcm_s16le', { payloadBytes: 1200, spread: 0 }), RangeError);
  t.throws(() => new G711Payloader('PCMU', 'opus' as G711SourceCodec, { payloadBytes: 1200, spread: 0 }), RangeError);
  // Stereo s16 data: 4 bytes per frame.
  const payloader = new G711Payloader('PCMU', 'pcm_s16le', { payloadBytes: 1200, spread: 0 });
  t.throws(() => payloader.push(sampleOf(new Uint8Array(400), 0, 100), () => {}), { name: 'RangeError', message: /400 bytes for 100 frames/ });
});

t.test('depacketizer: empty payloads are counted and dropped; data is a copy', async (t) => {
  const depacketizer = new G711Depacketizer();
  t.same(depacketizer.push(new Uint8Array(0), 1, false, 0), []);
  t.same(depacketizer.stats, { malformed: 1, dropped: 0 });
  const payload = Uint8Array.of(1, 2, 3);
  const [frame] = depacketizer.push(payload, 4294967295, true, 3);
  payload.fill(9);
  t.same(frame, { rtpTs: 4294967295, data: Uint8Array.of(1, 2, 3), keyframe: true }, 'rtpTs passes through; lostBefore changes nothing');
  t.same(depacketizer.flush(), []);
});
