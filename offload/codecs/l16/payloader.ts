/**
 * L16 payloader (RFC 3551 4.5.11): 16-bit linear PCM, interleaved, in network
 * byte order. Input Samples are WAV-style little-endian s16 blocks of any size;
 * output packets hold 20 ms, or fewer frames when rtp.payloadBytes says so.
 * Partial packets carry over between input blocks, so packet boundaries do not
 * depend on how the reader chunked the file.
 */
import type { Sample } from '../../../storage/types.js';
import type { PacketEmit, PayloaderOptions, RtpPayloader } from '../types.js';

export interface L16Format {
  clockRate: number;
  channels: number;
}

/**
 * Frames per packet: 20 ms (floored for rates such as 11025 Hz; timestamps count
 * frames, so they stay exact), capped by what fits in payloadBytes. 0 when not even
 * one frame fits.
 */
export function l16FramesPerPacket(clockRate: number, channels: number, payloadBytes: number): number {
  const byBudget = Math.floor(payloadBytes / (2 * channels));
  const byDuration = Math.max(1, Math.floor(clockRate / 50));
  return Math.min(byDuration, byBudget);
}

export class L16Payloader implements RtpPayloader {
  readonly clockRate: number;
  readonly channels: number;
  /** Frames in every packet but possibly the last one of a run. */
  readonly framesPerPacket: number;
  readonly #frameBytes: number;
  /** The packet being filled; emitted as a view, then reused. */
  readonly #scratch: Uint8Array;
  /** Bytes of #scratch filled so far. */
  #filled = 0;
  /** RTP timestamp (frame index) of the first frame in #scratch. */
  #packetTs = 0;

  constructor(format: L16Format, opts: PayloaderOptions) {
    const { clockRate, channels } = format;
    if (!Number.isInteger(clockRate) || clockRate < 1) throw new RangeError(`L16: clockRate must be a positive integer, got ${clockRate}`);
    if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`L16: channels must be a positive integer, got ${channels}`);
    const frames = l16FramesPerPacket(clockRate, channels, opts.payloadBytes);
    if (!(frames >= 1)) {
      throw new RangeError(`L16: rtp.payloadBytes (${opts.payloadBytes}) cannot hold one ${channels}-channel frame of ${2 * channels} bytes`);
    }
    this.clockRate = clockRate;
    this.channels = channels;
    this.framesPerPacket = frames;
    this.#frameBytes = 2 * channels;
    this.#scratch = new Uint8Array(frames * this.#frameBytes);
  }

  push(sample: Sample, emit: PacketEmit): void {
    const data = sample.data;
    const frameBytes = this.#frameBytes;
    if (data.length % frameBytes !== 0) {
      throw new RangeError(`L16: sample at pts ${sample.pts} has ${data.length} bytes, not a whole number of ${frameBytes}-byte frames`);
    }
    const scratch = this.#scratch;
    // A jump in pts (a gap or a seek in the source) ends the current packet, so
    // every packet's timestamp is the true index of its first frame.
    if (this.#filled > 0 && sample.pts !== this.#packetTs + this.#filled / frameBytes) this.#emitPending(emit);
    if (this.#filled === 0) this.#packetTs = sample.pts;

    let pos = 0;
    while (pos < data.length) {
      const take = Math.min(scratch.length - this.#filled, data.length - pos);
      swapBytes16(data, pos, scratch, this.#filled, take);
      this.#filled += take;
      pos += take;
      if (this.#filled === scratch.length) this.#emitPending(emit);
    }
  }

  flush(emit: PacketEmit): void {
    if (this.#filled > 0) this.#emitPending(emit);
  }

  #emitPending(emit: PacketEmit): void {
    const ts = this.#packetTs;
    const frames = this.#filled / this.#frameBytes;
    const payload = this.#filled === this.#scratch.length ? this.#scratch : this.#scratch.subarray(0, this.#filled);
    this.#filled = 0;
    this.#packetTs = ts + frames;
    emit(payload, ts, false, ts, true);
  }
}

/**
 * Copies `byteLength` bytes of 16-bit samples from `src` to `dst`, swapping the
 * two bytes of each (little-endian <-> big-endian). `byteLength` must be even.
 */
export function swapBytes16(src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number, byteLength: number): void {
  for (let i = 0; i < byteLength; i += 2) {
    dst[dstOffset + i] = src[srcOffset + i + 1]!;
    dst[dstOffset + i + 1] = src[srcOffset + i]!;
  }
}
