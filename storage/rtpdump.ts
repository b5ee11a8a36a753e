/**
 * The rtpdump file format of rtptools (rtpdump.h), which Wireshark reads too
 * (wiretap/rtpdump.c, Wireshark 4.2 and later). Recordings keep the raw packets of
 * a session in it, next to the playable files. Layout, all numbers big-endian:
 *
 *   "#!rtpplay1.0 <address>/<port>\n"
 *   RD_hdr_t    u32 start seconds, u32 start microseconds (struct timeval),
 *               u32 source IPv4 address, u16 port, u16 padding         (16 bytes)
 *   per packet  RD_packet_t: u16 length (8 + bytes stored), u16 plen (the RTP
 *               packet's length; 0 marks RTCP), u32 offset (ms since start),
 *               then the packet bytes.
 *
 * rtptools writes the same IPv4 address and port in the text line and the binary
 * header. For an IPv6 peer the text line holds the IPv6 address and the binary
 * address is 0, as Wireshark does (the binary field has room for IPv4 only).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { open } from 'node:fs/promises';
import { CorruptMediaError, UnsupportedMediaError } from './errors.js';
import { readAt, SequentialFileReader } from './io.js';

export const RTPDUMP_MAGIC = '#!rtpplay1.0 ';
/** RD_hdr_t. */
export const RTPDUMP_FILE_HEADER_BYTES = 16;
/** RD_packet_t. */
export const RTPDUMP_RECORD_HEADER_BYTES = 8;
/** The record length is 16 bits and counts its 8-byte header. */
export const RTPDUMP_MAX_PACKET_BYTES = 0xffff - RTPDUMP_RECORD_HEADER_BYTES;
/** The offset is 32-bit milliseconds: about 49.7 days. */
export const RTPDUMP_MAX_OFFSET_MS = 0xffffffff;
/** Longest text line accepted: magic, an IPv6 address (45), "/", a port, "\n", with room to spare. */
const MAX_LINE_BYTES = 128;

export interface RtpdumpHeader {
  /** Start of the recording (struct timeval). */
  start: { sec: number; usec: number };
  /** Source address of the binary header, dotted quad (0.0.0.0 when the peer was IPv6). */
  source: string;
  /** Port of the binary header. */
  port: number;
  /** Address and port of the text line. */
  textAddress: string;
  textPort: number;
  /** Bytes of the text line and the binary header: the first record starts here. */
  headerLength: number;
}

export interface RtpdumpRecord {
  /** Milliseconds since the start of the recording. */
  offsetMs: number;
  /** RTP packet length as received (0 for RTCP). */
  plen: number;
  /** The stored packet bytes. */
  data: Uint8Array;
  rtcp: boolean;
}

export interface ParsedRtpdump extends RtpdumpHeader {
  records: RtpdumpRecord[];
  /** Bytes up to the end of the last complete record: recovery truncates a cut file here. */
  validLength: number;
  /** The buffer ends inside a record (a file cut by a crash). */
  truncated: boolean;
}

// ---------------------------------------------------------------------------
// Writing

/** Text address and binary IPv4 address (as a 32-bit number) for a peer address. */
function headerAddress(address: string): { text: string; binary: number } {
  // Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6 addresses.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const v4 = mapped ? mapped[1]! : address;
  if (isIPv4(v4)) {
    const parts = v4.split('.').map(Number);
    return { text: v4, binary: ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0 };
  }
  if (isIPv6(address)) return { text: address, binary: 0 };
  throw new RangeError(`rtpdump: ${JSON.stringify(address)} is not an IP address`);
}

/**
 * The text line and binary header that start a file, for a recording that started
 * at `startUnixMs` (ms since the epoch) receiving from `address`/`port`.
 */
export function rtpdumpHeader(startUnixMs: number, address: string, port: number): Uint8Array {
  if (!Number.isFinite(startUnixMs) || startUnixMs < 0 || startUnixMs / 1000 >= 0x100000000) {
    throw new RangeError(`rtpdump: start time ${startUnixMs} ms does not fit a 32-bit timeval`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) {
    throw new RangeError(`rtpdump: port ${port} is not in 1..65535`);
  }
  const { text, binary } = headerAddress(address);
  const line = `${RTPDUMP_MAGIC}${text}/${port}\n`;
  const out = new Uint8Array(line.length + RTPDUMP_FILE_HEADER_BYTES);
  for (let i = 0; i < line.length; i++) out[i] = line.charCodeAt(i);
  const sec = Math.floor(startUnixMs / 1000);
  const usec = Math.min(999999, Math.round((startUnixMs - sec * 1000) * 1000));
  const view = new DataView(out.buffer, line.length);
  view.setUint32(0, sec);
  view.setUint32(4, usec);
  view.setUint32(8, binary);
  view.setUint16(12, port);
  view.setUint16(14, 0);
  return out;
}

/**
 * Writes the 8-byte RD_packet_t for a packet of `packetLength` bytes received
 * `offsetMs` after the start into `out` at `at` (no allocation: for the per-packet
 * path). The offset is truncated to whole milliseconds. RangeError when the packet
 * or the offset does not fit the format's 16- and 32-bit fields.
 */
export function writeRtpdumpRecordHeader(out: Uint8Array, at: number, packetLength: number, offsetMs: number, isRtcp: boolean): void {
  if (packetLength > RTPDUMP_MAX_PACKET_BYTES) {
    throw new RangeError(`rtpdump: packet of ${packetLength} bytes exceeds ${RTPDUMP_MAX_PACKET_BYTES}`);
  }
  if (!(offsetMs >= 0 && offsetMs < RTPDUMP_MAX_OFFSET_MS + 1)) {
    throw new RangeError(`rtpdump: offset ${offsetMs} ms is not in 0..${RTPDUMP_MAX_OFFSET_MS}`);
  }
  const length = RTPDUMP_RECORD_HEADER_BYTES + packetLength;
  const plen = isRtcp ? 0 : packetLength;
  const ms = Math.floor(offsetMs);
  out[at] = length >>> 8;
  out[at + 1] = length & 0xff;
  out[at + 2] = plen >>> 8;
  out[at + 3] = plen & 0xff;
  out[at + 4] = ms >>> 24;
  out[at + 5] = (ms >>> 16) & 0xff;
  out[at + 6] = (ms >>> 8) & 0xff;
  out[at + 7] = ms & 0xff;
}

/**
 * One record: a fresh 8-byte header and the packet itself (not copied: the caller
 * copies both before reusing the packet's buffer, as DurableFile.write does).
 */
export function rtpdumpRecord(packet: Uint8Array, offsetMs: number, isRtcp = false): Uint8Array[] {
  const header = new Uint8Array(RTPDUMP_RECORD_HEADER_BYTES);
  writeRtpdumpRecordHeader(header, 0, packet.length, offsetMs, isRtcp);
  return [header, packet];
}

// ---------------------------------------------------------------------------
// Reading

/**
 * Parses the text line and binary header at the start of `buf`. TypeError when
 * the file does not start with "#!rtpplay1.0 "; RangeError when the line or the
 * binary header is cut or the line does not hold "address/port".
 */
export function parseRtpdumpHeader(buf: Uint8Array): RtpdumpHeader {
  for (let i = 0; i < RTPDUMP_MAGIC.length; i++) {
    if (i >= buf.length) throw new RangeError(`rtpdump: header line cut after ${buf.length} bytes`);
    if (buf[i] !== RTPDUMP_MAGIC.charCodeAt(i)) {
      const other = buf.length >= 9 && String.fromCharCode(...buf.subarray(0, 9)) === '#!rtpplay';
      throw new TypeError(other ? 'rtpdump: unsupported version (need "#!rtpplay1.0 ")' : 'not an rtpdump file (no "#!rtpplay1.0 " line)');
    }
  }
  let newline = -1;
  const limit = Math.min(buf.length, MAX_LINE_BYTES);
  for (let i = RTPDUMP_MAGIC.length; i < limit; i++) {
    if (buf[i] === 0x0a) {
      newline = i;
      break;
    }
  }
  if (newline < 0) {
    if (buf.length < MAX_LINE_BYTES) throw new RangeError(`rtpdump: header line cut after ${buf.length} bytes`);
    throw new RangeError(`rtpdump: header line longer than ${MAX_LINE_BYTES} bytes`);
  }
  let text = '';
  for (let i = RTPDUMP_MAGIC.length; i < newline; i++) text += String.fromCharCode(buf[i]!);
  const slash = text.lastIndexOf('/');
  const textAddress = text.slice(0, slash);
  const portText = text.slice(slash + 1);
  if (slash < 0 || !(isIPv4(textAddress) || isIPv6(textAddress)) || !/^\d{1,5}$/.test(portText) || Number(portText) > 0xffff) {
    throw new RangeError(`rtpdump: header line ${JSON.stringify(text)} is not "address/port"`);
  }
  const headerLength = newline + 1 + RTPDUMP_FILE_HEADER_BYTES;
  if (buf.length < headerLength) {
    throw new RangeError(`rtpdump: binary header cut: ${buf.length - newline - 1} of ${RTPDUMP_FILE_HEADER_BYTES} bytes`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset + newline + 1, RTPDUMP_FILE_HEADER_BYTES);
  const source = view.getUint32(8);
  return {
    start: { sec: view.getUint32(0), usec: view.getUint32(4) },
    source: `${source >>> 24}.${(source >>> 16) & 0xff}.${(source >>> 8) & 0xff}.${source & 0xff}`,
    port: view.getUint16(12),
    textAddress,
    textPort: Number(portText),
    headerLength,
  };
}

/**
 * Reads the RD_packet_t at `at`; returns the record's total length, or -1 when
 * fewer than 8 bytes are left. RangeError when its fields are inconsistent.
 */
function recordLength(buf: Uint8Array, at: number, end: number, position: number): number {
  if (end - at < RTPDUMP_RECORD_HEADER_BYTES) return -1;
  const length = (buf[at]! << 8) | buf[at + 1]!;
  const plen = (buf[at + 2]! << 8) | buf[at + 3]!;
  if (length < RTPDUMP_RECORD_HEADER_BYTES) {
    throw new RangeError(`rtpdump: record at offset ${position} declares a length of ${length} (need at least 8)`);
  }
  // A capture may store less than the packet (length < 8 + plen), never more.
  if (plen !== 0 && plen < length - RTPDUMP_RECORD_HEADER_BYTES) {
    throw new RangeError(`rtpdump: record at offset ${position} stores ${length - RTPDUMP_RECORD_HEADER_BYTES} bytes of a ${plen}-byte packet`);
  }
  return length;
}

function recordAt(buf: Uint8Array, at: number, length: number, copy: boolean): RtpdumpRecord {
  const plen = (buf[at + 2]! << 8) | buf[at + 3]!;
  const offsetMs = ((buf[at + 4]! << 24) | (buf[at + 5]! << 16) | (buf[at + 6]! << 8) | buf[at + 7]!) >>> 0;
  const start = at + RTPDUMP_RECORD_HEADER_BYTES;
  const data = copy ? buf.slice(start, at + length) : buf.subarray(start, at + length);
  return { offsetMs, plen, data, rtcp: plen === 0 };
}

/**
 * Parses a whole rtpdump file held in memory; records are views over `buf`. A file
 * cut inside a record (a crash) is not an error: `truncated` is set and
 * `validLength` says where the last complete record ends. Throws TypeError when
 * this is not an rtpdump file, RangeError when its header is cut or a record
 * header is inconsistent.
 */
export function parseRtpdump(buf: Uint8Array): ParsedRtpdump {
  const header = parseRtpdumpHeader(buf);
  const records: RtpdumpRecord[] = [];
  let at = header.headerLength;
  for (;;) {
    const length = recordLength(buf, at, buf.length, at);
    if (length < 0 || at + length > buf.length) break;
    records.push(recordAt(buf, at, length, false));
    at += length;
  }
  return { ...header, records, validLength: at, truncated: at < buf.length };
}

// ---------------------------------------------------------------------------
// Streaming reader

/** Bytes of the file held at a time: records are at most 64 KiB each. */
const WINDOW_BYTES = 256 * 1024;

export interface RtpdumpFile {
  readonly header: RtpdumpHeader;
  /** File size when opened. */
  readonly bytes: number;
  /** After records() has run to the end: bytes up to the last complete record. */
  readonly validLength: number;
  /** After records() has run to the end: the file ends inside a record. */
  readonly truncated: boolean;
  /**
   * The records in order; each one's data is a copy. Stops quietly at a cut last
   * record; CorruptMediaError for an inconsistent record header.
   */
  records(): AsyncIterable<RtpdumpRecord>;
  close(): Promise<void>;
}

function rtpdumpError(err: unknown): Error {
  if (err instanceof TypeError) return new UnsupportedMediaError(err.message, { cause: err });
  if (err instanceof RangeError) return new CorruptMediaError(err.message, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Opens an rtpdump file and reads its header; records() then streams the file in a
 * bounded window (`windowBytes`, default 256 KiB, at least 64 KiB). Errors are
 * UnsupportedMediaError (not rtpdump) and CorruptMediaError (cut header,
 * inconsistent record).
 */
export async function openRtpdump(path: string, opts?: { windowBytes?: number }): Promise<RtpdumpFile> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const head = await readAt(handle, 0, Math.min(size, MAX_LINE_BYTES + RTPDUMP_FILE_HEADER_BYTES));
    let header: RtpdumpHeader;
    try {
      header = parseRtpdumpHeader(head);
    } catch (err) {
      throw rtpdumpError(err);
    }
    const windowBytes = Math.max(0x10000, opts?.windowBytes ?? WINDOW_BYTES);
    let validLength = header.headerLength;
    let truncated = false;
    let closed = false;
    return {
      header,
      bytes: size,
      get validLength() {
        return validLength;
      },
      get truncated() {
        return truncated;
      },
      async *records() {
        const reader = new SequentialFileReader(handle, header.headerLength, size, windowBytes);
        while (reader.remaining > 0 && !closed) {
          const got = await reader.ensure(RTPDUMP_RECORD_HEADER_BYTES);
          let length: number;
          try {
            length = recordLength(reader.bytes, reader.offset, reader.offset + got, reader.position);
          } catch (err) {
            throw rtpdumpError(err);
          }
          if (length < 0 || (await reader.ensure(length)) < length) {
            truncated = true;
            return;
          }
          const record = recordAt(reader.bytes, reader.offset, length, true);
          reader.skip(length);
          validLength = reader.position;
          yield record;
        }
      },
      async close() {
        if (closed) return;
        closed = true;
        await handle.close();
      },
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** The records of an rtpdump file, streamed with bounded memory (see openRtpdump). */
export async function* readRtpdump(path: string): AsyncGenerator<RtpdumpRecord> {
  const file = await openRtpdump(path);
  try {
    yield* file.records();
  } finally {
    await file.close();
  }
}
