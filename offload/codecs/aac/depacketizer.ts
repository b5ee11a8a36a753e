/**
 * AAC depacketizer: RFC 3640 (mpeg4-generic) AU-header section with configurable
 * sizeLength / indexLength / indexDeltaLength (AAC-hbr: 13/3/3, AAC-lbr: 6/2/2),
 * several AUs per packet, and AUs fragmented over packets (3.2.3). Never throws:
 * bad payloads are counted in `stats.malformed`, AUs lost to gaps in `stats.dropped`.
 */
import type { DepacketizedFrame, RtpDepacketizer } from '../types.js';

export interface AacDepacketizerOptions {
  /** Bits of AU-size in each AU header (fmtp sizelength). Default 13. */
  sizeLength?: number;
  /** Bits of AU-Index in the first AU header (fmtp indexlength). Default 3. */
  indexLength?: number;
  /** Bits of AU-Index-delta in the other AU headers (fmtp indexdeltalength). Default 3. */
  indexDeltaLength?: number;
  /** Samples per AU, to date the AUs after the first (1024, or 960/512/480). Default 1024. */
  frameLength?: number;
}

export class AacDepacketizer implements RtpDepacketizer {
  readonly stats = { malformed: 0, dropped: 0 };
  readonly #sizeLength: number;
  readonly #indexLength: number;
  readonly #indexDeltaLength: number;
  readonly #frameLength: number;
  /** Reassembly of a fragmented AU: buffer sized to the AU, bytes received so far. */
  #partial: Uint8Array | null = null;
  #partialFilled = 0;
  #partialTs = 0;

  constructor(opts: AacDepacketizerOptions = {}) {
    this.#sizeLength = opts.sizeLength ?? 13;
    this.#indexLength = opts.indexLength ?? 3;
    this.#indexDeltaLength = opts.indexDeltaLength ?? 3;
    this.#frameLength = opts.frameLength ?? 1024;
    for (const [name, v, max] of [
      ['sizeLength', this.#sizeLength, 32],
      ['indexLength', this.#indexLength, 16],
      ['indexDeltaLength', this.#indexDeltaLength, 16],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`AAC: ${name} must be an integer in 0..${max}, got ${v}`);
    }
    if (this.#sizeLength === 0) throw new RangeError('AAC: sizeLength 0 (constant-size AUs) is not supported');
    if (!Number.isInteger(this.#frameLength) || this.#frameLength < 1) {
      throw new RangeError(`AAC: frameLength must be a positive integer, got ${this.#frameLength}`);
    }
  }

  push(payload: Uint8Array, rtpTs: number, marker: boolean, lostBefore: number): DepacketizedFrame[] {
    if (lostBefore > 0) this.#dropPartial();
    const len = payload.length;
    if (len < 2) return this.#malformed();
    const headerBits = (payload[0]! << 8) | payload[1]!;
    const headerBytes = (headerBits + 7) >> 3;
    const dataStart = 2 + headerBytes;
    if (headerBits === 0 || dataStart > len) return this.#malformed();

    // Headers are bit-packed MSB first; sizes need at most 32 bits.
    const sizeLength = this.#sizeLength;
    const firstBits = sizeLength + this.#indexLength;
    const nextBits = sizeLength + this.#indexDeltaLength;
    if (headerBits < firstBits || (headerBits - firstBits) % nextBits !== 0) return this.#malformed();
    const count = 1 + (headerBits - firstBits) / nextBits;
    const available = len - dataStart;

    if (count === 1) {
      const size = readBits(payload, 16, sizeLength);
      if (size > available || this.#partial !== null) return this.#fragment(payload, dataStart, size, rtpTs, marker);
    } else if (this.#partial !== null) {
      // A packet of whole AUs while an AU was being reassembled: its tail is lost.
      this.#dropPartial();
    }

    let total = 0;
    let bit = 16;
    for (let i = 0; i < count; i++) {
      total += readBits(payload, bit, sizeLength);
      bit += i === 0 ? firstBits : nextBits;
    }
    if (total > available) return this.#malformed();

    const frames: DepacketizedFrame[] = [];
    let pos = dataStart;
    let index = 0;
    bit = 16;
    for (let i = 0; i < count; i++) {
      const size = readBits(payload, bit, sizeLength);
      if (i === 0) {
        bit += firstBits;
      } else {
        // AU-Index-delta: this AU is delta + 1 AUs after the previous one.
        index += 1 + readBits(payload, bit + sizeLength, this.#indexDeltaLength);
        bit += nextBits;
      }
      if (size > 0) {
        frames.push({ rtpTs: (rtpTs + index * this.#frameLength) >>> 0, data: payload.slice(pos, pos + size), keyframe: true });
      }
      pos += size;
    }
    return frames;
  }

  flush(): DepacketizedFrame[] {
    this.#dropPartial();
    return [];
  }

  /** A packet with a single AU header whose AU does not fit, or continuing one. */
  #fragment(payload: Uint8Array, dataStart: number, size: number, rtpTs: number, marker: boolean): DepacketizedFrame[] {
    const chunk = payload.subarray(dataStart);
    let partial = this.#partial;
    let started = false;
    if (partial !== null && (partial.length !== size || this.#partialTs !== rtpTs)) {
      // Another AU started before the previous one completed.
      this.#dropPartial();
      partial = null;
    }
    if (partial === null) {
      if (size <= chunk.length) {
        // A whole AU after a dropped partial one: handle as a normal packet.
        return size === 0 ? [] : [{ rtpTs: rtpTs >>> 0, data: payload.slice(dataStart, dataStart + size), keyframe: true }];
      }
      partial = new Uint8Array(size);
      this.#partial = partial;
      this.#partialFilled = 0;
      this.#partialTs = rtpTs;
      started = true;
    }
    if (this.#partialFilled + chunk.length > size) {
      // Fragments add up to more than the AU size.
      this.#partial = null;
      this.stats.malformed++;
      this.stats.dropped++;
      return [];
    }
    partial.set(chunk, this.#partialFilled);
    this.#partialFilled += chunk.length;
    if (this.#partialFilled === size) {
      this.#partial = null;
      return [{ rtpTs: rtpTs >>> 0, data: partial, keyframe: true }];
    }
    if (marker && !started) {
      // The last fragment arrived but bytes are missing (a middle one was lost).
      // A marker on the first fragment is tolerated (some senders mark every packet).
      this.#dropPartial();
    }
    return [];
  }

  #dropPartial(): void {
    if (this.#partial !== null) {
      this.#partial = null;
      this.stats.dropped++;
    }
  }

  #malformed(): DepacketizedFrame[] {
    this.stats.malformed++;
    this.#dropPartial();
    return [];
  }
}

/** Reads `bits` (<= 32) bits MSB first starting at bit offset `bit`; the caller checked bounds. */
function readBits(buf: Uint8Array, bit: number, bits: number): number {
  let value = 0;
  for (let i = 0; i < bits; i++) {
    const b = bit + i;
    value = value * 2 + ((buf[b >> 3]! >> (7 - (b & 7))) & 1);
  }
  return value;
}
