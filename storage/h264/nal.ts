/**
 * H.264 NAL unit basics (ITU-T H.264 7.3.1, 7.4.1, 9.1): the NAL header byte,
 * start-code search for Annex B byte streams, emulation-prevention removal and an
 * exp-Golomb bit reader over the resulting RBSP.
 */

/** nal_unit_type values this code names (Table 7-1). */
export const NalType = {
  slice: 1,
  sliceDataPartitionA: 2,
  sliceDataPartitionB: 3,
  sliceDataPartitionC: 4,
  idrSlice: 5,
  sei: 6,
  sps: 7,
  pps: 8,
  aud: 9,
  endOfSequence: 10,
  endOfStream: 11,
  filler: 12,
  spsExtension: 13,
  prefix: 14,
  subsetSps: 15,
  auxiliarySlice: 19,
  sliceExtension: 20,
  stapA: 24,
  fuA: 28,
} as const;

/** nal_unit_type: the low 5 bits of the first byte. */
export function nalType(nal: Uint8Array): number {
  return nal[0]! & 0x1f;
}

/** nal_ref_idc (0..3): 0 means the NAL is not used for reference. */
export function nalRefIdc(nal: Uint8Array): number {
  return (nal[0]! >> 5) & 0x03;
}

/** forbidden_zero_bit: must be 0 in a valid NAL unit. */
export function forbiddenBit(nal: Uint8Array): boolean {
  return (nal[0]! & 0x80) !== 0;
}

/** Slices that carry a slice_header() (7.3.2.8, 7.3.2.9.1): they can start a picture. */
export function isSliceWithHeader(type: number): boolean {
  return type === NalType.slice || type === NalType.idrSlice || type === NalType.sliceDataPartitionA;
}

/** VCL NAL units of the primary coded picture (types 1-5). */
export function isPrimaryVcl(type: number): boolean {
  return type >= NalType.slice && type <= NalType.idrSlice;
}

/**
 * Index of the next `00 00 01` at or after `from` and before `end`, or -1.
 * Skips ahead by the value of the byte under inspection, like most scanners:
 * a byte > 1 at i+2 means no start code can begin at i, i+1 or i+2.
 */
export function findStartCode(buf: Uint8Array, from: number, end: number): number {
  let i = from;
  const last = end - 3;
  while (i <= last) {
    const b2 = buf[i + 2]!;
    if (b2 > 1) {
      i += 3;
    } else if (b2 === 1) {
      if (buf[i + 1] === 0 && buf[i] === 0) return i;
      i += 3;
    } else {
      i += 1;
    }
  }
  return -1;
}

/**
 * End of `buf[start..end)` without its trailing zero bytes (trailing_zero_8bits and
 * the zero_byte of a following 4-byte start code). A NAL unit never ends in 00: its
 * RBSP ends with the stop bit, and cabac_zero_words are escaped to 00 00 03.
 */
export function trimTrailingZeros(buf: Uint8Array, start: number, end: number): number {
  let e = end;
  while (e > start && buf[e - 1] === 0) e--;
  return e;
}

/**
 * RBSP of a NAL unit payload (7.3.1): the bytes after the header byte(s), with every
 * emulation_prevention_three_byte (the 03 in `00 00 03`) removed. Returns a view
 * over `nal` when there is nothing to remove, a copy otherwise. `limit` bounds how
 * many NAL bytes are examined (headers need only the first few hundred bytes).
 */
export function rbspFromNal(nal: Uint8Array, headerBytes = 1, limit = nal.length): Uint8Array {
  const end = Math.min(limit, nal.length);
  if (end <= headerBytes) return nal.subarray(headerBytes, headerBytes);
  let first = -1;
  for (let i = headerBytes + 2; i < end; i++) {
    if (nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) {
      first = i;
      break;
    }
  }
  if (first < 0) return nal.subarray(headerBytes, end);
  const out = new Uint8Array(end - headerBytes);
  let o = 0;
  let zeros = 0;
  for (let i = headerBytes; i < end; i++) {
    const b = nal[i]!;
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out[o++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, o);
}

/**
 * Reads bits MSB first from an RBSP, with ue(v)/se(v) exp-Golomb codes (9.1).
 * Running past the end throws RangeError.
 */
export class BitReader {
  private readonly buf: Uint8Array;
  private pos = 0;
  private readonly totalBits: number;

  constructor(rbsp: Uint8Array) {
    this.buf = rbsp;
    this.totalBits = rbsp.length * 8;
  }

  /** One bit. */
  u1(): number {
    if (this.pos >= this.totalBits) throw new RangeError(`bitstream ends at bit ${this.pos}`);
    const bit = (this.buf[this.pos >> 3]! >> (7 - (this.pos & 7))) & 1;
    this.pos++;
    return bit;
  }

  flag(): boolean {
    return this.u1() === 1;
  }

  /** u(n) for n <= 32. */
  u(n: number): number {
    if (n === 0) return 0;
    if (this.pos + n > this.totalBits) {
      throw new RangeError(`bitstream ends at bit ${this.totalBits}, needed ${n} bits at bit ${this.pos}`);
    }
    let v = 0;
    for (let i = 0; i < n; i++) {
      v = v * 2 + ((this.buf[this.pos >> 3]! >> (7 - (this.pos & 7))) & 1);
      this.pos++;
    }
    return v;
  }

  skip(n: number): void {
    if (this.pos + n > this.totalBits) {
      throw new RangeError(`bitstream ends at bit ${this.totalBits}, needed ${n} bits at bit ${this.pos}`);
    }
    this.pos += n;
  }

  /** ue(v): unsigned exp-Golomb; at most 32 leading zeros (values up to 2^32 - 2). */
  ue(): number {
    let zeros = 0;
    while (this.u1() === 0) {
      zeros++;
      if (zeros > 31) throw new RangeError(`exp-Golomb code with more than 31 leading zeros at bit ${this.pos}`);
    }
    return 2 ** zeros - 1 + this.u(zeros);
  }

  /** se(v): signed exp-Golomb (k -> (-1)^(k+1) * ceil(k/2)). */
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }

  /** ue(v) with a bound from the syntax; larger values mean a corrupt stream. */
  ueMax(max: number, name: string): number {
    const v = this.ue();
    if (v > max) throw new RangeError(`${name} = ${v}, more than ${max}`);
    return v;
  }

  /**
   * more_rbsp_data() (7.2): true while anything but the rbsp_stop_one_bit and its
   * alignment zeros remains.
   */
  moreRbspData(): boolean {
    if (this.pos >= this.totalBits) return false;
    // The last 1 bit in the buffer is the stop bit; trailing zero bytes (cabac_zero_word) are not data.
    let lastByte = this.buf.length - 1;
    while (lastByte >= 0 && this.buf[lastByte] === 0) lastByte--;
    if (lastByte < 0) return false;
    const b = this.buf[lastByte]!;
    let stopBit = lastByte * 8 + 7;
    while (((b >> (7 - (stopBit & 7))) & 1) === 0) stopBit--;
    return this.pos < stopBit;
  }
}
