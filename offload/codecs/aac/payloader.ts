/**
 * AAC payloader: RFC 3640 (mpeg4-generic) mode AAC-hbr. Every payload is
 *   AU-headers-length (16 bits, in bits) | AU headers (13-bit AU-size + 3-bit
 *   AU-Index/AU-Index-delta = 0) | AUs concatenated.
 * Consecutive AUs share a packet while they fit payloadBytes and the packet stays
 * within MAX_PACKET_MS of audio (and MAX_AUS_PER_PACKET, ffmpeg's default): more
 * AUs per packet save headers but add latency and lose more audio per lost
 * packet. An AU larger than one packet is fragmented (RFC 3640 3.2.3).
 */
import type { AacParams, Sample } from '../../../storage/types.js';
import { parseAudioSpecificConfig } from '../../../storage/aac.js';
import type { PacketEmit, PayloaderOptions, RtpPayloader } from '../types.js';

/** Upper bound of the audio duration one packet carries. */
export const MAX_PACKET_MS = 100;
/** Upper bound of AUs per packet (ffmpeg's rtpenc default is 5). */
export const MAX_AUS_PER_PACKET = 5;
/** AU-size is 13 bits. */
export const MAX_AU_BYTES = 0x1fff;

const AU_HEADER_BYTES = 2;
const AU_HEADERS_LENGTH_BYTES = 2;

/** AUs one packet may hold for this rate: MAX_PACKET_MS of audio, 1..MAX_AUS_PER_PACKET. */
export function aacMaxAusPerPacket(sampleRate: number, frameLength: number): number {
  const byDuration = Math.floor((MAX_PACKET_MS * sampleRate) / (1000 * frameLength));
  return Math.max(1, Math.min(MAX_AUS_PER_PACKET, byDuration));
}

/** Writes the 16-bit AU header (AU-size, index/delta 0) at `offset`. */
function writeAuHeader(buf: Uint8Array, offset: number, auSize: number): void {
  buf[offset] = auSize >> 5;
  buf[offset + 1] = (auSize & 0x1f) << 3;
}

export class AacPayloader implements RtpPayloader {
  readonly clockRate: number;
  /** Samples per AU (from the AudioSpecificConfig; 1024 when it cannot be parsed). */
  readonly frameLength: number;
  readonly maxAusPerPacket: number;
  /** AUs not sent: larger than AU-size can express, or empty. */
  dropped = 0;
  readonly #payloadBytes: number;
  /**
   * The packet being built. AU data is written from #dataStart on; the headers are
   * written right before it when the packet is emitted, so no bytes move.
   */
  readonly #scratch: Uint8Array;
  readonly #dataStart: number;
  #dataEnd: number;
  /** Sizes of the AUs in #scratch. */
  readonly #sizes: Uint16Array;
  #count = 0;
  #firstPts = 0;
  #firstDts = 0;

  constructor(params: AacParams, opts: PayloaderOptions) {
    const rate = params.sampleRate;
    if (!Number.isInteger(rate) || rate < 1) throw new RangeError(`AAC: sampleRate must be a positive integer, got ${rate}`);
    // The smallest useful packet: length, one header, one byte of AU.
    if (!(opts.payloadBytes >= AU_HEADERS_LENGTH_BYTES + AU_HEADER_BYTES + 1)) {
      throw new RangeError(`AAC: rtp.payloadBytes (${opts.payloadBytes}) cannot hold an AU header and data`);
    }
    let frameLength = 1024;
    try {
      frameLength = parseAudioSpecificConfig(params.audioSpecificConfig).frameLength;
    } catch {
      // Keep 1024: only the packet duration cap depends on it.
    }
    this.clockRate = rate;
    this.frameLength = frameLength;
    this.maxAusPerPacket = aacMaxAusPerPacket(rate, frameLength);
    this.#payloadBytes = opts.payloadBytes;
    this.#dataStart = AU_HEADERS_LENGTH_BYTES + AU_HEADER_BYTES * this.maxAusPerPacket;
    this.#dataEnd = this.#dataStart;
    // Room for the largest aggregate (payloadBytes) past the reserved header area.
    this.#scratch = new Uint8Array(this.#dataStart + opts.payloadBytes);
    this.#sizes = new Uint16Array(this.maxAusPerPacket);
  }

  push(sample: Sample, emit: PacketEmit): void {
    const au = sample.data;
    const size = au.length;
    if (size === 0 || size > MAX_AU_BYTES) {
      this.dropped++;
      return;
    }
    if (AU_HEADERS_LENGTH_BYTES + AU_HEADER_BYTES + size > this.#payloadBytes) {
      if (this.#count > 0) this.#emitPending(emit);
      this.#emitFragments(au, sample.pts, sample.dts, emit);
      return;
    }
    // The receiver dates the i-th AU rtpTs + i * frameLength: a pts jump (gap,
    // seek, odd last frame) starts a new packet.
    if (this.#count > 0) {
      const contiguous = sample.pts === this.#firstPts + this.#count * this.frameLength;
      const fits = AU_HEADERS_LENGTH_BYTES + AU_HEADER_BYTES * (this.#count + 1) + (this.#dataEnd - this.#dataStart) + size <= this.#payloadBytes;
      if (!contiguous || !fits) this.#emitPending(emit);
    }
    if (this.#count === 0) {
      this.#firstPts = sample.pts;
      this.#firstDts = sample.dts;
    }
    this.#scratch.set(au, this.#dataEnd);
    this.#dataEnd += size;
    this.#sizes[this.#count++] = size;
    if (this.#count === this.maxAusPerPacket) this.#emitPending(emit);
  }

  flush(emit: PacketEmit): void {
    if (this.#count > 0) this.#emitPending(emit);
  }

  #emitPending(emit: PacketEmit): void {
    const scratch = this.#scratch;
    const count = this.#count;
    const start = this.#dataStart - AU_HEADER_BYTES * count - AU_HEADERS_LENGTH_BYTES;
    const headerBits = 16 * count;
    scratch[start] = headerBits >> 8;
    scratch[start + 1] = headerBits & 0xff;
    for (let i = 0; i < count; i++) writeAuHeader(scratch, start + AU_HEADERS_LENGTH_BYTES + AU_HEADER_BYTES * i, this.#sizes[i]!);
    const end = this.#dataEnd;
    this.#count = 0;
    this.#dataEnd = this.#dataStart;
    emit(scratch.subarray(start, end), this.#firstPts, true, this.#firstDts, true);
  }

  /** RFC 3640 3.2.3: each fragment carries one AU header with the whole AU's size. */
  #emitFragments(au: Uint8Array, pts: number, dts: number, emit: PacketEmit): void {
    const scratch = this.#scratch;
    const room = this.#payloadBytes - AU_HEADERS_LENGTH_BYTES - AU_HEADER_BYTES;
    scratch[0] = 0;
    scratch[1] = 16;
    writeAuHeader(scratch, 2, au.length);
    for (let pos = 0; pos < au.length; pos += room) {
      const take = Math.min(room, au.length - pos);
      scratch.set(au.subarray(pos, pos + take), 4);
      emit(scratch.subarray(0, 4 + take), pts, pos + take === au.length, dts, true);
    }
  }
}
