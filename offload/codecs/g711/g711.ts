/**
 * G.711 mu-law and A-law (ITU-T G.711), on 16-bit linear samples.
 *
 * Quantization follows the G.711 decision values as the ITU-T G.191 software
 * tools apply them to 16-bit input: mu-law looks at the 14 most significant bits,
 * A-law at the 13 most significant bits, and a negative sample is taken by its
 * one's complement (so -1 is "negative zero": 0x7F in mu-law, 0x55 in A-law).
 * Decoding yields the interval midpoints, left-justified in 16 bits.
 *
 * ffmpeg's pcm_mulaw/pcm_alaw decoders agree with these on all 256 codes. Its
 * encoders round to the nearest reconstruction level instead, so they pick the
 * neighbouring code for 964 of the 65536 inputs per law (negative values just
 * below a decision value, and inputs at segment boundaries); see the tests.
 *
 * Every conversion is a lookup in a table built once at module load: 64 KiB per
 * law for encoding (indexed by the sample's unsigned 16-bit pattern, which is
 * what two little-endian bytes give without sign handling), 256 entries for
 * decoding and for mu-law <-> A-law transcoding.
 */

/** Mu-law code for one 16-bit sample (G.191 ulaw_compress rule). */
function quantizeUlaw(sample: number): number {
  // 14-bit magnitude plus the bias 33 that puts segment ends on powers of two.
  let biased = (sample < 0 ? ~sample >> 2 : sample >> 2) + 33;
  if (biased > 0x1fff) biased = 0x1fff;
  // Segment 1..8: one more than the position of the highest set bit above bit 5.
  let segment = 1;
  for (let rest = biased >> 6; rest !== 0; rest >>= 1) segment++;
  const mantissa = (biased >> segment) & 0x0f;
  const code = ((8 - segment) << 4) | (0x0f - mantissa);
  return sample >= 0 ? code | 0x80 : code;
}

/** A-law code for one 16-bit sample (G.191 alaw_compress rule). */
function quantizeAlaw(sample: number): number {
  // 12-bit magnitude (13-bit signed input).
  let magnitude = sample < 0 ? ~sample >> 4 : sample >> 4;
  let code: number;
  if (magnitude <= 15) {
    code = magnitude; // segment 0: linear
  } else {
    let segment = 1;
    while (magnitude > 31) {
      magnitude >>= 1;
      segment++;
    }
    code = (segment << 4) | (magnitude - 16);
  }
  if (sample >= 0) code |= 0x80;
  return code ^ 0x55; // even bits are inverted on the line
}

/** Linear value of a mu-law code: the midpoint of its interval, 14 bits left-justified. */
function expandUlaw(code: number): number {
  const inverted = ~code & 0xff;
  const exponent = (inverted >> 4) & 0x07;
  const mantissa = inverted & 0x0f;
  const magnitude = ((mantissa << 3) + 0x84) << exponent;
  // 0x84 is the bias (33 << 2) added on encoding.
  return code & 0x80 ? magnitude - 0x84 : 0x84 - magnitude;
}

/** Linear value of an A-law code: the midpoint of its interval, 13 bits left-justified. */
function expandAlaw(code: number): number {
  const toggled = code ^ 0x55;
  const exponent = (toggled >> 4) & 0x07;
  let magnitude = toggled & 0x0f;
  if (exponent > 0) magnitude += 16;
  magnitude = (magnitude << 4) + 8;
  if (exponent > 1) magnitude <<= exponent - 1;
  return toggled & 0x80 ? magnitude : -magnitude;
}

const ULAW_ENCODE = new Uint8Array(65536);
const ALAW_ENCODE = new Uint8Array(65536);
const ULAW_DECODE = new Int16Array(256);
const ALAW_DECODE = new Int16Array(256);
const ULAW_TO_ALAW = new Uint8Array(256);
const ALAW_TO_ULAW = new Uint8Array(256);

for (let bits = 0; bits < 65536; bits++) {
  const sample = (bits << 16) >> 16;
  ULAW_ENCODE[bits] = quantizeUlaw(sample);
  ALAW_ENCODE[bits] = quantizeAlaw(sample);
}
for (let code = 0; code < 256; code++) {
  ULAW_DECODE[code] = expandUlaw(code);
  ALAW_DECODE[code] = expandAlaw(code);
}
for (let code = 0; code < 256; code++) {
  ULAW_TO_ALAW[code] = ALAW_ENCODE[ULAW_DECODE[code]! & 0xffff]!;
  ALAW_TO_ULAW[code] = ULAW_ENCODE[ALAW_DECODE[code]! & 0xffff]!;
}

/** Mu-law code (0..255) of a 16-bit sample; out-of-range input is clamped to int16 first. */
export function linearToUlaw(s16: number): number {
  return ULAW_ENCODE[clampInt16(s16) & 0xffff]!;
}

/** 16-bit linear value of a mu-law code (only the low 8 bits of `b` are used). */
export function ulawToLinear(b: number): number {
  return ULAW_DECODE[b & 0xff]!;
}

/** A-law code (0..255) of a 16-bit sample; out-of-range input is clamped to int16 first. */
export function linearToAlaw(s16: number): number {
  return ALAW_ENCODE[clampInt16(s16) & 0xffff]!;
}

/** 16-bit linear value of an A-law code (only the low 8 bits of `b` are used). */
export function alawToLinear(b: number): number {
  return ALAW_DECODE[b & 0xff]!;
}

/** A-law code for a mu-law code (decode, then encode). */
export function ulawToAlaw(b: number): number {
  return ULAW_TO_ALAW[b & 0xff]!;
}

/** Mu-law code for an A-law code (decode, then encode). */
export function alawToUlaw(b: number): number {
  return ALAW_TO_ULAW[b & 0xff]!;
}

/**
 * Encodes little-endian s16 PCM (`pcmLE.length >> 1` samples; a trailing odd byte
 * is ignored) into mu-law codes at `out[0..]`. Returns the number of codes written.
 * Throws RangeError when `out` is too short.
 */
export function encodeUlaw(pcmLE: Uint8Array, out: Uint8Array): number {
  return encodeWith(ULAW_ENCODE, pcmLE, out);
}

/** As encodeUlaw, to A-law. */
export function encodeAlaw(pcmLE: Uint8Array, out: Uint8Array): number {
  return encodeWith(ALAW_ENCODE, pcmLE, out);
}

/**
 * Decodes mu-law codes into little-endian s16 PCM at `outLE[0..]` (2 bytes per code).
 * Returns the number of bytes written. Throws RangeError when `outLE` is too short.
 */
export function decodeUlaw(codes: Uint8Array, outLE: Uint8Array): number {
  return decodeWith(ULAW_DECODE, codes, outLE);
}

/** As decodeUlaw, from A-law. */
export function decodeAlaw(codes: Uint8Array, outLE: Uint8Array): number {
  return decodeWith(ALAW_DECODE, codes, outLE);
}

/** Mu-law codes to A-law codes (`out` may be `codes` itself). Returns the count. */
export function transcodeUlawToAlaw(codes: Uint8Array, out: Uint8Array): number {
  return mapWith(ULAW_TO_ALAW, codes, out);
}

/** A-law codes to mu-law codes (`out` may be `codes` itself). Returns the count. */
export function transcodeAlawToUlaw(codes: Uint8Array, out: Uint8Array): number {
  return mapWith(ALAW_TO_ULAW, codes, out);
}

function clampInt16(value: number): number {
  if (value > 32767) return 32767;
  if (value < -32768) return -32768;
  return value | 0;
}

function encodeWith(table: Uint8Array, pcmLE: Uint8Array, out: Uint8Array): number {
  const count = pcmLE.length >> 1;
  if (out.length < count) {
    throw new RangeError(`G.711 encode: output holds ${out.length} bytes, input has ${count} samples`);
  }
  for (let i = 0, j = 0; i < count; i++, j += 2) {
    out[i] = table[pcmLE[j]! | (pcmLE[j + 1]! << 8)]!;
  }
  return count;
}

function decodeWith(table: Int16Array, codes: Uint8Array, outLE: Uint8Array): number {
  const bytes = codes.length * 2;
  if (outLE.length < bytes) {
    throw new RangeError(`G.711 decode: output holds ${outLE.length} bytes, ${codes.length} samples need ${bytes}`);
  }
  for (let i = 0, j = 0; i < codes.length; i++, j += 2) {
    const value = table[codes[i]!]!;
    outLE[j] = value & 0xff;
    outLE[j + 1] = (value >> 8) & 0xff;
  }
  return bytes;
}

function mapWith(table: Uint8Array, codes: Uint8Array, out: Uint8Array): number {
  if (out.length < codes.length) {
    throw new RangeError(`G.711 transcode: output holds ${out.length} bytes, input has ${codes.length}`);
  }
  for (let i = 0; i < codes.length; i++) out[i] = table[codes[i]!]!;
  return codes.length;
}
