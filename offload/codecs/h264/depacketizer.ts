/**
 * H.264 depacketizer for RFC 6184 packetization-mode=1: single NAL unit packets
 * (types 1-23), STAP-A (24) and FU-A (28). Modes 0 and 2 structures (STAP-B,
 * MTAP16/24, FU-B) and types 0, 30, 31 are counted as malformed: mode 1 is what we
 * negotiate. A NAL unit with a fragment missing is dropped and counted; the rest
 * of its access unit is kept (a decoder conceals a missing slice better than a
 * missing frame). Never throws.
 *
 * An access unit is complete at the marker bit, or when the RTP timestamp changes
 * (a lost marker packet).
 */
import type { DepacketizedFrame, RtpDepacketizer } from '../types.js';

/** Largest NAL unit and access unit kept; bigger ones are dropped and counted. */
export const MAX_NAL_BYTES = 8 << 20;
export const MAX_ACCESS_UNIT_BYTES = 16 << 20;

const TYPE_IDR = 5;
const TYPE_STAP_A = 24;
const TYPE_FU_A = 28;

const NO_DATA = new Uint8Array(0);

const FU_IDLE = 0;
/** A fragmented NAL unit is being reassembled. */
const FU_OPEN = 1;
/** Fragments of a NAL unit already counted as dropped are skipped until its end. */
const FU_SKIP = 2;

/** NAL units as an Annex B byte stream with 4-byte start codes (for .h264 writers). */
export function annexBFromNals(nals: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const nal of nals) size += 4 + nal.length;
  const out = new Uint8Array(size);
  let o = 0;
  for (const nal of nals) {
    out[o + 3] = 1;
    out.set(nal, o + 4);
    o += 4 + nal.length;
  }
  return out;
}

export class H264Depacketizer implements RtpDepacketizer {
  readonly stats = { malformed: 0, dropped: 0 };
  /** Why the most recent malformed packet was rejected, for a rate-limited log. */
  lastError: string | null = null;

  /** The access unit being collected. */
  #nals: Uint8Array[] = [];
  #auBytes = 0;
  #auTs = 0;
  #auIdr = false;
  /** True once any packet of the current access unit arrived. */
  #auStarted = false;
  /** The current access unit overflowed MAX_ACCESS_UNIT_BYTES: skip the rest of it. */
  #auOverflow = false;

  /** FU-A reassembly buffer, grown on demand up to MAX_NAL_BYTES. */
  #fu = new Uint8Array(2048);
  #fuLen = 0;
  #fuType = 0;
  #fuState = FU_IDLE;

  push(payload: Uint8Array, rtpTs: number, marker: boolean, lostBefore: number): DepacketizedFrame[] {
    const out: DepacketizedFrame[] = [];
    if (lostBefore > 0 && this.#fuState === FU_OPEN) {
      // Its remaining fragments (if this packet is one) are skipped, not counted again.
      this.#dropFragmented();
      this.#fuState = FU_SKIP;
    }
    if (this.#auStarted && rtpTs !== this.#auTs) this.#finish(out);
    if (!this.#auStarted) {
      this.#auStarted = true;
      this.#auTs = rtpTs;
    }
    this.#payload(payload);
    if (marker) this.#finish(out);
    return out;
  }

  flush(): DepacketizedFrame[] {
    const out: DepacketizedFrame[] = [];
    this.#finish(out);
    this.#fuState = FU_IDLE;
    return out;
  }

  #payload(p: Uint8Array): void {
    if (p.length === 0) return this.#malformed('empty payload');
    const type = p[0]! & 0x1f;
    if (type >= 1 && type <= 23) {
      // A NAL unit without its end fragment: the FU is lost.
      if (this.#fuState === FU_OPEN) this.#dropFragmented();
      this.#fuState = FU_IDLE;
      this.#addNal(p.slice());
    } else if (type === TYPE_STAP_A) {
      if (this.#fuState === FU_OPEN) this.#dropFragmented();
      this.#fuState = FU_IDLE;
      this.#stapA(p);
    } else if (type === TYPE_FU_A) {
      this.#fuA(p);
    } else {
      this.#malformed(`NAL unit type ${type} is not allowed in packetization-mode 1`);
    }
  }

  #stapA(p: Uint8Array): void {
    // Validate the whole packet before taking any NAL unit from it.
    let o = 1;
    let count = 0;
    while (o < p.length) {
      if (o + 2 > p.length) return this.#malformed(`STAP-A: NALU size cut at byte ${o} of ${p.length}`);
      const size = (p[o]! << 8) | p[o + 1]!;
      if (size === 0) return this.#malformed(`STAP-A: zero NALU size at byte ${o}`);
      if (o + 2 + size > p.length) return this.#malformed(`STAP-A: NALU of ${size} bytes at byte ${o} overruns the ${p.length}-byte payload`);
      o += 2 + size;
      count++;
    }
    if (count === 0) return this.#malformed('STAP-A without NAL units');
    o = 1;
    while (o < p.length) {
      const size = (p[o]! << 8) | p[o + 1]!;
      this.#addNal(p.slice(o + 2, o + 2 + size));
      o += 2 + size;
    }
  }

  #fuA(p: Uint8Array): void {
    if (p.length < 3) return this.#malformed(`FU-A of ${p.length} bytes (no fragment data)`);
    const fuHeader = p[1]!;
    const start = (fuHeader & 0x80) !== 0;
    const end = (fuHeader & 0x40) !== 0;
    const type = fuHeader & 0x1f;
    if (start && end) return this.#malformed('FU-A with both start and end bits');
    if (start) {
      // A new start while one is open: the open one lost its end.
      if (this.#fuState === FU_OPEN) this.#dropFragmented();
      this.#fuState = FU_OPEN;
      this.#fuType = type;
      this.#fuLen = 0;
      // The NAL header: F and NRI from the FU indicator, type from the FU header.
      this.#fuAppend(p, 1);
      this.#fu[0] = (p[0]! & 0xe0) | type;
      return;
    }
    if (this.#fuState === FU_OPEN && type !== this.#fuType) this.#dropFragmented();
    if (this.#fuState !== FU_OPEN) {
      // A fragment whose start was lost: count its NAL unit once, skip to its end.
      if (this.#fuState === FU_IDLE) {
        this.stats.dropped++;
        this.#fuState = FU_SKIP;
      }
      if (end) this.#fuState = FU_IDLE;
      return;
    }
    this.#fuAppend(p, 2);
    if (end && this.#fuState === FU_OPEN) {
      this.#fuState = FU_IDLE;
      this.#addNal(this.#fu.slice(0, this.#fuLen));
    }
  }

  /** Appends p[from..] to the reassembly buffer; past MAX_NAL_BYTES the NAL unit is dropped. */
  #fuAppend(p: Uint8Array, from: number): void {
    const need = this.#fuLen + p.length - from;
    if (need > MAX_NAL_BYTES) {
      this.stats.dropped++;
      this.#fuState = FU_SKIP;
      return;
    }
    if (need > this.#fu.length) {
      let cap = this.#fu.length;
      while (cap < need) cap *= 2;
      const bigger = new Uint8Array(Math.min(cap, MAX_NAL_BYTES));
      bigger.set(this.#fu.subarray(0, this.#fuLen));
      this.#fu = bigger;
    }
    this.#fu.set(p.subarray(from), this.#fuLen);
    this.#fuLen = need;
  }

  #dropFragmented(): void {
    this.stats.dropped++;
    this.#fuState = FU_IDLE;
    this.#fuLen = 0;
  }

  #addNal(nal: Uint8Array): void {
    if (this.#auOverflow) return;
    if (this.#auBytes + nal.length > MAX_ACCESS_UNIT_BYTES) {
      this.stats.dropped++;
      this.#auOverflow = true;
      this.#nals = [];
      this.#auBytes = 0;
      this.#auIdr = false;
      return;
    }
    this.#nals.push(nal);
    this.#auBytes += nal.length;
    if ((nal[0]! & 0x1f) === TYPE_IDR) this.#auIdr = true;
  }

  #malformed(why: string): void {
    this.stats.malformed++;
    this.lastError = why;
  }

  /** Ends the current access unit: out gets it if it holds any NAL unit. */
  #finish(out: DepacketizedFrame[]): void {
    if (this.#fuState === FU_OPEN) this.#dropFragmented();
    // Skipping a headless FU ends with its access unit too.
    this.#fuState = FU_IDLE;
    if (this.#nals.length > 0 && !this.#auOverflow) {
      out.push({ rtpTs: this.#auTs, data: NO_DATA, nals: this.#nals, keyframe: this.#auIdr });
      this.#nals = [];
    }
    this.#nals.length = 0;
    this.#auBytes = 0;
    this.#auIdr = false;
    this.#auStarted = false;
    this.#auOverflow = false;
  }
}
