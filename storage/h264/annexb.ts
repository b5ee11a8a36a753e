/**
 * Raw H.264 (Annex B byte stream) reader. Streams the file in fixed blocks with
 * bounded memory, splits it into NAL units and access units (H.264 7.4.1.2.3-4),
 * and stamps 90 kHz timestamps: dts from the frame rate, pts from picture order
 * count so B-frames keep their presentation order.
 *
 * open scans the whole file once (frame count, reorder depth, parameter sets)
 * and keeps an index of its pictures (byte range, POC; ~30 bytes a frame), so
 * samples() reads each picture's bytes without parsing the stream again. Any structural problem -> CorruptMediaError (422)
 * naming the byte offset. A file cut inside slice data cannot be told from a
 * complete one without decoding: its last access unit is yielded as it is (the
 * decoder conceals the damage); a cut inside a NAL or slice header, or right after a
 * start code, is reported as truncated.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { CorruptMediaError } from '../errors.js';
import type { H264Params, MediaReader, Probe, Sample, SampleOptions } from '../types.js';
import { NalType, findStartCode, forbiddenBit, isPrimaryVcl, isSliceWithHeader, nalType, trimTrailingZeros } from './nal.js';
import {
  MAX_FRAME_RATE,
  MIN_FRAME_RATE,
  parsePps,
  parseSliceHeader,
  parseSps,
  profileLevelId,
  vuiFrameRate,
  type FrameRate,
  type Pps,
  type SliceHeader,
  type Sps,
} from './sps.js';

export const H264_CLOCK_RATE = 90000;
/** Bytes read from the file at a time. */
const BLOCK_BYTES = 1 << 20;
/** Blocks for files smaller than a block: the file and one more read that finds its end. */
const MIN_BLOCK_BYTES = 64 * 1024;
/** Largest NAL unit and access unit accepted; anything bigger is not a sane stream. */
export const MAX_NAL_BYTES = 8 << 20;
export const MAX_ACCESS_UNIT_BYTES = 16 << 20;
/** Frame rate when neither the SPS VUI nor the caller gives one. */
export const DEFAULT_FRAME_RATE = 25;
/** DPB limit (A.3.1 h): no conforming stream reorders more frames than this. */
const MAX_REORDER_FRAMES = 16;
/** Sample.data of every video sample (the bytes are in `nals`). */
const NO_DATA = new Uint8Array(0);

export interface AnnexBOptions {
  /** Frame rate when the SPS has no VUI timing (1..240); default 25. */
  frameRate?: number;
}

interface NalAt {
  nal: Uint8Array;
  /** File offset of the NAL header byte. */
  offset: number;
}

function hex(buf: Uint8Array, count: number): string {
  return Array.from(buf.subarray(0, count), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Only zero bytes (leading_zero_8bits) may precede the first start code. */
function checkLeadingZeros(buf: Uint8Array, end: number, base: number): void {
  for (let i = 0; i < end; i++) {
    if (buf[i] !== 0) {
      throw new CorruptMediaError(`not an H.264 Annex B stream: no start code before byte ${base + i} (bytes there: ${hex(buf.subarray(i, end), 8)})`);
    }
  }
}

/**
 * NAL units of an Annex B file, each copied out of the block buffer (without its
 * start code and trailing zero bytes). Memory: one buffer of a block plus the
 * largest NAL unit so far, at most MAX_NAL_BYTES + BLOCK_BYTES.
 */
async function* readNalUnits(handle: FileHandle): AsyncGenerator<NalAt> {
  // A small file needs no 1 MiB blocks: memory follows the file's size.
  const { size } = await handle.stat();
  const block = Math.min(BLOCK_BYTES, Math.max(MIN_BLOCK_BYTES, size + 1));
  let buf = new Uint8Array(2 * block);
  let len = 0;
  /** File offset of buf[0]. */
  let base = 0;
  /** Index of the current NAL unit's first byte in buf, -1 before the first start code. */
  let nalStart = -1;
  let scan = 0;
  let eof = false;
  for (;;) {
    for (;;) {
      const sc = findStartCode(buf, scan, len);
      if (sc < 0) break;
      if (nalStart < 0) {
        checkLeadingZeros(buf, sc, base);
      } else {
        const end = trimTrailingZeros(buf, nalStart, sc);
        if (end === nalStart) throw new CorruptMediaError(`empty NAL unit at byte ${base + nalStart}`);
        yield { nal: buf.slice(nalStart, end), offset: base + nalStart };
      }
      nalStart = sc + 3;
      scan = nalStart;
    }
    if (nalStart >= 0 && len - nalStart > MAX_NAL_BYTES) {
      throw new CorruptMediaError(`NAL unit at byte ${base + nalStart} is larger than ${MAX_NAL_BYTES} bytes`);
    }
    if (eof) break;
    // A start code may straddle the block boundary: rescan the last two bytes.
    scan = Math.max(scan, len - 2);
    if (nalStart < 0) checkLeadingZeros(buf, scan, base);
    // Drop what is consumed, then make room for one more block.
    const keepFrom = nalStart >= 0 ? nalStart : scan;
    if (keepFrom > 0) {
      buf.copyWithin(0, keepFrom, len);
      len -= keepFrom;
      base += keepFrom;
      scan -= keepFrom;
      if (nalStart >= 0) nalStart -= keepFrom;
    }
    if (buf.length - len < block) {
      const bigger = new Uint8Array(Math.max(buf.length * 2, len + block));
      bigger.set(buf.subarray(0, len));
      buf = bigger;
    }
    let got = 0;
    while (got < block) {
      const { bytesRead } = await handle.read(buf, len + got, block - got, base + len + got);
      if (bytesRead === 0) {
        eof = true;
        break;
      }
      got += bytesRead;
    }
    len += got;
  }
  if (nalStart < 0) {
    checkLeadingZeros(buf, len, base);
    throw new CorruptMediaError('not an H.264 Annex B stream: no start code in the file');
  }
  const end = trimTrailingZeros(buf, nalStart, len);
  if (end === nalStart) throw new CorruptMediaError(`truncated: the file ends right after the start code at byte ${base + nalStart - 3}`);
  yield { nal: buf.slice(nalStart, end), offset: base + nalStart };
}

/** One primary coded picture (a frame, or a complementary field pair merged into one). */
interface AccessUnit {
  nals: Uint8Array[];
  bytes: number;
  /** File offset of the first NAL unit. */
  offset: number;
  /** File offset just past the last NAL unit (its NAL units lie back to back in between). */
  end: number;
  /** First slice header of the primary picture (of the first field of a pair). */
  slice: SliceHeader;
  /** Slice header of the second field when a field pair was merged. */
  secondField?: SliceHeader;
  sps: Sps;
  pps: Pps;
  idr: boolean;
  mmco5: boolean;
}

/** Types that, after a VCL NAL unit, begin the next access unit (7.4.1.2.3). */
function startsAccessUnit(type: number): boolean {
  return type === NalType.aud || type === NalType.sps || type === NalType.pps || type === NalType.sei || (type >= 14 && type <= 18);
}

/** Whether slice `cur` begins a new primary coded picture after slice `prev` (7.4.1.2.4). */
function firstSliceOfNewPicture(prev: SliceHeader, cur: SliceHeader, sps: Sps): boolean {
  // Slices of a redundant coded picture belong to the access unit of the primary one.
  if (cur.redundantPicCnt > 0) return false;
  if (prev.redundantPicCnt > 0) return true;
  if (cur.firstMbInSlice === 0 && cur.colourPlaneId === 0) return true;
  if (cur.frameNum !== prev.frameNum || cur.ppsId !== prev.ppsId) return true;
  if (cur.fieldPic !== prev.fieldPic || cur.bottomField !== prev.bottomField) return true;
  if (cur.nalRefIdc !== prev.nalRefIdc && (cur.nalRefIdc === 0 || prev.nalRefIdc === 0)) return true;
  if (cur.idr !== prev.idr) return true;
  if (cur.idr && prev.idr && cur.idrPicId !== prev.idrPicId) return true;
  if (sps.picOrderCntType === 0) {
    if (cur.picOrderCntLsb !== prev.picOrderCntLsb || cur.deltaPicOrderCntBottom !== prev.deltaPicOrderCntBottom) return true;
  } else if (sps.picOrderCntType === 1) {
    if (cur.deltaPicOrderCnt0 !== prev.deltaPicOrderCnt0 || cur.deltaPicOrderCnt1 !== prev.deltaPicOrderCnt1) return true;
  }
  return false;
}

interface Building {
  nals: Uint8Array[];
  bytes: number;
  offset: number;
  end: number;
  first?: SliceHeader;
  last?: SliceHeader;
  sps?: Sps;
  pps?: Pps;
  idr: boolean;
  mmco5: boolean;
}

function newBuilding(): Building {
  return { nals: [], bytes: 0, offset: -1, end: -1, idr: false, mmco5: false };
}

/**
 * Groups NAL units into access units. An access unit is handed out once the next
 * one has its first slice, so that non-VCL NAL units at the very end of the file
 * (SEI, end of stream) can still be appended to the last one.
 */
class AccessUnitSplitter {
  readonly sps: (Sps | undefined)[] = [];
  readonly pps: (Pps | undefined)[] = [];
  /** Parameter set NAL units seen before the first slice, by id (a later one replaces an earlier one). */
  readonly initialSps = new Map<number, Uint8Array>();
  readonly initialPps = new Map<number, Uint8Array>();
  firstSps?: Sps;
  firstSpsNal?: Uint8Array;
  private readonly spsNals: (Uint8Array | undefined)[] = [];
  private building = newBuilding();
  private held?: Building;
  private seenSlice = false;

  push(nal: Uint8Array, offset: number, out: AccessUnit[]): void {
    if (nal.length > MAX_NAL_BYTES) throw new CorruptMediaError(`NAL unit at byte ${offset} is larger than ${MAX_NAL_BYTES} bytes`);
    if (forbiddenBit(nal)) throw new CorruptMediaError(`NAL unit at byte ${offset} has forbidden_zero_bit set (header 0x${hex(nal, 1)})`);
    const type = nalType(nal);
    if (startsAccessUnit(type) && this.building.first) this.close();
    if (type === NalType.sps) this.addSps(nal, offset);
    else if (type === NalType.pps) this.addPps(nal, offset);
    if (isSliceWithHeader(type)) {
      const slice = this.parseSlice(nal, offset);
      const b = this.building;
      if (b.first && b.last && firstSliceOfNewPicture(b.last, slice, b.sps!)) this.close();
      this.addSlice(slice, out);
    } else if (isPrimaryVcl(type) && !this.building.first) {
      // Partition B or C without partition A: nothing to time it by.
      throw new CorruptMediaError(`slice data partition (NAL type ${type}) at byte ${offset} without its partition A`);
    }
    const b = this.building;
    if (b.offset < 0) b.offset = offset;
    b.nals.push(nal);
    b.bytes += nal.length;
    b.end = offset + nal.length;
    if (type === NalType.idrSlice) b.idr = true;
    if (b.bytes > MAX_ACCESS_UNIT_BYTES) {
      throw new CorruptMediaError(`access unit at byte ${b.offset} is larger than ${MAX_ACCESS_UNIT_BYTES} bytes`);
    }
  }

  /** End of the stream: the access units still held. */
  end(out: AccessUnit[]): void {
    const b = this.building;
    if (b.first) {
      this.close();
      this.release(out);
    } else if (this.held) {
      // Trailing non-VCL NAL units (SEI, end of stream...) stay with the last picture.
      for (const nal of b.nals) this.held.nals.push(nal);
      this.held.bytes += b.bytes;
      if (b.nals.length > 0) this.held.end = b.end;
      this.release(out);
    } else {
      throw new CorruptMediaError(this.sps.length === 0 ? 'no SPS/PPS and no slices in the stream' : 'no slices in the stream');
    }
  }

  private close(): void {
    this.held = this.building;
    this.building = newBuilding();
  }

  private release(out: AccessUnit[]): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    out.push({ nals: h.nals, bytes: h.bytes, offset: h.offset, end: h.end, slice: h.first!, sps: h.sps!, pps: h.pps!, idr: h.idr, mmco5: h.mmco5 });
  }

  private addSlice(slice: SliceHeader, out: AccessUnit[]): void {
    const b = this.building;
    if (!b.first) {
      this.release(out);
      b.first = slice;
      b.pps = this.pps[slice.ppsId];
      b.sps = this.sps[slice.spsId];
    }
    if (slice.mmco5 && slice.redundantPicCnt === 0) b.mmco5 = true;
    b.last = slice;
  }

  private parseSlice(nal: Uint8Array, offset: number): SliceHeader {
    if (!this.seenSlice && (this.initialSps.size === 0 || this.initialPps.size === 0)) {
      throw new CorruptMediaError(`no SPS/PPS before first slice (NAL type ${nalType(nal)} at byte ${offset})`);
    }
    let slice: SliceHeader;
    try {
      slice = parseSliceHeader(nal, this, { throughRefPicMarking: true });
    } catch (err) {
      throw new CorruptMediaError(`bad slice header in NAL unit at byte ${offset} (${nal.length} bytes, truncated or corrupt): ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!this.seenSlice) {
      this.seenSlice = true;
      this.firstSps = this.sps[slice.spsId];
      this.firstSpsNal = this.spsNals[slice.spsId];
    }
    return slice;
  }

  private addSps(nal: Uint8Array, offset: number): void {
    let sps: Sps;
    try {
      sps = parseSps(nal);
      // Timing garbage in the VUI means the SPS itself is corrupt.
      vuiFrameRate(sps);
    } catch (err) {
      throw new CorruptMediaError(`bad SPS at byte ${offset}: ${(err as Error).message}`, { cause: err });
    }
    this.sps[sps.spsId] = sps;
    this.spsNals[sps.spsId] = nal;
    if (!this.seenSlice) this.initialSps.set(sps.spsId, nal);
  }

  private addPps(nal: Uint8Array, offset: number): void {
    let pps: Pps;
    try {
      pps = parsePps(nal);
      const sps = this.sps[pps.spsId];
      // With the SPS at hand, check the High-profile tail too.
      if (sps) parsePps(nal, sps.chromaFormatIdc);
    } catch (err) {
      throw new CorruptMediaError(`bad PPS at byte ${offset}: ${(err as Error).message}`, { cause: err });
    }
    this.pps[pps.ppsId] = pps;
    if (!this.seenSlice) this.initialPps.set(pps.ppsId, nal);
  }
}

/**
 * Merges the two fields of a complementary field pair into one access unit, as
 * containers store them: consecutive fields of opposite parity with the same
 * frame_num, the second not an IDR unless the first is.
 */
class FieldPairer {
  private pending?: AccessUnit;

  push(au: AccessUnit, out: AccessUnit[]): void {
    const p = this.pending;
    if (p) {
      this.pending = undefined;
      if (au.slice.fieldPic && au.slice.bottomField !== p.slice.bottomField && au.slice.frameNum === p.slice.frameNum && (!au.idr || p.idr) && !au.mmco5) {
        for (const nal of au.nals) p.nals.push(nal);
        p.bytes += au.bytes;
        p.end = au.end;
        p.secondField = au.slice;
        if (p.bytes > MAX_ACCESS_UNIT_BYTES) {
          throw new CorruptMediaError(`field pair at byte ${p.offset} is larger than ${MAX_ACCESS_UNIT_BYTES} bytes`);
        }
        out.push(p);
        return;
      }
      out.push(p);
    }
    if (au.slice.fieldPic) this.pending = au;
    else out.push(au);
  }

  end(out: AccessUnit[]): void {
    if (this.pending) out.push(this.pending);
    this.pending = undefined;
  }
}

/**
 * Picture order count (8.2.1) of each picture in decode order, and whether it starts
 * a new POC period: an IDR picture, or one with mmco 5 (C.4.4 outputs every earlier
 * picture before it, and its POC restarts from 0). POC type 0 follows 8.2.1.1;
 * types 1 and 2 use decode order, which is exact for type 2 and a fallback
 * (pts = dts) for type 1.
 */
class PocCounter {
  private prevMsb = 0;
  private prevLsb = 0;
  private decodeIndexInPeriod = 0;

  /** Returns the POC of the picture; `periodStart` tells whether it starts a new POC period. */
  next(au: AccessUnit): { poc: number; periodStart: boolean } {
    const periodStart = au.idr || au.mmco5;
    if (periodStart) this.decodeIndexInPeriod = 0;
    if (au.sps.picOrderCntType !== 0) return { poc: this.decodeIndexInPeriod++, periodStart };
    let poc = this.field(au.slice, au.sps);
    if (au.secondField) poc = Math.min(poc, this.field(au.secondField, au.sps));
    // mmco 5 resets the picture's POC to its distance from the smaller field (8.2.1): 0 for ordering.
    if (au.mmco5) poc = 0;
    return { poc, periodStart };
  }

  /** POC of one frame or field (type 0): min(top, bottom) for a frame. */
  private field(s: SliceHeader, sps: Sps): number {
    const maxLsb = 2 ** sps.log2MaxPicOrderCntLsb;
    if (s.idr) {
      this.prevMsb = 0;
      this.prevLsb = 0;
    }
    const lsb = s.picOrderCntLsb;
    let msb: number;
    if (lsb < this.prevLsb && this.prevLsb - lsb >= maxLsb / 2) msb = this.prevMsb + maxLsb;
    else if (lsb > this.prevLsb && lsb - this.prevLsb > maxLsb / 2) msb = this.prevMsb - maxLsb;
    else msb = this.prevMsb;
    const top = msb + lsb;
    const poc = s.fieldPic ? top : Math.min(top, top + s.deltaPicOrderCntBottom);
    if (s.nalRefIdc !== 0) {
      if (s.mmco5) {
        // The next picture counts from this one after its reset: prevLsb = its top POC
        // minus the smaller of its two (0 for a field).
        this.prevMsb = 0;
        this.prevLsb = s.fieldPic ? 0 : top - poc;
      } else {
        this.prevMsb = msb;
        this.prevLsb = lsb;
      }
    }
    return poc;
  }
}

/**
 * How many frames a picture may wait to be presented after it is decoded: for each
 * picture, the number of earlier pictures of its period with a greater POC; the
 * maximum over the stream. Keeps only the 17 largest POCs of the period, since a
 * count above 16 is not a conforming stream.
 */
class ReorderDepth {
  max = 0;
  private largest: number[] = [];

  push(poc: number, periodStart: boolean, offset: number): void {
    if (periodStart) this.largest.length = 0;
    const l = this.largest;
    if (l.length > MAX_REORDER_FRAMES && poc < l[0]!) {
      throw new CorruptMediaError(`picture at byte ${offset} is presented after more than ${MAX_REORDER_FRAMES} later-decoded pictures (POC ${poc})`);
    }
    let at = 0;
    while (at < l.length && l[at]! <= poc) at++;
    if (l.length - at > this.max) this.max = l.length - at;
    l.splice(at, 0, poc);
    if (l.length > MAX_REORDER_FRAMES + 1) l.shift();
  }
}

interface Ordered {
  au: { nals: Uint8Array[]; idr: boolean };
  decodeIndex: number;
  poc: number;
  slot: number;
}

/**
 * Presentation slots by the DPB bumping process (C.4.5.3) with `reorder` frames of
 * delay: a new period outputs everything before it; otherwise the smallest POC is
 * output whenever more than `reorder` pictures wait. With `reorder` at least the
 * stream's ReorderDepth this is exactly POC order. Pictures come out in decode order
 * once their slot is known.
 */
class PresentationOrder {
  private readonly reorder: number;
  private waiting: Ordered[] = [];
  private decodeQueue: Ordered[] = [];
  private nextSlot = 0;
  private decodeIndex = 0;

  constructor(reorder: number) {
    this.reorder = reorder;
  }

  push(au: Ordered['au'], poc: number, periodStart: boolean, out: Ordered[]): void {
    if (periodStart) this.bump(0);
    const o: Ordered = { au, decodeIndex: this.decodeIndex++, poc, slot: -1 };
    let at = this.waiting.length;
    while (at > 0 && this.waiting[at - 1]!.poc > poc) at--;
    this.waiting.splice(at, 0, o);
    this.decodeQueue.push(o);
    this.bump(this.reorder);
    this.drain(out);
  }

  end(out: Ordered[]): void {
    this.bump(0);
    this.drain(out);
  }

  private bump(keep: number): void {
    while (this.waiting.length > keep) this.waiting.shift()!.slot = this.nextSlot++;
  }

  private drain(out: Ordered[]): void {
    while (this.decodeQueue.length > 0 && this.decodeQueue[0]!.slot >= 0) out.push(this.decodeQueue.shift()!);
  }
}

interface Picture {
  au: AccessUnit;
  poc: number;
  periodStart: boolean;
}

/** Access units (field pairs merged) with POC, in decode order. */
async function* readPictures(handle: FileHandle, splitter: AccessUnitSplitter): AsyncGenerator<Picture> {
  const pairer = new FieldPairer();
  const poc = new PocCounter();
  const units: AccessUnit[] = [];
  const pictures: AccessUnit[] = [];
  for await (const { nal, offset } of readNalUnits(handle)) {
    splitter.push(nal, offset, units);
    if (units.length === 0) continue;
    for (const au of units) pairer.push(au, pictures);
    units.length = 0;
    for (const au of pictures) yield { au, ...poc.next(au) };
    pictures.length = 0;
  }
  splitter.end(units);
  for (const au of units) pairer.push(au, pictures);
  pairer.end(pictures);
  for (const au of pictures) yield { au, ...poc.next(au) };
}

/**
 * The pictures of a stream in decode order, as open's scan found them: byte range
 * (first NAL header to the end of the last NAL), POC, period start, IDR.
 */
class PictureIndex {
  count = 0;
  start = new Float64Array(256);
  end = new Float64Array(256);
  poc = new Float64Array(256);
  periodStart = new Uint8Array(256);
  idr = new Uint8Array(256);

  push(p: Picture): void {
    if (this.count === this.start.length) this.grow();
    const i = this.count++;
    this.start[i] = p.au.offset;
    this.end[i] = p.au.end;
    this.poc[i] = p.poc;
    this.periodStart[i] = p.periodStart ? 1 : 0;
    this.idr[i] = p.au.idr ? 1 : 0;
  }

  private grow(): void {
    const n = this.start.length * 2;
    const start = new Float64Array(n);
    start.set(this.start);
    this.start = start;
    const end = new Float64Array(n);
    end.set(this.end);
    this.end = end;
    const poc = new Float64Array(n);
    poc.set(this.poc);
    this.poc = poc;
    const periodStart = new Uint8Array(n);
    periodStart.set(this.periodStart);
    this.periodStart = periodStart;
    const idr = new Uint8Array(n);
    idr.set(this.idr);
    this.idr = idr;
  }
}

/** Reads into `buf` from `position` until it is full or the file ends; returns the bytes read. */
async function readFully(handle: FileHandle, buf: Uint8Array, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await handle.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * The NAL units of one picture's bytes `buf[from, to)` (from its first NAL header
 * to the end of its last NAL), as views: split at start codes, trailing zero bytes
 * dropped, as readNalUnits split them when the file was scanned.
 */
function splitNals(buf: Uint8Array, from: number, to: number): Uint8Array[] {
  const nals: Uint8Array[] = [];
  let nalStart = from;
  for (;;) {
    const sc = findStartCode(buf, nalStart, to);
    if (sc < 0) break;
    nals.push(buf.subarray(nalStart, trimTrailingZeros(buf, nalStart, sc)));
    nalStart = sc + 3;
  }
  nals.push(buf.subarray(nalStart, to));
  return nals;
}

/** Frame rate as a fraction from a caller's number: exact for integers and the NTSC family (N*1000/1001). */
function frameRateFromNumber(fps: number): FrameRate {
  if (!Number.isFinite(fps) || fps < MIN_FRAME_RATE || fps > MAX_FRAME_RATE) {
    throw new RangeError(`frameRate must be between ${MIN_FRAME_RATE} and ${MAX_FRAME_RATE} fps, got ${fps}`);
  }
  if (Number.isInteger(fps)) return { num: fps, den: 1 };
  const ntsc = Math.round((fps * 1001) / 1000);
  if (Math.abs((ntsc * 1000) / 1001 - fps) < 0.0005) return { num: ntsc * 1000, den: 1001 };
  return { num: Math.round(fps * 1000), den: 1000 };
}

/**
 * 90 kHz time of frame slot `n` at `rate`: n * 90000 * den / num rounded to the
 * nearest tick, computed exactly so that rounding never accumulates.
 */
function ticks(n: number, rate: FrameRate): number {
  const num = BigInt(n) * BigInt(H264_CLOCK_RATE) * BigInt(rate.den);
  const den = BigInt(rate.num);
  return Number((2n * num + den) / (2n * den));
}

class AnnexBReader implements MediaReader {
  readonly probe: Probe;
  private readonly path: string;
  private readonly rate: FrameRate;
  private readonly reorder: number;
  private readonly index: PictureIndex;
  private closed = false;

  constructor(path: string, probe: Probe, rate: FrameRate, reorder: number, index: PictureIndex) {
    this.path = path;
    this.probe = probe;
    this.rate = rate;
    this.reorder = reorder;
    this.index = index;
  }

  async *samples(opts?: SampleOptions): AsyncIterable<Sample> {
    if (this.closed) throw new Error('H.264 reader is closed');
    if (opts?.tracks && !opts.tracks.includes(0)) return;
    const handle = await open(this.path, 'r');
    try {
      const order = new PresentationOrder(this.reorder);
      const ready: Ordered[] = [];
      const index = this.index;
      // Pictures lie back to back in decode order: read them a block at a time. A
      // window is never reused (samples keep views of it).
      let window = NO_DATA;
      let windowStart = 0;
      for (let i = 0; i < index.count; i++) {
        const start = index.start[i]!;
        const end = index.end[i]!;
        if (start < windowStart || end > windowStart + window.length) {
          window = new Uint8Array(Math.max(end - start, Math.min(BLOCK_BYTES, this.probe.bytes - start)));
          windowStart = start;
          const got = await readFully(handle, window, start);
          if (got < end - start) {
            throw new CorruptMediaError(`truncated: picture ${i + 1} lies past byte ${start + got}, the file changed since it was opened`);
          }
        }
        const au = { nals: splitNals(window, start - windowStart, end - windowStart), idr: index.idr[i] === 1 };
        order.push(au, index.poc[i]!, index.periodStart[i] === 1, ready);
        for (const o of ready) {
          if (this.closed) return;
          yield this.sample(o);
        }
        ready.length = 0;
      }
      order.end(ready);
      for (const o of ready) {
        if (this.closed) return;
        yield this.sample(o);
      }
    } finally {
      await handle.close();
    }
  }

  private sample(o: Ordered): Sample {
    const dts = ticks(o.decodeIndex, this.rate);
    return {
      track: 0,
      data: NO_DATA,
      nals: o.au.nals,
      pts: ticks(o.slot + this.reorder, this.rate),
      dts,
      duration: ticks(o.decodeIndex + 1, this.rate) - dts,
      keyframe: o.au.idr,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/**
 * Opens a raw H.264 file (Annex B byte stream). Scans it once to count frames, find
 * the parameter sets and measure the reordering depth.
 *
 * Frame rate: SPS VUI timing (time_scale / (2 * num_units_in_tick)), else
 * `opts.frameRate`, else 25. Reorder delay (frames between dts and pts of the
 * first frame): the larger of the SPS's max_num_reorder_frames (VUI bitstream
 * restriction, when present) and the depth the scan measured, so every pts >= dts
 * and presentation order is POC order even when the VUI understates it.
 */
export async function openAnnexB(path: string, opts?: AnnexBOptions): Promise<MediaReader> {
  const fallbackRate = opts?.frameRate === undefined ? { num: DEFAULT_FRAME_RATE, den: 1 } : frameRateFromNumber(opts.frameRate);
  const handle = await open(path, 'r');
  let frames = 0;
  const depth = new ReorderDepth();
  const splitter = new AccessUnitSplitter();
  const index = new PictureIndex();
  let bytes: number;
  try {
    bytes = (await handle.stat()).size;
    for await (const picture of readPictures(handle, splitter)) {
      depth.push(picture.poc, picture.periodStart, picture.au.offset);
      index.push(picture);
      frames++;
    }
  } finally {
    await handle.close();
  }
  const sps = splitter.firstSps!;
  const rate = vuiFrameRate(sps) ?? fallbackRate;
  const reorder = Math.max(sps.vui?.bitstreamRestriction?.maxNumReorderFrames ?? 0, depth.max);
  const params: H264Params = {
    sps: [...splitter.initialSps.values()],
    pps: [...splitter.initialPps.values()],
    profileLevelId: profileLevelId(splitter.firstSpsNal!),
    width: sps.width,
    height: sps.height,
  };
  const vuiRate = vuiFrameRate(sps);
  if (vuiRate) params.frameRate = vuiRate.num / vuiRate.den;
  const durationMs = (frames * rate.den * 1000) / rate.num;
  const probe: Probe = {
    format: 'h264',
    bytes,
    durationMs,
    tracks: [{ index: 0, kind: 'video', codec: 'h264', supported: true, clockRate: H264_CLOCK_RATE, durationMs, h264: params }],
  };
  return new AnnexBReader(path, probe, rate, reorder, index);
}
