import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CorruptMediaError, UnsupportedMediaError } from '../../storage/errors.js';
import {
  openRtpdump,
  parseRtpdump,
  parseRtpdumpHeader,
  readRtpdump,
  rtpdumpHeader,
  rtpdumpRecord,
  RTPDUMP_MAX_PACKET_BYTES,
  writeRtpdumpRecordHeader,
  type RtpdumpRecord,
} from '../../storage/rtpdump.js';
import { run } from '../helpers/ffmpeg.js';
import { hasTshark as hasTsharkTool, skipUnless } from '../helpers/tools.js';

const dir = mkdtempSync(join(tmpdir(), 'offcast-rtpdump-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const hasTshark = hasTsharkTool();

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** An RTP packet (RFC 3550 5.1) with a payload of `size` bytes derived from seq. */
function rtp(seq: number, ts: number, ssrc: number, size: number, marker = false): Uint8Array {
  const p = new Uint8Array(12 + size);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = (marker ? 0x80 : 0) | 96;
  v.setUint16(2, seq & 0xffff);
  v.setUint32(4, ts >>> 0);
  v.setUint32(8, ssrc);
  for (let i = 0; i < size; i++) p[12 + i] = (seq * 7 + i) & 0xff;
  return p;
}

/** An RTCP receiver report with no report blocks (RFC 3550 6.4.2). */
function rtcpRr(ssrc: number): Uint8Array {
  const p = new Uint8Array(8);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = 201;
  v.setUint16(2, 1);
  v.setUint32(4, ssrc);
  return p;
}

interface In {
  packet: Uint8Array;
  offsetMs: number;
  rtcp: boolean;
}

function dump(start: number, address: string, port: number, packets: In[]): Uint8Array {
  return concat([rtpdumpHeader(start, address, port), ...packets.flatMap((p) => rtpdumpRecord(p.packet, p.offsetMs, p.rtcp))]);
}

const START_MS = 1700000000123.456;
const session: In[] = [];
for (let i = 0; i < 50; i++) {
  session.push({ packet: rtp(65530 + i, 4294960000 + i * 960, 0xdeadbeef, 20 + (i % 7) * 30, i % 10 === 0), offsetMs: i * 20, rtcp: false });
  if (i % 25 === 24) session.push({ packet: rtcpRr(0x12345678), offsetMs: i * 20 + 5, rtcp: true });
}

t.test('header: text line and RD_hdr_t byte layout', async (t) => {
  const h = rtpdumpHeader(START_MS, '192.168.1.20', 5004);
  const line = '#!rtpplay1.0 192.168.1.20/5004\n';
  t.equal(Buffer.from(h.subarray(0, line.length)).toString('latin1'), line);
  t.same(
    [...h.subarray(line.length)],
    [0x65, 0x53, 0xf1, 0x00, 0x00, 0x01, 0xe2, 0x40, 192, 168, 1, 20, 0x13, 0x8c, 0, 0],
    'sec 1700000000, usec 123456, 192.168.1.20, port 5004, padding',
  );
  t.same(parseRtpdumpHeader(h), {
    start: { sec: 1700000000, usec: 123456 },
    source: '192.168.1.20',
    port: 5004,
    textAddress: '192.168.1.20',
    textPort: 5004,
    headerLength: line.length + 16,
  });
  const mapped = parseRtpdumpHeader(rtpdumpHeader(0, '::ffff:10.0.0.1', 1));
  t.equal(mapped.source, '10.0.0.1', 'IPv4-mapped IPv6 is written as IPv4');
  t.equal(mapped.textAddress, '10.0.0.1');
  const v6 = parseRtpdumpHeader(rtpdumpHeader(0, 'fe80::1', 65535));
  t.same([v6.textAddress, v6.textPort, v6.source, v6.port], ['fe80::1', 65535, '0.0.0.0', 65535], 'IPv6: text line only (as Wireshark writes it)');
  for (const [start, address, port] of [
    [-1, '1.2.3.4', 1],
    [2 ** 32 * 1000, '1.2.3.4', 1],
    [Number.NaN, '1.2.3.4', 1],
    [0, '1.2.3', 1],
    [0, 'localhost', 1],
    [0, '1.2.3.4', 0],
    [0, '1.2.3.4', 65536],
    [0, '1.2.3.4', 1.5],
  ] as const) {
    t.throws(() => rtpdumpHeader(start, address, port), RangeError, `${start} ${address} ${port}`);
  }
});

t.test('records: byte layout and limits', async (t) => {
  const p = rtp(1, 2, 3, 4);
  const [h, body] = rtpdumpRecord(p, 1234.9);
  t.same([...h!], [0, 24, 0, 16, 0, 0, 0x04, 0xd2], 'length 8+16, plen 16, offset 1234 ms (truncated)');
  t.equal(body, p, 'the packet itself, not a copy');
  t.same([...rtpdumpRecord(rtcpRr(1), 0, true)[0]!], [0, 16, 0, 0, 0, 0, 0, 0], 'RTCP: plen 0');
  const out = new Uint8Array(12).fill(0xee);
  writeRtpdumpRecordHeader(out, 2, 100, 0xffffffff, false);
  t.same([...out], [0xee, 0xee, 0, 108, 0, 100, 0xff, 0xff, 0xff, 0xff, 0xee, 0xee], 'writes in place');
  t.throws(() => rtpdumpRecord(new Uint8Array(RTPDUMP_MAX_PACKET_BYTES + 1), 0), RangeError, 'packet too long');
  t.equal(rtpdumpRecord(new Uint8Array(RTPDUMP_MAX_PACKET_BYTES), 0)[0]![0], 0xff, 'longest packet');
  t.throws(() => rtpdumpRecord(p, 2 ** 32), RangeError, 'offset past 32 bits');
  t.throws(() => rtpdumpRecord(p, -1), RangeError, 'negative offset');
  t.throws(() => rtpdumpRecord(p, Number.NaN), RangeError);
});

t.test('parseRtpdump: round trip', async (t) => {
  const file = dump(START_MS, '127.0.0.1', 40000, session);
  const parsed = parseRtpdump(file);
  t.equal(parsed.records.length, session.length);
  t.same(
    parsed.records.map((r) => ({ packet: Buffer.from(r.data), offsetMs: r.offsetMs, rtcp: r.rtcp, plen: r.plen })),
    session.map((s) => ({ packet: Buffer.from(s.packet), offsetMs: s.offsetMs, rtcp: s.rtcp, plen: s.rtcp ? 0 : s.packet.length })),
  );
  t.equal(parsed.validLength, file.length);
  t.equal(parsed.truncated, false);
  t.equal(parsed.records[0]!.data.buffer, file.buffer, 'records are views of the buffer');
  const empty = parseRtpdump(rtpdumpHeader(0, '1.2.3.4', 9));
  t.same([empty.records.length, empty.truncated], [0, false], 'a file with no packets');
});

t.test('parseRtpdump: a file cut anywhere', async (t) => {
  const file = dump(START_MS, '127.0.0.1', 40000, session);
  const headerLength = parseRtpdumpHeader(file).headerLength;
  const ends = [headerLength];
  for (const s of session) ends.push(ends.at(-1)! + 8 + s.packet.length);
  const lineLength = '#!rtpplay1.0 127.0.0.1/40000\n'.length;
  for (let cut = 0; cut < file.length; cut++) {
    const part = file.subarray(0, cut);
    if (cut < lineLength) {
      t.throws(() => parseRtpdump(part), { name: 'RangeError', message: /header line cut/ }, `cut at ${cut}: in the text line`);
      continue;
    }
    if (cut < headerLength) {
      t.throws(() => parseRtpdump(part), { name: 'RangeError', message: /binary header cut/ }, `cut at ${cut}: in RD_hdr_t`);
      continue;
    }
    const complete = ends.filter((e) => e <= cut).length - 1;
    const r = parseRtpdump(part);
    if (r.records.length !== complete || r.validLength !== ends[complete] || r.truncated !== (cut !== ends[complete])) {
      t.fail(`cut at ${cut}: ${r.records.length} records, validLength ${r.validLength}, truncated ${r.truncated}`);
      return;
    }
  }
  t.pass('every cut past the header: the complete records, validLength at the last one');
});

t.test('parseRtpdump: not rtpdump, corrupt headers and records', async (t) => {
  const good = dump(0, '10.1.2.3', 5004, session.slice(0, 3));
  const at = parseRtpdumpHeader(good).headerLength;
  const withRecordHeader = (bytes: number[]): Uint8Array => {
    const f = good.slice();
    f.set(bytes, at);
    return f;
  };
  const text = (s: string): Uint8Array => concat([Buffer.from(s, 'latin1'), new Uint8Array(16)]);
  const cases: [string, Uint8Array, RegExp, typeof TypeError | typeof RangeError][] = [
    ['empty', new Uint8Array(0), /header line cut/, RangeError],
    ['pcap', Uint8Array.of(0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0), /not an rtpdump file/, TypeError],
    ['other version', text('#!rtpplay2.0 1.2.3.4/5\n'), /unsupported version/, TypeError],
    ['no slash', text('#!rtpplay1.0 1.2.3.4\n'), /is not "address\/port"/, RangeError],
    ['bad address', text('#!rtpplay1.0 1.2.3.400/5\n'), /is not "address\/port"/, RangeError],
    ['bad port', text('#!rtpplay1.0 1.2.3.4/70000\n'), /is not "address\/port"/, RangeError],
    ['port not a number', text('#!rtpplay1.0 1.2.3.4/x\n'), /is not "address\/port"/, RangeError],
    ['line too long', text(`#!rtpplay1.0 ${'1'.repeat(200)}`), /longer than/, RangeError],
    ['record length 5', withRecordHeader([0, 5, 0, 0]), /declares a length of 5/, RangeError],
    ['record stores more than plen', withRecordHeader([0, 40, 0, 10]), /stores 32 bytes of a 10-byte packet/, RangeError],
  ];
  for (const [name, buf, message, type] of cases) t.throws(() => parseRtpdump(buf), { name: type.name, message }, name);
  // A capture may store less than the packet (rtpdump -F header): plen > length - 8 is fine.
  const cut = parseRtpdump(withRecordHeader([0, 20, 0x05, 0xdc]));
  t.equal(cut.records[0]!.plen, 1500);
  t.equal(cut.records[0]!.data.length, 12);
});

t.test('openRtpdump / readRtpdump: streaming with bounded memory', async (t) => {
  // ~8 MB: 6000 packets of up to 1400 bytes, a maximal one, RTCP, and a cut tail.
  const packets: In[] = [];
  for (let i = 0; i < 6000; i++) packets.push({ packet: rtp(i, i * 3000, 7, (i * 397) % 1389), offsetMs: i * 33, rtcp: false });
  packets.splice(100, 0, { packet: rtp(1, 2, 7, RTPDUMP_MAX_PACKET_BYTES - 12), offsetMs: 3300, rtcp: false });
  packets.splice(500, 0, { packet: rtcpRr(7), offsetMs: 16500, rtcp: true });
  const whole = dump(START_MS, '127.0.0.1', 6000, packets);
  const file = whole.subarray(0, whole.length - 100);
  const path = join(dir, 'big.rtpdump');
  writeFileSync(path, file);
  const parsed = parseRtpdump(file);
  const f = await openRtpdump(path, { windowBytes: 64 * 1024 });
  t.same(f.header, parseRtpdumpHeader(file));
  const got: RtpdumpRecord[] = [];
  for await (const r of f.records()) got.push(r);
  await f.close();
  await f.close();
  t.equal(got.length, packets.length - 1, 'all complete records');
  t.equal(got.length, parsed.records.length);
  const firstDiff = got.findIndex(
    (r, i) => Buffer.compare(r.data, parsed.records[i]!.data) !== 0 || r.offsetMs !== parsed.records[i]!.offsetMs || r.rtcp !== parsed.records[i]!.rtcp,
  );
  t.equal(firstDiff, -1, 'same records as parseRtpdump');
  t.equal(f.validLength, parsed.validLength);
  t.equal(f.truncated, true);
  t.ok(got[0]!.data.buffer.byteLength < 1024 * 1024, 'records are copies, not views of a file-sized buffer');
  let count = 0;
  for await (const r of readRtpdump(path)) if (r.rtcp) count++;
  t.equal(count, 1, 'readRtpdump: the RTCP record');

  const bad = join(dir, 'bad.rtpdump');
  writeFileSync(bad, 'RIFF....WAVE');
  await t.rejects(openRtpdump(bad), UnsupportedMediaError);
  writeFileSync(bad, '#!rtpplay1.0 1.2.3.4/5\n\0\0\0');
  await t.rejects(openRtpdump(bad), CorruptMediaError);
  const corrupt = whole.slice(0, 2000);
  corrupt.set([0, 3], parseRtpdumpHeader(corrupt).headerLength);
  writeFileSync(bad, corrupt);
  await t.rejects(
    (async () => {
      for await (const _ of readRtpdump(bad)) void _;
    })(),
    { name: 'CorruptMediaError', message: /declares a length of 3/ },
  );
});

// ---------------------------------------------------------------------------
// Wireshark

/**
 * The records as a pcap of Wireshark "exported PDUs" (link type 252): source address
 * and port, and the dissector to use ("rtp" / "rtcp"), which is exactly what
 * Wireshark's own rtpdump reader (wiretap/rtpdump.c, 4.2+) makes of each record.
 */
function exportedPduPcap(file: Uint8Array): Uint8Array {
  const parsed = parseRtpdump(file);
  const tlv = (tag: number, value: Uint8Array): Uint8Array => {
    const padded = (value.length + 3) & ~3;
    const out = new Uint8Array(4 + padded);
    new DataView(out.buffer).setUint16(0, tag);
    new DataView(out.buffer).setUint16(2, padded);
    out.set(value, 4);
    return out;
  };
  const u32 = (n: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };
  const global = new Uint8Array(24);
  const g = new DataView(global.buffer);
  g.setUint32(0, 0xa1b2c3d4, true);
  g.setUint16(4, 2, true);
  g.setUint16(6, 4, true);
  g.setUint32(16, 65535, true);
  g.setUint32(20, 252, true); // LINKTYPE_WIRESHARK_UPPER_PDU
  const parts: Uint8Array[] = [global];
  for (const r of parsed.records) {
    const pdu = concat([
      tlv(24, u32(3)), // port type: UDP
      tlv(20, Uint8Array.from(parsed.source.split('.').map(Number))), // IPv4 source
      tlv(25, u32(parsed.port)), // source port
      tlv(12, Buffer.from(r.rtcp ? 'rtcp' : 'rtp')), // dissector name
      new Uint8Array(4), // end of options
      r.data,
    ]);
    const usec = parsed.start.usec + (r.offsetMs % 1000) * 1000;
    const rec = new Uint8Array(16);
    const v = new DataView(rec.buffer);
    v.setUint32(0, parsed.start.sec + Math.floor(r.offsetMs / 1000) + Math.floor(usec / 1e6), true);
    v.setUint32(4, usec % 1e6, true);
    v.setUint32(8, pdu.length, true);
    v.setUint32(12, pdu.length, true);
    parts.push(rec, pdu);
  }
  return concat(parts);
}

t.test('tshark reads the records as the RTP and RTCP packets written', { skip: skipUnless(hasTshark, 'tshark is not installed: skipping') }, async (t) => {
  const file = dump(START_MS, '127.0.0.1', 40000, session);
  const path = join(dir, 'session.rtpdump');
  writeFileSync(path, file);
  const fields = [
    '-T',
    'fields',
    '-E',
    'separator=,',
    '-e',
    'frame.time_epoch',
    '-e',
    'rtp.seq',
    '-e',
    'rtp.timestamp',
    '-e',
    'rtp.ssrc',
    '-e',
    'rtp.marker',
    '-e',
    'rtp.payload',
    '-e',
    'rtcp.pt',
  ];
  let r = await run('tshark', ['-r', path, ...fields]);
  if (/isn't a capture file in a format/.test(r.stderr)) {
    // Wireshark reads rtpdump files itself from 4.2 on; older ones get the same packets
    // through an exported-PDU capture built from our parse.
    t.comment('this tshark predates rtpdump support (Wireshark 4.2): checking through an exported-PDU capture');
    const pcap = join(dir, 'session.pcap');
    writeFileSync(pcap, exportedPduPcap(file));
    r = await run('tshark', ['-r', pcap, ...fields]);
  }
  t.equal(r.code, 0, r.stderr);
  const rows = r.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  t.equal(rows.length, session.length, 'one packet per record');
  const want = session.map((s) => {
    const time = (1700000000123456 + s.offsetMs * 1000) / 1e6;
    if (s.rtcp) return { time, rtcp: '201' };
    const v = new DataView(s.packet.buffer);
    return {
      time,
      seq: String(v.getUint16(2)),
      ts: String(v.getUint32(4)),
      ssrc: `0x${v.getUint32(8).toString(16).padStart(8, '0')}`,
      marker: s.packet[1]! & 0x80 ? 'True' : 'False',
      payload: Buffer.from(s.packet.subarray(12)).toString('hex'),
    };
  });
  const got = rows.map(([time, seq, ts, ssrc, marker, payload, rtcp]) =>
    rtcp
      ? { time: Number(time), rtcp }
      : { time: Number(time), seq, ts, ssrc, marker: marker === '1' || marker === 'True' ? 'True' : 'False', payload: payload!.replace(/:/g, '') },
  );
  t.same(
    got.map((g) => ({ ...g, time: Math.round(g.time * 1e6) })),
    want.map((w) => ({ ...w, time: Math.round(w.time * 1e6) })),
    'seq, timestamp, ssrc, marker, payload and time of every packet',
  );
});
