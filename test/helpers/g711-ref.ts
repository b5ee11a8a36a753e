/**
 * A reference G.711 for tests, written from the standard's segment tables (ITU-T
 * G.711 tables 1a/2a) with the G.191 reading of 16-bit input (mu-law takes the 14
 * most significant bits, A-law 13; a negative sample by its one's complement),
 * independently of offload/codecs/g711: expected values in tests come from here.
 * One sample at a time, plainly: speed does not matter.
 */

/** Mu-law code of a 16-bit sample. */
export function ulawRef(x: number): number {
  const negative = x < 0;
  let m = (negative ? -x - 1 : x) >> 2; // 14-bit magnitude, one's complement for negatives
  if (m > 8158) m = 8158; // the top decision value
  const biased = m + 33; // 33..8191: segment s holds [32·2^s, 64·2^s)
  let seg = 0;
  while (biased >= 64 << seg) seg++;
  const step = (biased >> (seg + 1)) & 0x0f;
  return ~((negative ? 0x80 : 0) | (seg << 4) | step) & 0xff;
}

/** 16-bit value of a mu-law code: the interval's midpoint. */
export function ulawDecodeRef(code: number): number {
  const c = ~code & 0xff;
  const seg = (c >> 4) & 7;
  const step = c & 0x0f;
  const magnitude = (((2 * step + 33) << seg) - 33) * 4;
  return c & 0x80 ? -magnitude : magnitude;
}

/** A-law code of a 16-bit sample. */
export function alawRef(x: number): number {
  const negative = x < 0;
  const m = (negative ? -x - 1 : x) >> 3; // 13-bit magnitude, 0..4095
  let seg = 0;
  while (seg < 7 && m >= 32 << seg) seg++;
  const step = seg === 0 ? (m >> 1) & 0x0f : (m >> seg) & 0x0f;
  return ((negative ? 0 : 0x80) | (seg << 4) | step) ^ 0x55;
}

/** 16-bit value of an A-law code: the interval's midpoint. */
export function alawDecodeRef(code: number): number {
  const c = code ^ 0x55;
  const seg = (c >> 4) & 7;
  const step = c & 0x0f;
  const magnitude = (seg === 0 ? 2 * step + 1 : (2 * step + 33) << (seg - 1)) * 8;
  return c & 0x80 ? magnitude : -magnitude;
}
