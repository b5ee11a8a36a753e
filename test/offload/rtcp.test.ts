import t from 'tap';
import { packets } from 'rtp.js';
import {
  buildReceiverReport,
  readSenderInfo,
  readBye,
  parseRtcp,
  lsrOf,
  dlsrOf,
  ntpToUnixMs,
  totalLost24,
  readTotalLost24,
  SenderClock,
  type ReportBlock,
} from '../../offload/rtcp.js';

const { CompoundPacket, ReceiverReportPacket, SenderReportPacket, SdesPacket, SdesChunk, ByePacket } = packets;

// 2024-01-01T00:00:00Z in NTP seconds (Unix 1704067200 + 2208988800).
const NTP_2024 = 3913056000;
const UNIX_2024_MS = 1704067200000;

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function block(i: number, totalLost: number): ReportBlock {
  return {
    ssrc: (0x80000000 + i) >>> 0,
    fractionLost: (i * 7) % 256,
    totalLost,
    highestSeq: (0xfffe0000 + i) >>> 0,
    jitter: 1000 + i,
    lsr: (0xabcd0000 + i) >>> 0,
    dlsr: 65536 * 2 + i,
  };
}

/** Every field of every block, read with rtp.js, except the cumulative loss (see below). */
function readBlocks(buf: Buffer): { ourSsrc: number[]; blocks: Array<Omit<ReportBlock, 'totalLost'>>; cnames: string[]; types: number[] } {
  const compound = new CompoundPacket(view(buf));
  const out = { ourSsrc: [] as number[], blocks: [] as Array<Omit<ReportBlock, 'totalLost'>>, cnames: [] as string[], types: [] as number[] };
  for (const p of compound.getPackets()) {
    out.types.push(p.getPacketType());
    if (p instanceof ReceiverReportPacket) {
      out.ourSsrc.push(p.getSsrc());
      for (const r of p.getReports()) {
        out.blocks.push({
          ssrc: r.getSsrc(),
          fractionLost: r.getFractionLost(),
          highestSeq: r.getHighestSeqNumber(),
          jitter: r.getJitter(),
          lsr: r.getLastSRTimestamp(),
          dlsr: r.getDelaySinceLastSR(),
        });
      }
    } else if (p instanceof SdesPacket) {
      for (const chunk of p.getChunks()) for (const item of chunk.getItems()) if (item.type === 1) out.cnames.push(item.text);
    }
  }
  return out;
}

/** Cumulative loss straight from the bytes (rtp.js 0.15 reads it with a 12-bit mask). */
function lostAt(buf: Buffer, blockOffset: number): number {
  return readTotalLost24(buf.readUIntBE(blockOffset + 5, 3));
}

t.test('buildReceiverReport: RR + SDES, every field round trips', async (t) => {
  const blocks = [block(0, 5000), block(1, -3), block(2, 0x7fffff), block(3, -0x800000)];
  const buf = buildReceiverReport(0x0badcafe, 'offcast@record', blocks);
  const parsed = readBlocks(buf);
  t.strictSame(parsed.types, [201, 202], 'RR then SDES');
  t.strictSame(parsed.ourSsrc, [0x0badcafe]);
  t.strictSame(parsed.cnames, ['offcast@record']);
  t.strictSame(
    parsed.blocks,
    blocks.map(({ totalLost: _, ...rest }) => rest),
  );
  t.strictSame(
    blocks.map((_, i) => lostAt(buf, 8 + 24 * i)),
    [5000, -3, 0x7fffff, -0x800000],
    "cumulative loss, 24-bit two's complement",
  );
  t.equal(buf.readUIntBE(8 + 24 + 5, 3), 0xfffffd, '-3 is 0xfffffd on the wire');
  t.equal(buf[0]! & 0x1f, 4, 'report count');
  t.equal(buf.length % 4, 0, '32-bit aligned');
});

t.test('buildReceiverReport: clamps and no blocks', async (t) => {
  const wild: ReportBlock = { ssrc: 1, fractionLost: 300, totalLost: 1e9, highestSeq: 2 ** 32 + 5, jitter: 12.6, lsr: 0, dlsr: 0 };
  const buf = buildReceiverReport(7, 'x', [wild, { ...wild, fractionLost: -4, totalLost: -1e9, jitter: -1 }]);
  const parsed = readBlocks(buf);
  t.strictSame(
    parsed.blocks.map((b) => [b.fractionLost, b.highestSeq, b.jitter]),
    [
      [255, 5, 13],
      [0, 5, 0],
    ],
  );
  t.strictSame([lostAt(buf, 8), lostAt(buf, 32)], [0x7fffff, -0x800000]);

  const empty = buildReceiverReport(7, 'empty', []);
  const e = readBlocks(empty);
  t.strictSame(e.types, [201, 202], 'an empty RR still leads the compound packet');
  t.strictSame(e.blocks, []);
  t.equal(empty.readUInt16BE(2), 1, 'RR length: 1 word after the header');
});

t.test('buildReceiverReport: more than 31 blocks take a second RR', async (t) => {
  const blocks = Array.from({ length: 33 }, (_, i) => block(i, i * 1000 - 2000));
  const buf = buildReceiverReport(9, 'many', blocks);
  const parsed = readBlocks(buf);
  t.strictSame(parsed.types, [201, 201, 202]);
  t.strictSame(parsed.ourSsrc, [9, 9]);
  t.equal(parsed.blocks.length, 33);
  t.strictSame(parsed.blocks[32], (({ totalLost: _, ...rest }) => rest)(blocks[32]!));
  const secondRr = 8 + 31 * 24;
  const offsets = blocks.map((_, i) => (i < 31 ? 8 + 24 * i : secondRr + 8 + 24 * (i - 31)));
  t.strictSame(
    offsets.map((o) => lostAt(buf, o)),
    blocks.map((b) => b.totalLost),
  );
});

function senderReport(ssrc: number, ntpSec: number, ntpFrac: number, rtpTs: number, packetsSent: number, octets: number) {
  const sr = new SenderReportPacket();
  sr.setSsrc(ssrc);
  sr.setNtpSeconds(ntpSec);
  sr.setNtpFraction(ntpFrac);
  sr.setRtpTimestamp(rtpTs);
  sr.setPacketCount(packetsSent);
  sr.setOctetCount(octets);
  return sr;
}

function serialize(compound: InstanceType<typeof CompoundPacket>): Uint8Array {
  const ab = new ArrayBuffer(compound.getByteLength());
  compound.serialize(ab, 0);
  return new Uint8Array(ab);
}

t.test('readSenderInfo and readBye', async (t) => {
  const compound = new CompoundPacket();
  compound.addPacket(senderReport(0xf00dfeed, NTP_2024, 0x80000000, 0xfffffff0, 1234, 567890));
  const sdes = new SdesPacket();
  const chunk = new SdesChunk();
  chunk.setSsrc(0xf00dfeed);
  chunk.addItem(1, 'peer');
  sdes.addChunk(chunk);
  compound.addPacket(sdes);
  const bye = new ByePacket();
  bye.addSsrc(0xf00dfeed);
  bye.addSsrc(42);
  bye.setReason('done');
  compound.addPacket(bye);
  const bytes = serialize(compound);

  const expected = [{ ssrc: 0xf00dfeed, ntpSec: NTP_2024, ntpFrac: 0x80000000, rtpTs: 0xfffffff0, packetCount: 1234, octetCount: 567890 }];
  t.strictSame(readSenderInfo(bytes), expected);
  t.strictSame(readBye(bytes), [0xf00dfeed, 42]);
  const parsed = parseRtcp(bytes);
  t.ok(parsed, 'parsed once');
  t.strictSame(readSenderInfo(parsed!), expected, 'from a parsed packet');
  t.strictSame(readBye(parsed!), [0xf00dfeed, 42]);

  // A view in the middle of a larger buffer (as a receive buffer would be).
  const padded = new Uint8Array(bytes.length + 10);
  padded.set(bytes, 5);
  t.strictSame(readSenderInfo(padded.subarray(5, 5 + bytes.length)), expected, 'view with an offset');

  const rrOnly = buildReceiverReport(1, 'rr', [block(0, 1)]);
  t.strictSame(readSenderInfo(rrOnly), [], 'an RR has no sender info');
  t.strictSame(readBye(rrOnly), [], 'and no BYE');
});

t.test('not RTCP, truncated or inconsistent input gives nothing, never throws', async (t) => {
  const sr = new CompoundPacket();
  sr.addPacket(senderReport(1, NTP_2024, 0, 0, 0, 0));
  const good = serialize(sr);
  const lengthTooLong = good.slice();
  lengthTooLong[3] = lengthTooLong[3]! + 1;
  const cases: Array<[label: string, bytes: Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['one byte', Uint8Array.of(0x80)],
    ['three bytes', Uint8Array.of(0x80, 0xc8, 0)],
    ['RTP', Uint8Array.of(0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1)],
    ['STUN', Uint8Array.of(0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42)],
    ['truncated SR', good.subarray(0, 20)],
    ['length field past the end', lengthTooLong],
    ['trailing bytes', Uint8Array.from([...good, 1, 2])],
  ];
  for (const [label, bytes] of cases) {
    t.equal(parseRtcp(bytes), null, `${label}: parseRtcp`);
    t.strictSame(readSenderInfo(bytes), [], `${label}: readSenderInfo`);
    t.strictSame(readBye(bytes), [], `${label}: readBye`);
  }
});

t.test('LSR, DLSR and NTP time', async (t) => {
  t.equal(lsrOf(0x12345678, 0x9abcdef0), 0x56789abc, 'middle 32 bits');
  t.equal(lsrOf(NTP_2024, 0x80000000), ((NTP_2024 & 0xffff) * 65536 + 0x8000) >>> 0);
  t.equal(dlsrOf(1000, 1000), 0);
  t.equal(dlsrOf(1000, 2000), 65536, 'one second');
  t.equal(dlsrOf(1000, 1500), 32768, 'half a second');
  t.equal(dlsrOf(0, 1), 65, '1 ms = 65.536 units, floored');
  t.equal(dlsrOf(2000, 1000), 0, 'clock went backwards: 0');
  t.equal(dlsrOf(0, 70_000_000), 0xffffffff, 'saturates (over 18 h)');
  t.equal(dlsrOf(NaN, 5), 0, 'no SR');

  t.equal(ntpToUnixMs(NTP_2024, 0), UNIX_2024_MS);
  t.equal(ntpToUnixMs(NTP_2024, 0x80000000), UNIX_2024_MS + 500);
  t.equal(ntpToUnixMs(NTP_2024, 0x40000000), UNIX_2024_MS + 250);
  t.equal(ntpToUnixMs(2208988800, 0), 0, 'the Unix epoch');
  t.equal(ntpToUnixMs(0, 0), Date.UTC(2036, 1, 7, 6, 28, 16), 'seconds 0 read as era 1: 2036-02-07T06:28:16Z');

  t.equal(totalLost24(-1), 0xffffff);
  t.equal(totalLost24(1), 1);
  t.equal(totalLost24(1e9), 0x7fffff);
  t.equal(totalLost24(-1e9), 0x800000);
  t.equal(readTotalLost24(0xffffff), -1);
  t.equal(readTotalLost24(0x800000), -0x800000);
  t.equal(readTotalLost24(0x7fffff), 0x7fffff);
});

t.test('SenderClock maps RTP timestamps to wall time from the last SR', async (t) => {
  const clock = new SenderClock();
  t.equal(clock.hasReport, false);
  t.ok(Number.isNaN(clock.ntpMsOf(1000, 8000)), 'NaN before any SR');
  t.equal(clock.dlsr(5), 0, 'DLSR 0 before any SR');
  t.equal(clock.lsr, 0);

  clock.update(NTP_2024, 0x80000000, 1000, 10_000);
  t.equal(clock.ntpMs, UNIX_2024_MS + 500);
  t.equal(clock.lsr, lsrOf(NTP_2024, 0x80000000));
  t.equal(clock.ntpMsOf(1000, 8000), UNIX_2024_MS + 500, 'the SR instant');
  t.equal(clock.ntpMsOf(9000, 8000), UNIX_2024_MS + 1500, '8000 units later at 8 kHz');
  t.equal(clock.ntpMsOf((1000 - 4000) >>> 0, 8000), UNIX_2024_MS, 'before the SR (negative distance, wrapped uint32)');
  t.equal(clock.ntpMsOf(1000 + 90000, 90000), UNIX_2024_MS + 1500, '90 kHz');
  t.equal(clock.dlsr(10_250), 16384, '250 ms since the SR arrived');

  // An SR just before the 32-bit wrap, a packet just after it.
  clock.update(NTP_2024 + 10, 0, 0xffffff00, 20_000);
  t.equal(clock.ntpMsOf(0x100, 48000), UNIX_2024_MS + 10_000 + (512 * 1000) / 48000, 'across the RTP timestamp wrap');
  t.equal(clock.reports, 2);
  t.equal(clock.dlsr(20_000), 0);
});
