/**
 * Ogg Opus reader (RFC 3533 framing, RFC 7845 mapping). Reads the first Opus
 * logical stream of a file page by page; other streams are skipped. The duration
 * comes from the last page's granule position, found by scanning the file's tail.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { closedError, CorruptMediaError, UnsupportedMediaError } from './errors.js';
import { readAt, SequentialFileReader } from './io.js';
import type { MediaReader, OpusParams, Probe, Sample, SampleOptions } from './types.js';
import { opusPacketDuration } from './opus/toc.js';

export const OGG_HEADER_BYTES = 27;
/** Header, 255 lacing values of 255 bytes each. */
export const OGG_MAX_PAGE_BYTES = OGG_HEADER_BYTES + 255 + 255 * 255;
/** Opus always runs at 48 kHz (RFC 7845 4). */
export const OPUS_CLOCK_RATE = 48000;
/** Largest Opus packet accepted; a single-stream packet is at most 61,440 bytes, multistream ones a few times that. */
export const MAX_OPUS_PACKET_BYTES = 1024 * 1024;

const FLAG_CONTINUED = 0x01;
const FLAG_BOS = 0x02;
const FLAG_EOS = 0x04;
/** Granule position of a page on which no packet completes. */
const NO_GRANULE = -1n;

// ---------------------------------------------------------------------------
// Pages (RFC 3533 6)

export interface OggPage {
  /** Index of the page's first byte in the buffer it was parsed from. */
  offset: number;
  /** File position of the page (for messages); equals `offset` unless the caller said otherwise. */
  position: number;
  headerType: number;
  /** The first packet on the page continues one from the previous page. */
  continued: boolean;
  bos: boolean;
  eos: boolean;
  /** Signed 64-bit granule position; -1 when no packet completes on the page. */
  granule: bigint;
  serial: number;
  sequence: number;
  checksum: number;
  segmentCount: number;
  /** Index of the lacing values in the buffer. */
  segmentTableOffset: number;
  bodyOffset: number;
  bodyLength: number;
  /** Bytes of header, lacing values and body. */
  length: number;
}

const CRC_TABLE = buildCrcTable();

function buildCrcTable(): Uint32Array {
  // CRC-32 with polynomial 0x04c11db7, MSB first, no reflection (RFC 3533 6).
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let bit = 0; bit < 8; bit++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    table[i] = r >>> 0;
  }
  return table;
}

/**
 * The Ogg CRC-32 of buf[start, end), reading the four bytes at `zeroAt` (the page's
 * checksum field) as zeros.
 */
export function oggCrc32(buf: Uint8Array, start: number, end: number, zeroAt = -1): number {
  let crc = 0;
  const zeroEnd = zeroAt < 0 ? zeroAt : zeroAt + 4;
  for (let i = start; i < end; i++) {
    const byte = i >= zeroAt && i < zeroEnd ? 0 : buf[i]!;
    crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
  }
  return crc;
}

function hasCapturePattern(buf: Uint8Array, at: number): boolean {
  return buf[at] === 0x4f && buf[at + 1] === 0x67 && buf[at + 2] === 0x67 && buf[at + 3] === 0x53; // "OggS"
}

/**
 * Parses and checks (CRC included) the page at `buf[offset]`; copies nothing.
 * `position` is the file position reported in messages. Throws TypeError when there
 * is no capture pattern or the version is not 0, RangeError when the page is
 * truncated, has reserved flags or a bad CRC.
 */
export function parseOggPage(buf: Uint8Array, offset: number, position = offset): OggPage {
  const left = buf.length - offset;
  if (left < 4 || !hasCapturePattern(buf, offset)) {
    if (left >= 0 && left < 4 && isCapturePrefix(buf, offset)) {
      throw new RangeError(`truncated page at offset ${position}: ${left} bytes left, a page header needs ${OGG_HEADER_BYTES}`);
    }
    throw new TypeError(`no Ogg capture pattern at offset ${position}`);
  }
  if (left < OGG_HEADER_BYTES) {
    throw new RangeError(`truncated page at offset ${position}: ${left} bytes left, a page header needs ${OGG_HEADER_BYTES}`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset + offset, left);
  const version = view.getUint8(4);
  if (version !== 0) throw new TypeError(`Ogg page at offset ${position} has version ${version} (need 0)`);
  const headerType = view.getUint8(5);
  if (headerType & ~(FLAG_CONTINUED | FLAG_BOS | FLAG_EOS)) {
    throw new RangeError(`page at offset ${position} has reserved header flags 0x${headerType.toString(16)}`);
  }
  const segmentCount = view.getUint8(26);
  const headerLength = OGG_HEADER_BYTES + segmentCount;
  if (left < headerLength) {
    throw new RangeError(`truncated page at offset ${position}: ${left} bytes left, its header needs ${headerLength}`);
  }
  let bodyLength = 0;
  for (let i = 0; i < segmentCount; i++) bodyLength += buf[offset + OGG_HEADER_BYTES + i]!;
  const length = headerLength + bodyLength;
  if (left < length) {
    throw new RangeError(`truncated page at offset ${position}: page declares ${length} bytes, ${left} left`);
  }
  const checksum = view.getUint32(22, true);
  const computed = oggCrc32(buf, offset, offset + length, offset + 22);
  if (checksum !== computed) {
    throw new RangeError(
      `bad CRC in page at offset ${position}: stored 0x${checksum.toString(16).padStart(8, '0')}, ` + `computed 0x${computed.toString(16).padStart(8, '0')}`,
    );
  }
  return {
    offset,
    position,
    headerType,
    continued: (headerType & FLAG_CONTINUED) !== 0,
    bos: (headerType & FLAG_BOS) !== 0,
    eos: (headerType & FLAG_EOS) !== 0,
    granule: view.getBigInt64(6, true),
    serial: view.getUint32(14, true),
    sequence: view.getUint32(18, true),
    checksum,
    segmentCount,
    segmentTableOffset: offset + OGG_HEADER_BYTES,
    bodyOffset: offset + headerLength,
    bodyLength,
    length,
  };
}

function isCapturePrefix(buf: Uint8Array, at: number): boolean {
  const pattern = [0x4f, 0x67, 0x67, 0x53];
  for (let i = 0; at + i < buf.length; i++) if (buf[at + i] !== pattern[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Packets (RFC 3533 5: lacing values; 255 means the packet goes on)

export interface OggPacket {
  /** The packet bytes (a copy), cut to the assembler's limit. */
  data: Uint8Array;
  /** The packet's full length; larger than data.length when it was cut. */
  bytes: number;
}

/**
 * Reassembles the packets of one logical stream from its pages, including packets
 * that span pages. Packets are copied out of the page buffer; bytes beyond
 * `maxPacketBytes` are counted but not kept, so memory stays bounded.
 */
export class OggPacketAssembler {
  private readonly maxPacketBytes: number;
  private parts: Uint8Array[] = [];
  private keptBytes = 0;
  private totalBytes = 0;
  private open = false;

  constructor(maxPacketBytes: number) {
    this.maxPacketBytes = maxPacketBytes;
  }

  /** A packet is started and continues on the next page. */
  get pending(): boolean {
    return this.open;
  }

  /**
   * Feeds one page (parsed from `buf`); returns the packets completed on it.
   * Throws RangeError when the continuation flag disagrees with the previous page.
   */
  push(page: OggPage, buf: Uint8Array): OggPacket[] {
    if (page.continued && !this.open) {
      throw new RangeError(`page ${page.sequence} at offset ${page.position}: continues a packet, but none was started`);
    }
    if (!page.continued && this.open) {
      throw new RangeError(`page ${page.sequence} at offset ${page.position}: does not continue the packet left open by the previous page`);
    }
    const packets: OggPacket[] = [];
    let at = page.bodyOffset;
    let packetStart = at;
    for (let i = 0; i < page.segmentCount; i++) {
      const lace = buf[page.segmentTableOffset + i]!;
      at += lace;
      if (lace === 255) continue;
      packets.push(this.finish(buf, packetStart, at));
      packetStart = at;
    }
    // A final lacing value of 255 leaves the packet open for the next page.
    if (page.segmentCount > 0 && buf[page.segmentTableOffset + page.segmentCount - 1] === 255) {
      this.append(buf, packetStart, at);
      this.open = true;
    }
    return packets;
  }

  private append(buf: Uint8Array, start: number, end: number): void {
    this.totalBytes += end - start;
    const room = this.maxPacketBytes - this.keptBytes;
    const keep = Math.min(room, end - start);
    if (keep > 0) {
      this.parts.push(buf.slice(start, start + keep));
      this.keptBytes += keep;
    }
  }

  private finish(buf: Uint8Array, start: number, end: number): OggPacket {
    if (!this.open) {
      const bytes = end - start;
      return { data: buf.slice(start, start + Math.min(bytes, this.maxPacketBytes)), bytes };
    }
    this.append(buf, start, end);
    const data = new Uint8Array(this.keptBytes);
    let at = 0;
    for (const part of this.parts) {
      data.set(part, at);
      at += part.length;
    }
    const packet = { data, bytes: this.totalBytes };
    this.parts = [];
    this.keptBytes = 0;
    this.totalBytes = 0;
    this.open = false;
    return packet;
  }
}

// ---------------------------------------------------------------------------
// Opus (RFC 7845 5, RFC 6716 3.1)

export interface OpusHead extends OpusParams {
  version: number;
  /** Family 1 only (family 0: 1 stream, channels-1 coupled). */
  streamCount: number;
  coupledCount: number;
  /** Family 1 only; empty for family 0. */
  channelMapping: Uint8Array;
}

function startsWith(buf: Uint8Array, ascii: string): boolean {
  if (buf.length < ascii.length) return false;
  for (let i = 0; i < ascii.length; i++) if (buf[i] !== ascii.charCodeAt(i)) return false;
  return true;
}

/**
 * Parses an OpusHead packet (RFC 7845 5.1). TypeError: not an OpusHead, or a
 * version or mapping family offcast does not read; RangeError: inconsistent fields.
 */
export function parseOpusHead(packet: Uint8Array): OpusHead {
  if (!startsWith(packet, 'OpusHead')) throw new TypeError('not an OpusHead packet');
  if (packet.length < 19) throw new RangeError(`OpusHead of ${packet.length} bytes is too short (need 19)`);
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const version = view.getUint8(8);
  // The upper four bits are the major version; only major version 0 is defined.
  if (version >> 4 !== 0) throw new TypeError(`OpusHead version ${version} is not supported (need 0-15)`);
  const channels = view.getUint8(9);
  if (channels === 0) throw new RangeError('OpusHead declares 0 channels');
  const head: OpusHead = {
    version,
    channels,
    preSkip: view.getUint16(10, true),
    inputSampleRate: view.getUint32(12, true),
    outputGain: view.getInt16(16, true),
    channelMappingFamily: view.getUint8(18),
    streamCount: 1,
    coupledCount: channels - 1,
    channelMapping: new Uint8Array(0),
  };
  if (head.channelMappingFamily === 0) {
    if (channels > 2) throw new RangeError(`OpusHead mapping family 0 allows 1 or 2 channels, found ${channels}`);
    return head;
  }
  if (head.channelMappingFamily !== 1) {
    throw new TypeError(`Opus channel mapping family ${head.channelMappingFamily} is not supported (need 0 or 1)`);
  }
  if (channels > 8) throw new RangeError(`OpusHead mapping family 1 allows 1 to 8 channels, found ${channels}`);
  if (packet.length < 21 + channels) {
    throw new RangeError(`OpusHead of ${packet.length} bytes is too short for ${channels} channel mappings (need ${21 + channels})`);
  }
  head.streamCount = view.getUint8(19);
  head.coupledCount = view.getUint8(20);
  if (head.streamCount === 0 || head.coupledCount > head.streamCount) {
    throw new RangeError(`OpusHead declares ${head.streamCount} streams with ${head.coupledCount} coupled`);
  }
  head.channelMapping = packet.slice(21, 21 + channels);
  const decodedChannels = head.streamCount + head.coupledCount;
  for (const index of head.channelMapping) {
    if (index !== 255 && index >= decodedChannels) {
      throw new RangeError(`OpusHead channel mapping ${index} exceeds the ${decodedChannels} decoded channels`);
    }
  }
  return head;
}

export interface OpusPacket {
  data: Uint8Array;
  /** 48 kHz samples since the first audio packet of the stream. */
  pts: number;
  duration: number;
}

/**
 * Turns the pages of one Ogg Opus logical stream into timed Opus packets and checks
 * the stream as it goes: page sequence, OpusHead then OpusTags, packet TOCs and the
 * granule position of every page (RFC 7845 4). Pure: the caller feeds pages.
 */
export class OggOpusDemuxer {
  readonly serial: number;
  head: OpusHead | undefined;
  /**
   * Granule position of the first audio sample (RFC 7845 4.5 allows a stream to start
   * after 0, e.g. a cut live stream); known once a page completes an audio packet.
   */
  startGranule: number | undefined;
  /** The end-of-stream page was seen. */
  ended = false;
  private readonly assembler = new OggPacketAssembler(MAX_OPUS_PACKET_BYTES);
  private packetCount = 0;
  private lastSequence = -1;
  /** 48 kHz samples of the audio packets completed so far. */
  private samplesDone = 0;
  /** Granule position of the previous page that completed audio packets. */
  private lastGranule = -1;

  constructor(serial: number) {
    this.serial = serial;
  }

  /** The stream's headers (OpusHead, OpusTags) are complete. */
  get headersDone(): boolean {
    return this.packetCount >= 2;
  }

  /**
   * Feeds the next page of this stream; returns the audio packets completed on it.
   * Throws TypeError (not Opus) or RangeError (corrupt) naming the page and offset.
   */
  push(page: OggPage, buf: Uint8Array): OpusPacket[] {
    const where = `page ${page.sequence} at offset ${page.position}`;
    if (this.ended) throw new RangeError(`${where}: page after the end of stream`);
    if (this.lastSequence < 0) {
      if (!page.bos) throw new RangeError(`${where}: the stream's first page lacks the beginning-of-stream flag`);
    } else {
      if (page.bos) throw new RangeError(`${where}: beginning-of-stream flag in the middle of the stream`);
      const expected = (this.lastSequence + 1) >>> 0;
      if (page.sequence !== expected) {
        throw new RangeError(`${where}: sequence number ${page.sequence}, expected ${expected} (page lost or out of order)`);
      }
    }
    this.lastSequence = page.sequence;

    const packets = this.assembler.push(page, buf);
    const out: OpusPacket[] = [];
    for (const packet of packets) {
      const index = this.packetCount++;
      if (index === 0) {
        if (!startsWith(packet.data, 'OpusHead')) throw new RangeError(`${where}: missing OpusHead`);
        this.head = parseOpusHead(packet.data);
        if (packets.length !== 1 || this.assembler.pending) {
          throw new RangeError(`${where}: the OpusHead page must hold only the OpusHead packet`);
        }
      } else if (index === 1) {
        if (!startsWith(packet.data, 'OpusTags')) {
          throw new RangeError(`${where}: missing OpusTags (second packet starts with ${hexPrefix(packet.data)})`);
        }
      } else {
        if (packet.bytes > packet.data.length) {
          throw new RangeError(`${where}: Opus packet of ${packet.bytes} bytes exceeds the ${MAX_OPUS_PACKET_BYTES}-byte limit`);
        }
        let duration: number;
        try {
          duration = opusPacketDuration(packet.data);
        } catch (err) {
          throw new RangeError(`${where}: audio packet ${index - 2}: ${(err as Error).message}`, { cause: err });
        }
        out.push({ data: packet.data, pts: this.samplesDone, duration });
        this.samplesDone += duration;
      }
    }
    if (out.length > 0) this.checkGranule(page, where);
    else if (packets.length === 0 && this.packetCount >= 2) {
      // Past the headers, a page on which nothing completes has no granule position.
      if (page.granule !== NO_GRANULE) {
        throw new RangeError(`${where}: granule position ${page.granule} on a page that completes no packet (need -1)`);
      }
    }
    if (page.eos) {
      if (this.assembler.pending) throw new RangeError(`${where}: end of stream inside a packet`);
      this.ended = true;
    }
    return out;
  }

  private checkGranule(page: OggPage, where: string): void {
    if (page.granule === NO_GRANULE) throw new RangeError(`${where}: page completes packets but has no granule position`);
    if (page.granule < 0n) throw new RangeError(`${where}: negative granule position ${page.granule}`);
    if (page.granule > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(`${where}: granule position ${page.granule} is out of range`);
    }
    const granule = Number(page.granule);
    if (this.startGranule === undefined) {
      // RFC 7845 4.5: the first page may claim more samples than its packets hold (the
      // stream starts later than 0); fewer is only allowed on a last page (end trim).
      if (granule >= this.samplesDone) this.startGranule = granule - this.samplesDone;
      else if (page.eos) this.startGranule = 0;
      else {
        throw new RangeError(`${where}: granule position ${granule} is smaller than the ${this.samplesDone} samples of its packets`);
      }
    } else {
      const expected = this.startGranule + this.samplesDone;
      if (granule < this.lastGranule) {
        throw new RangeError(`${where}: granule position ${granule} decreases (previous page: ${this.lastGranule})`);
      }
      // The last page may end before its last packet does (RFC 7845 4.4, end trimming).
      if (granule > expected || (granule < expected && !page.eos)) {
        throw new RangeError(`${where}: granule position ${granule} does not match the end of its last packet (${expected})`);
      }
    }
    this.lastGranule = granule;
  }
}

function hexPrefix(buf: Uint8Array): string {
  const bytes = Array.from(buf.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return buf.length > 8 ? `${bytes} ...` : bytes || '(empty)';
}

/** Names of codecs by the first bytes of their identification header, for messages. */
const OGG_CODECS: [string, string][] = [
  ['OpusHead', 'Opus'],
  ['\x01vorbis', 'Vorbis'],
  ['\x80theora', 'Theora'],
  ['\x7fFLAC', 'FLAC'],
  ['Speex   ', 'Speex'],
  ['fishead\0', 'Skeleton'],
  ['CELT    ', 'CELT'],
  ['\x80kate', 'Kate'],
  ['PCM     ', 'PCM'],
  ['\x80daala', 'Daala'],
];

function identifyOggCodec(firstBytes: Uint8Array): string | undefined {
  for (const [magic, name] of OGG_CODECS) if (startsWith(firstBytes, magic)) return name;
  return undefined;
}

// ---------------------------------------------------------------------------
// The reader

/** Bytes buffered while walking pages: two maximal pages. */
const PAGE_WINDOW_BYTES = 128 * 1024;

interface PageAt {
  page: OggPage;
  /** The buffer the page was parsed from; valid until the next page is requested. */
  buf: Uint8Array;
}

/** The pages of a file in order; each must start where the previous one ended. */
async function* readPages(handle: FileHandle, fileSize: number): AsyncGenerator<PageAt> {
  const reader = new SequentialFileReader(handle, 0, fileSize, PAGE_WINDOW_BYTES);
  while (reader.remaining > 0) {
    await reader.ensure(OGG_HEADER_BYTES);
    // Ask for the full header (lacing values) and then the body; the parser reports
    // whatever is short.
    if (reader.length - reader.offset >= OGG_HEADER_BYTES && hasCapturePattern(reader.bytes, reader.offset)) {
      const segments = reader.bytes[reader.offset + 26]!;
      await reader.ensure(OGG_HEADER_BYTES + segments);
      let body = 0;
      const table = reader.offset + OGG_HEADER_BYTES;
      for (let i = 0; i < segments && table + i < reader.length; i++) body += reader.bytes[table + i]!;
      await reader.ensure(OGG_HEADER_BYTES + segments + body);
    }
    const page = parseOggPage(reader.bytes.subarray(0, reader.length), reader.offset, reader.position);
    yield { page, buf: reader.bytes };
    reader.skip(page.length);
  }
}

/** Wraps a parser error: corrupt, unless a TypeError ("not this format") is to be read as unsupported. */
function oggError(err: unknown, typeErrorIsUnsupported: boolean): Error {
  if (err instanceof UnsupportedMediaError || err instanceof CorruptMediaError) return err;
  if (err instanceof TypeError && typeErrorIsUnsupported) return new UnsupportedMediaError(`Ogg: ${err.message}`, { cause: err });
  if (err instanceof TypeError || err instanceof RangeError) return new CorruptMediaError(`Ogg: ${err.message}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/** Bytes read per step while searching the tail for the last granule position. */
const TAIL_WINDOW_BYTES = 2 * OGG_MAX_PAGE_BYTES + 1024;

/**
 * Finds the granule position of the last page of `serial` that has one, reading the
 * file backwards in bounded windows. Also checks that the file ends with a whole
 * page (a truncated or corrupt last page is reported with its offset).
 */
export async function findLastGranule(handle: FileHandle, fileSize: number, serial: number): Promise<bigint | undefined> {
  let end = fileSize;
  let tailChecked = false;
  for (;;) {
    const start = Math.max(0, end - TAIL_WINDOW_BYTES);
    const buf = await readAt(handle, start, end - start);
    let found: bigint | undefined;
    let validEnd = -1;
    for (let i = 0; i + OGG_HEADER_BYTES <= buf.length; i++) {
      if (!hasCapturePattern(buf, i)) continue;
      let page: OggPage;
      try {
        page = parseOggPage(buf, i, start + i);
      } catch {
        continue; // a capture pattern inside packet data, or a damaged page
      }
      validEnd = Math.max(validEnd, i + page.length);
      if (page.serial === serial && page.granule !== NO_GRANULE) found = page.granule;
    }
    if (!tailChecked) {
      tailChecked = true;
      if (validEnd < 0) throw new RangeError(`no valid Ogg page in the last ${buf.length} bytes of the file`);
      if (start + validEnd !== fileSize) {
        // Let the page parser say what is wrong with the bytes after the last good page.
        try {
          parseOggPage(buf, validEnd, start + validEnd);
        } catch (err) {
          throw new RangeError(`last page: ${(err as Error).message}`, { cause: err });
        }
        throw new RangeError(`unexpected bytes at offset ${start + validEnd}`);
      }
    }
    if (found !== undefined || start === 0) return found;
    // Overlap by a maximal page so a page straddling the boundary is seen whole.
    end = start + OGG_MAX_PAGE_BYTES;
  }
}

/** Opens an Ogg file and reads its first Opus stream's headers and duration. */
export async function openOggOpus(path: string): Promise<MediaReader> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size === 0) throw new CorruptMediaError('Ogg: empty file');
    const { demuxer, head } = await readHeaders(handle, size);
    let lastGranule: bigint | undefined;
    try {
      lastGranule = await findLastGranule(handle, size, demuxer.serial);
    } catch (err) {
      throw oggError(err, false);
    }
    let durationSamples = 0;
    if (demuxer.startGranule !== undefined && lastGranule !== undefined && lastGranule >= 0n) {
      durationSamples = Math.max(0, Number(lastGranule) - demuxer.startGranule - head.preSkip);
    }
    return new OggOpusReader(handle, size, demuxer.serial, head, durationSamples);
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * Reads from the start up to the first page that completes an audio packet: picks
 * the first Opus stream among the beginning-of-stream pages and checks its headers.
 */
async function readHeaders(handle: FileHandle, size: number): Promise<{ demuxer: OggOpusDemuxer; head: OpusHead }> {
  const pages = readPages(handle, size);
  let demuxer: OggOpusDemuxer | undefined;
  const others: string[] = [];
  let unknownStream = '';
  let first = true;
  try {
    for (;;) {
      let next: IteratorResult<PageAt>;
      try {
        next = await pages.next();
      } catch (err) {
        throw oggError(err, first);
      }
      if (next.done) break;
      const { page, buf } = next.value;
      if (first && !page.bos) {
        throw new CorruptMediaError(`Ogg: the first page (offset 0) lacks the beginning-of-stream flag`);
      }
      first = false;
      if (page.bos && demuxer === undefined) {
        const firstBytes = buf.subarray(page.bodyOffset, page.bodyOffset + Math.min(page.bodyLength, 8));
        const codec = identifyOggCodec(firstBytes);
        if (codec === 'Opus') demuxer = new OggOpusDemuxer(page.serial);
        else {
          if (codec === undefined && unknownStream === '') {
            unknownStream = `stream ${page.serial} at offset ${page.position} starts with ${hexPrefix(firstBytes)}`;
          }
          others.push(codec ?? 'unknown');
          continue;
        }
      }
      if (demuxer === undefined) break; // past the beginning-of-stream pages: no Opus
      if (page.serial !== demuxer.serial) continue;
      try {
        demuxer.push(page, buf);
      } catch (err) {
        // The demuxer's TypeErrors come from an OpusHead offcast does not read.
        throw oggError(err, err instanceof TypeError);
      }
      if (demuxer.startGranule !== undefined || demuxer.ended) break;
    }
  } finally {
    await pages.return(undefined);
  }
  if (demuxer === undefined) {
    if (unknownStream !== '') throw new CorruptMediaError(`Ogg: missing OpusHead (${unknownStream})`);
    throw new UnsupportedMediaError(`Ogg: no Opus stream (found ${others.join(', ') || 'no streams'})`);
  }
  if (demuxer.head === undefined) throw new CorruptMediaError('Ogg: the file ends inside the OpusHead packet');
  if (!demuxer.headersDone) throw new CorruptMediaError('Ogg: missing OpusTags (the file ends after OpusHead)');
  return { demuxer, head: demuxer.head };
}

class OggOpusReader implements MediaReader {
  readonly probe: Probe;
  private readonly handle: FileHandle;
  private readonly fileSize: number;
  private readonly serial: number;
  private closed = false;

  constructor(handle: FileHandle, fileSize: number, serial: number, head: OpusHead, durationSamples: number) {
    this.handle = handle;
    this.fileSize = fileSize;
    this.serial = serial;
    const durationMs = Math.round(durationSamples / 48);
    this.probe = {
      format: 'ogg',
      bytes: fileSize,
      durationMs,
      tracks: [
        {
          index: 0,
          kind: 'audio',
          codec: 'opus',
          // RTP Opus (RFC 7587) carries one Opus stream: mono or stereo, mapping family 0.
          supported: head.channelMappingFamily === 0,
          clockRate: OPUS_CLOCK_RATE,
          channels: head.channels,
          durationMs,
          opus: {
            channels: head.channels,
            preSkip: head.preSkip,
            inputSampleRate: head.inputSampleRate,
            outputGain: head.outputGain,
            channelMappingFamily: head.channelMappingFamily,
          },
        },
      ],
    };
  }

  async *samples(opts?: SampleOptions): AsyncIterable<Sample> {
    if (this.closed) throw closedError('Ogg');
    if (opts?.tracks !== undefined && !opts.tracks.includes(0)) return;
    const demuxer = new OggOpusDemuxer(this.serial);
    const pages = readPages(this.handle, this.fileSize);
    try {
      while (!this.closed && !demuxer.ended) {
        let packets: OpusPacket[];
        try {
          const next = await pages.next();
          if (next.done) break;
          const { page, buf } = next.value;
          if (page.serial !== this.serial) continue;
          packets = demuxer.push(page, buf);
        } catch (err) {
          if (this.closed) return; // closed while reading: the consumer is gone
          throw oggError(err, false);
        }
        for (const p of packets) {
          yield { track: 0, data: p.data, pts: p.pts, dts: p.pts, duration: p.duration, keyframe: true };
        }
      }
    } finally {
      await pages.return(undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
