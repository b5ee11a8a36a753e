/**
 * A reference rtpdump reader and writer for tests, written from the rtptools
 * format (rtpdump.h: "#!rtpplay1.0 addr/port\n", RD_hdr_t of 16 bytes, then per
 * packet RD_packet_t {u16 length incl. its 8 bytes, u16 plen (0: RTCP),
 * u32 offset ms} and the bytes), independently of storage/rtpdump.ts, so tests
 * do not check the product's files with the product's own parser.
 */

export interface RefRecord {
  offsetMs: number;
  /** RTP packet length; 0 marks RTCP. */
  plen: number;
  /** plen 0: an RTCP packet. */
  rtcp: boolean;
  data: Buffer;
}

export interface RefRtpdump {
  address: string;
  port: number;
  records: RefRecord[];
  /** Bytes up to the end of the last complete record. */
  validLength: number;
  /** Whether bytes after the last complete record were left (a torn record). */
  torn: boolean;
  /** The same, named as storage/rtpdump.ts names it. */
  truncated: boolean;
}

export function readRtpdumpRef(buf: Buffer): RefRtpdump {
  const nl = buf.indexOf(0x0a);
  if (nl < 0) throw new Error('rtpdump: no header line');
  const line = buf.subarray(0, nl).toString('latin1');
  const m = /^#!rtpplay1\.0 (\S+)\/(\d+)$/.exec(line);
  if (m === null) throw new Error(`rtpdump: bad header line ${JSON.stringify(line)}`);
  let off = nl + 1 + 16;
  if (off > buf.length) throw new Error('rtpdump: cut in its binary header');
  const records: RefRecord[] = [];
  while (off + 8 <= buf.length) {
    const length = buf.readUInt16BE(off);
    if (length < 8 || off + length > buf.length) break;
    const plen = buf.readUInt16BE(off + 2);
    records.push({ plen, rtcp: plen === 0, offsetMs: buf.readUInt32BE(off + 4), data: Buffer.from(buf.subarray(off + 8, off + length)) });
    off += length;
  }
  return { address: m[1]!, port: Number(m[2]), records, validLength: off, torn: off !== buf.length, truncated: off !== buf.length };
}

export function writeRtpdumpRef(address: string, port: number, records: readonly { offsetMs: number; data: Uint8Array; rtcp?: boolean }[]): Buffer {
  const head = Buffer.alloc(16);
  const parts = address.split('.').map(Number);
  if (parts.length === 4) head.writeUInt32BE(((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0, 8);
  head.writeUInt16BE(port, 12);
  const out: Buffer[] = [Buffer.from(`#!rtpplay1.0 ${address}/${port}\n`, 'latin1'), head];
  for (const r of records) {
    const h = Buffer.alloc(8);
    h.writeUInt16BE(8 + r.data.length, 0);
    h.writeUInt16BE(r.rtcp === true ? 0 : r.data.length, 2);
    h.writeUInt32BE(r.offsetMs >>> 0, 4);
    out.push(h, Buffer.from(r.data));
  }
  return Buffer.concat(out);
}
