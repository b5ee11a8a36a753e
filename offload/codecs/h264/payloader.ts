/**
 * H.264 payloader: RFC 6184 packetization-mode=1 (non-interleaved).
 *  - a NAL unit that fits payloadBytes alone: a single NAL unit packet (5.6);
 *  - a run of NAL units of one access unit that fit together: one STAP-A (5.7.1);
 *  - a NAL unit larger than payloadBytes: FU-A fragments of near-equal size (5.8).
 * Before every IDR access unit the stream's SPS and PPS are inserted unless the
 * access unit carries them, so a receiver can start at any keyframe. Access unit
 * delimiters and filler data are not sent: RTP marks access-unit boundaries with
 * the marker bit and timestamp, and filler only pads a constant-bitrate channel
 * (RFC 6184 allows both to be dropped).
 */
import type { H264Params, Sample } from '../../../storage/types.js';
import type { PacketEmit, PayloaderOptions, RtpPayloader } from '../types.js';

export const H264_CLOCK_RATE = 90000;

const TYPE_IDR = 5;
const TYPE_SPS = 7;
const TYPE_PPS = 8;
const TYPE_AUD = 9;
const TYPE_FILLER = 12;
const TYPE_SPS_EXT = 13;
const TYPE_STAP_A = 24;
const TYPE_FU_A = 28;

const STAP_A_HEADER_BYTES = 1;
const STAP_A_SIZE_BYTES = 2;
const FU_A_HEADER_BYTES = 2;
/** The 16-bit NALU size field of a STAP-A bounds what it can carry. */
const MAX_AGGREGATED_NAL_BYTES = 0xffff;

/** Number of FU-A fragments for a NAL unit of `nalBytes` with payloads of at most `payloadBytes`. */
export function fuFragmentCount(nalBytes: number, payloadBytes: number): number {
  return Math.ceil((nalBytes - 1) / (payloadBytes - FU_A_HEADER_BYTES));
}

export class H264Payloader implements RtpPayloader {
  readonly clockRate = H264_CLOCK_RATE;
  /** Empty NAL units skipped (nothing to send). */
  emptySkipped = 0;
  readonly #payloadBytes: number;
  readonly #spread: number;
  readonly #sps: Uint8Array[];
  readonly #pps: Uint8Array[];
  /** STAP-A and FU-A payloads are built here; emitted views are valid during the emit call only. */
  readonly #scratch: Uint8Array;
  /** NAL units to send for the access unit at hand (reused). */
  readonly #nals: Uint8Array[] = [];
  #lastSendTs = -Infinity;

  constructor(params: H264Params, opts: PayloaderOptions) {
    const pb = opts.payloadBytes;
    if (!Number.isInteger(pb) || pb < FU_A_HEADER_BYTES + 1) {
      throw new RangeError(`H.264: rtp.payloadBytes must be an integer of at least ${FU_A_HEADER_BYTES + 1}, got ${pb}`);
    }
    if (!(opts.spread >= 0 && opts.spread <= 1)) throw new RangeError(`H.264: spread must be between 0 and 1, got ${opts.spread}`);
    this.#payloadBytes = pb;
    this.#spread = opts.spread;
    this.#sps = params.sps;
    this.#pps = params.pps;
    this.#scratch = new Uint8Array(pb);
  }

  push(sample: Sample, emit: PacketEmit): void {
    const idr = this.#collect(sample);
    const nals = this.#nals;
    if (nals.length === 0) return;
    const count = this.#plan(nals, null, 0, 0, 0, false);
    this.#plan(nals, emit, sample.pts, sample.dts, sample.duration, idr, count);
    nals.length = 0;
  }

  flush(_emit: PacketEmit): void {
    // Nothing is held between access units.
  }

  /** Fills #nals with what is sent for `sample`; returns whether it is an IDR access unit. */
  #collect(sample: Sample): boolean {
    const src = sample.nals;
    const nals = this.#nals;
    nals.length = 0;
    if (!src) return false;
    let idr = sample.keyframe;
    let hasSps = false;
    let hasPps = false;
    for (let i = 0; i < src.length; i++) {
      const nal = src[i]!;
      if (nal.length === 0) continue;
      const type = nal[0]! & 0x1f;
      if (type === TYPE_IDR) idr = true;
      else if (type === TYPE_SPS) hasSps = true;
      else if (type === TYPE_PPS) hasPps = true;
    }
    // Missing parameter sets go before the first NAL unit that is neither an SPS
    // nor an AUD, so an SPS the access unit has still precedes the inserted PPS.
    let insert = idr && (!hasSps || !hasPps);
    for (let i = 0; i < src.length; i++) {
      const nal = src[i]!;
      if (nal.length === 0) {
        this.emptySkipped++;
        continue;
      }
      const type = nal[0]! & 0x1f;
      if (type === TYPE_AUD || type === TYPE_FILLER) continue;
      if (insert && type !== TYPE_SPS && type !== TYPE_SPS_EXT) {
        if (!hasSps) for (const s of this.#sps) nals.push(s);
        if (!hasPps) for (const p of this.#pps) nals.push(p);
        insert = false;
      }
      nals.push(nal);
    }
    return idr;
  }

  /**
   * Walks the packets of one access unit. Without `emit` it only counts them (the
   * count spreads the send times); with `emit` it sends them.
   */
  #plan(nals: Uint8Array[], emit: PacketEmit | null, pts: number, dts: number, duration: number, idr: boolean, count = 0): number {
    const pb = this.#payloadBytes;
    let k = 0;
    let i = 0;
    while (i < nals.length) {
      const nal = nals[i]!;
      if (nal.length > pb) {
        const fragments = fuFragmentCount(nal.length, pb);
        if (emit) {
          for (let f = 0; f < fragments; f++) {
            this.#emitFragment(nal, f, fragments, emit, pts, this.#sendTs(dts, duration, k, count), k === count - 1, idr && k === 0);
            k++;
          }
        } else {
          k += fragments;
        }
        i++;
        continue;
      }
      // Aggregate the longest run starting here that fits one STAP-A.
      let size = STAP_A_HEADER_BYTES + STAP_A_SIZE_BYTES + nal.length;
      let j = i + 1;
      if (nal.length <= MAX_AGGREGATED_NAL_BYTES) {
        while (j < nals.length) {
          const next = nals[j]!.length;
          if (next > MAX_AGGREGATED_NAL_BYTES || size + STAP_A_SIZE_BYTES + next > pb) break;
          size += STAP_A_SIZE_BYTES + next;
          j++;
        }
      }
      if (emit) {
        const sendTs = this.#sendTs(dts, duration, k, count);
        const marker = k === count - 1;
        const sync = idr && k === 0;
        if (j - i >= 2) emit(this.#stapA(nals, i, j, size), pts, marker, sendTs, sync);
        else emit(nal, pts, marker, sendTs, sync);
      }
      k++;
      i = j - i >= 2 ? j : i + 1;
    }
    return k;
  }

  /** Packet k of n goes out spread over `spread` of the frame interval, never before an earlier one. */
  #sendTs(dts: number, duration: number, k: number, n: number): number {
    let ts = dts + Math.floor((k * duration * this.#spread) / n);
    if (ts < this.#lastSendTs) ts = this.#lastSendTs;
    this.#lastSendTs = ts;
    return ts;
  }

  /** Writes a STAP-A of nals[from, to) into the scratch buffer. */
  #stapA(nals: Uint8Array[], from: number, to: number, size: number): Uint8Array {
    const out = this.#scratch;
    let f = 0;
    let nri = 0;
    let o = STAP_A_HEADER_BYTES;
    for (let i = from; i < to; i++) {
      const nal = nals[i]!;
      f |= nal[0]! & 0x80;
      const n = nal[0]! & 0x60;
      if (n > nri) nri = n;
      out[o] = nal.length >> 8;
      out[o + 1] = nal.length & 0xff;
      out.set(nal, o + STAP_A_SIZE_BYTES);
      o += STAP_A_SIZE_BYTES + nal.length;
    }
    out[0] = f | nri | TYPE_STAP_A;
    return out.subarray(0, size);
  }

  /**
   * Sends fragment f of n of `nal` as FU-A. The NAL payload (after its header byte)
   * is cut into n parts whose sizes differ by at most one byte.
   */
  #emitFragment(nal: Uint8Array, f: number, n: number, emit: PacketEmit, pts: number, sendTs: number, marker: boolean, sync: boolean): void {
    const body = nal.length - 1;
    const base = Math.floor(body / n);
    const extra = body % n;
    const size = base + (f < extra ? 1 : 0);
    const start = 1 + f * base + Math.min(f, extra);
    const out = this.#scratch;
    const header = nal[0]!;
    out[0] = (header & 0xe0) | TYPE_FU_A;
    out[1] = (f === 0 ? 0x80 : 0) | (f === n - 1 ? 0x40 : 0) | (header & 0x1f);
    out.set(nal.subarray(start, start + size), FU_A_HEADER_BYTES);
    emit(out.subarray(0, FU_A_HEADER_BYTES + size), pts, marker, sendTs, sync);
  }
}
