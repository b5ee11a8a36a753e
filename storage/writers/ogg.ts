/**
 * Ogg Opus writer for recordings (RFC 3533 framing, RFC 7845 mapping): OpusHead
 * and OpusTags on pages of their own, then the received Opus packets on pages of
 * about 4 KB, each page closed at the latest by flush(). Granule positions are
 * built from the RTP timestamps: a page's granule is the end of its last completed
 * packet, counted from the first packet of the recording. Packets lost upstream
 * are replaced by TOC-only packets (one zero-length frame, RFC 6716 3.2.1: the
 * decoder conceals it) so every granule stays the sum of the packet durations
 * before it, as strict readers (storage/ogg.ts) check.
 */
import { opusFrameSamples, opusPacketError } from '../opus/toc.js';
import { MAX_OPUS_PACKET_BYTES, OGG_HEADER_BYTES, OPUS_CLOCK_RATE, oggCrc32 } from '../ogg.js';
import type { ContainerWriter, FilePatch, RecordedFrame } from './types.js';

const FLAG_CONTINUED = 0x01;
const FLAG_BOS = 0x02;
const FLAG_EOS = 0x04;
/** Granule position of a page on which no packet completes (RFC 3533 6). */
const NO_GRANULE = -1;
const MAX_SEGMENTS = 255;
const MAX_BODY_BYTES = MAX_SEGMENTS * 255;
/** A page is closed once its body reaches this size (a few hundred ms of audio). */
export const OGG_PAGE_TARGET_BYTES = 4096;
/** Gaps longer than this are not filled (see OggOpusWriterOptions.maxGapMs). */
export const DEFAULT_MAX_GAP_MS = 30000;
/** CELT frame sizes, longest first, to fill what the lost packets' frame size cannot. */
const CELT_FILL_SAMPLES = [960, 480, 240, 120];

export interface OggOpusWriterOptions {
  /** Output channels of the stream (RTP Opus is mono or stereo, mapping family 0). */
  channels: 1 | 2;
  /** Ogg logical stream serial number; random by default. */
  serial?: number;
  /**
   * The sender's input sample rate, informational only (RFC 7845 5.1): the SDP's
   * sprop-maxcapturerate when known. Default 48000.
   */
  inputSampleRate?: number;
  /**
   * A timestamp jump larger than this is a discontinuity (sender restart, a stream
   * paused for long), not loss: it is not filled, so a bogus jump cannot make the
   * writer emit hours of filler at once. Default 30 s.
   */
  maxGapMs?: number;
}

export interface OggOpusWriterStats {
  /** Opus packets written (fillers not counted). */
  packets: number;
  /** Packets dropped: malformed (RFC 6716 3.4), oversized, or with a timestamp going back. */
  dropped: number;
  /** TOC-only packets inserted at timestamp gaps. */
  filled: number;
  /** Gaps longer than maxGapMs, left unfilled. */
  discontinuities: number;
  /** Gaps that were not a multiple of 2.5 ms: the remainder (< 120 samples) was skipped. */
  misaligned: number;
}

/** The OpusHead packet (RFC 7845 5.1) for mapping family 0. */
export function opusHeadPacket(channels: number, preSkip: number, inputSampleRate: number): Uint8Array {
  const head = new Uint8Array(19);
  const view = new DataView(head.buffer);
  writeAscii(head, 0, 'OpusHead');
  head[8] = 1; // version
  head[9] = channels;
  view.setUint16(10, preSkip, true);
  view.setUint32(12, inputSampleRate, true);
  view.setInt16(16, 0, true); // output gain
  head[18] = 0; // channel mapping family 0: mono or stereo, one stream
  return head;
}

/** The OpusTags packet (RFC 7845 5.2) with a vendor string and no user comments. */
export function opusTagsPacket(vendor: string): Uint8Array {
  const vendorBytes = new TextEncoder().encode(vendor);
  const tags = new Uint8Array(8 + 4 + vendorBytes.length + 4);
  const view = new DataView(tags.buffer);
  writeAscii(tags, 0, 'OpusTags');
  view.setUint32(8, vendorBytes.length, true);
  tags.set(vendorBytes, 12);
  view.setUint32(12 + vendorBytes.length, 0, true); // user comment list length
  return tags;
}

function writeAscii(out: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
}

/** The CELT-only config of the closest bandwidth to a TOC's (CELT has no medium band). */
function celtConfigBase(toc: number): number {
  const config = toc >> 3;
  if (config >= 16) return config & ~3;
  if (config < 4) return 16; // SILK NB -> CELT NB
  if (config < 12) return 20; // SILK MB, WB -> CELT WB
  return config < 14 ? 24 : 28; // hybrid SWB, FB
}

export class OggOpusWriter implements ContainerWriter {
  readonly ext = 'opus';
  readonly contentType = 'audio/ogg';
  readonly serial: number;
  readonly stats: OggOpusWriterStats = { packets: 0, dropped: 0, filled: 0, discontinuities: 0, misaligned: 0 };

  private readonly channels: number;
  private readonly inputSampleRate: number;
  private readonly maxGapSamples: number;
  private state: 'new' | 'writing' | 'ended' = 'new';
  private sequence = 0;
  /** Extended RTP timestamp the next packet should carry; NaN before the first packet. */
  private nextTs = Number.NaN;
  /** 48 kHz samples of all packets written (fillers included): the granule after the last one. */
  private samples = 0;
  /** TOC of the last packet written: fillers continue its mode and bandwidth. */
  private lastToc = 0;

  // The open page: lacing values and body, copied in as packets arrive.
  private readonly lacing = new Uint8Array(MAX_SEGMENTS);
  private readonly body = new Uint8Array(MAX_BODY_BYTES);
  private segments = 0;
  private bodyLength = 0;
  private pageGranule = NO_GRANULE;
  private pageContinued = false;
  private readonly filler = new Uint8Array(1);

  constructor(opts: OggOpusWriterOptions) {
    if (opts.channels !== 1 && opts.channels !== 2) {
      throw new RangeError(`OggOpusWriter: channels must be 1 or 2, got ${String(opts.channels)}`);
    }
    const serial = opts.serial ?? Math.floor(Math.random() * 0x100000000);
    if (!Number.isInteger(serial) || serial < 0 || serial > 0xffffffff) {
      throw new RangeError(`OggOpusWriter: serial ${serial} is not a 32-bit unsigned integer`);
    }
    const inputSampleRate = opts.inputSampleRate ?? OPUS_CLOCK_RATE;
    if (!Number.isInteger(inputSampleRate) || inputSampleRate < 0 || inputSampleRate > 0xffffffff) {
      throw new RangeError(`OggOpusWriter: inputSampleRate ${inputSampleRate} is not a 32-bit unsigned integer`);
    }
    const maxGapMs = opts.maxGapMs ?? DEFAULT_MAX_GAP_MS;
    if (!(maxGapMs >= 0)) throw new RangeError(`OggOpusWriter: maxGapMs ${maxGapMs} is negative`);
    this.channels = opts.channels;
    this.serial = serial;
    this.inputSampleRate = inputSampleRate;
    this.maxGapSamples = Math.round((maxGapMs * OPUS_CLOCK_RATE) / 1000);
  }

  /** Granule position after the last packet written: the recorded duration in 48 kHz samples. */
  get granule(): number {
    return this.samples;
  }

  /**
   * The two header pages. Pre-skip is 0: RTP (RFC 7587) does not carry the sender's
   * encoder delay, and a recording joins the stream wherever it is, so the value
   * would be a guess. With 0, sample 0 of the file is the RTP timestamp of the first
   * packet, which keeps the track aligned with the others recorded from the same
   * session; the price is that the first few milliseconds may hold the decoder's
   * convergence, which a pre-skip would have hidden (RFC 7845 4.2).
   */
  begin(): Uint8Array[] {
    if (this.state !== 'new') throw new Error('OggOpusWriter: begin() was already called');
    this.state = 'writing';
    const out: Uint8Array[] = [];
    // RFC 7845 3: each header on its own page(s), granule position 0.
    this.addPacket(opusHeadPacket(this.channels, 0, this.inputSampleRate), 0, out);
    this.closePage(out, FLAG_BOS);
    this.addPacket(opusTagsPacket('offcast'), 0, out);
    this.closePage(out, 0);
    return out;
  }

  frame(f: RecordedFrame): Uint8Array[] {
    if (this.state !== 'writing') throw new Error(`OggOpusWriter: frame() ${this.state === 'new' ? 'before begin()' : 'after end()'}`);
    const packet = f.data;
    if (
      !Number.isSafeInteger(f.ts) ||
      packet.length > MAX_OPUS_PACKET_BYTES ||
      opusPacketError(packet) !== null ||
      f.ts < this.nextTs // a duplicate, reordered or overlapping packet
    ) {
      this.stats.dropped++;
      return [];
    }
    const out: Uint8Array[] = [];
    if (f.ts > this.nextTs) {
      const gap = f.ts - this.nextTs;
      if (gap > this.maxGapSamples) this.stats.discontinuities++;
      else this.fillGap(gap, out);
    }
    const duration = packetSamples(packet);
    this.samples += duration;
    this.addPacket(packet, this.samples, out);
    this.lastToc = packet[0]!;
    this.nextTs = f.ts + duration;
    this.stats.packets++;
    return out;
  }

  /** Closes the open page, so everything received so far can reach the disk. */
  flush(): Uint8Array[] {
    if (this.state !== 'writing') return [];
    const out: Uint8Array[] = [];
    if (this.segments > 0) this.closePage(out, 0);
    return out;
  }

  /**
   * Closes the stream: the open page gets the end-of-stream flag; if none is open
   * (end right after a flush), an empty end-of-stream page follows. An empty page
   * is allowed (RFC 3533 6: 0 to 255 segments) and, since no packet completes on
   * it, carries granule position -1; readers take the duration from the last page
   * that has one.
   */
  end(): { tail: Uint8Array[]; patches: FilePatch[] } {
    if (this.state === 'new') throw new Error('OggOpusWriter: end() before begin()');
    if (this.state === 'ended') return { tail: [], patches: [] };
    this.state = 'ended';
    const tail: Uint8Array[] = [];
    this.closePage(tail, FLAG_EOS);
    return { tail, patches: [] };
  }

  /**
   * Inserts TOC-only packets for `gap` missing samples: frames of the last packet's
   * size (same mode and bandwidth, so concealment continues the signal), then CELT
   * frames of the same bandwidth for the rest. A remainder below 2.5 ms cannot be
   * expressed and is skipped (the timeline shifts by less than 2.5 ms).
   */
  private fillGap(gap: number, out: Uint8Array[]): void {
    let left = gap;
    let toc = this.lastToc & 0xfc; // code 0: one frame, here of 0 bytes
    let size = opusFrameSamples(toc);
    const celtBase = celtConfigBase(this.lastToc);
    const stereo = this.lastToc & 0x04;
    let celtIndex = 0;
    while (left >= CELT_FILL_SAMPLES[CELT_FILL_SAMPLES.length - 1]!) {
      if (left < size) {
        while (CELT_FILL_SAMPLES[celtIndex]! > left) celtIndex++;
        size = CELT_FILL_SAMPLES[celtIndex]!;
        // CELT configs list 2.5, 5, 10, 20 ms in that order.
        toc = ((celtBase + 3 - celtIndex) << 3) | stereo;
      }
      this.filler[0] = toc;
      this.samples += size;
      this.addPacket(this.filler, this.samples, out);
      this.stats.filled++;
      left -= size;
    }
    if (left > 0) this.stats.misaligned++;
  }

  /** Laces one packet into the open page, closing pages as they fill. */
  private addPacket(packet: Uint8Array, granuleAfter: number, out: Uint8Array[]): void {
    let at = 0;
    for (;;) {
      if (this.segments === MAX_SEGMENTS) {
        // The packet goes on: the next page continues it.
        this.closePage(out, 0);
        this.pageContinued = true;
      }
      const lace = Math.min(255, packet.length - at);
      this.lacing[this.segments++] = lace;
      this.body.set(packet.subarray(at, at + lace), this.bodyLength);
      this.bodyLength += lace;
      at += lace;
      // A lacing value below 255 ends the packet (a multiple of 255 ends with a 0).
      if (lace < 255) break;
    }
    this.pageGranule = granuleAfter;
    if (this.bodyLength >= OGG_PAGE_TARGET_BYTES || this.segments === MAX_SEGMENTS) this.closePage(out, 0);
  }

  private closePage(out: Uint8Array[], flags: number): void {
    const headerLength = OGG_HEADER_BYTES + this.segments;
    const page = new Uint8Array(headerLength + this.bodyLength);
    const view = new DataView(page.buffer);
    writeAscii(page, 0, 'OggS');
    page[4] = 0; // version
    page[5] = flags | (this.pageContinued ? FLAG_CONTINUED : 0);
    writeGranule(view, 6, this.pageGranule);
    view.setUint32(14, this.serial, true);
    view.setUint32(18, this.sequence, true);
    page[26] = this.segments;
    page.set(this.lacing.subarray(0, this.segments), OGG_HEADER_BYTES);
    page.set(this.body.subarray(0, this.bodyLength), headerLength);
    view.setUint32(22, oggCrc32(page, 0, page.length), true);
    out.push(page);
    this.sequence = (this.sequence + 1) >>> 0;
    this.segments = 0;
    this.bodyLength = 0;
    this.pageGranule = NO_GRANULE;
    this.pageContinued = false;
  }
}

/** Duration of a packet already checked by opusPacketError. */
function packetSamples(packet: Uint8Array): number {
  const code = packet[0]! & 3;
  const frames = code === 0 ? 1 : code === 3 ? packet[1]! & 0x3f : 2;
  return frames * opusFrameSamples(packet[0]!);
}

/** Writes a granule position (-1, or a non-negative safe integer) as a little-endian int64. */
function writeGranule(view: DataView, at: number, granule: number): void {
  if (granule === NO_GRANULE) {
    view.setUint32(at, 0xffffffff, true);
    view.setUint32(at + 4, 0xffffffff, true);
    return;
  }
  view.setUint32(at, granule % 0x100000000, true);
  view.setUint32(at + 4, Math.floor(granule / 0x100000000), true);
}
