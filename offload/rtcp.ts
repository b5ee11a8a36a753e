/**
 * RTCP for both directions. Play and live sessions (sender side) build sender
 * reports and BYE and read the receiver reports their destination sends back;
 * record tracks (receiver side) build receiver reports about the senders they
 * record and read those senders' reports and BYEs. Built and parsed with
 * rtp.js: RTCP runs every few seconds per track, far from the per-packet path,
 * so objects here are fine.
 */
import { packets } from 'rtp.js';
import type { ReceiverReportStats } from './channel.js';
import { NTP_UNIX_OFFSET, ntpMiddle, ntpTime } from './rtp.js';

const { CompoundPacket, ReceiverReportPacket, ReceptionReport, SenderReportPacket, SdesPacket, SdesChunk, ByePacket, isRtcp } = packets;
/** SDES item CNAME (RFC 3550 6.5.1); rtp.js exports its SdesItemType enum as a type only. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment -- the enum's value is not exported
const SDES_CNAME = 1 as packets.SdesItemType;
type Compound = InstanceType<typeof CompoundPacket>;

const TWO_32 = 0x100000000;
/** RFC 3550 6.1: at most 31 report blocks per RR (5-bit count). */
const MAX_BLOCKS_PER_RR = 31;
const RR_HEADER_BYTES = 8;
const REPORT_BLOCK_BYTES = 24;

export interface ReportBlock {
  ssrc: number;
  /** 0..255 (1/256 units). */
  fractionLost: number;
  /** Cumulative loss; clamped to 24-bit signed. */
  totalLost: number;
  /** Extended highest sequence number (32-bit). */
  highestSeq: number;
  /** Interarrival jitter, timestamp units. */
  jitter: number;
  /** Middle 32 bits of the last SR's NTP timestamp, 0 if none. */
  lsr: number;
  /** Delay since that SR in 1/65536 s, 0 if none. */
  dlsr: number;
}

/** The sender info of an SR (RFC 3550 6.4.1): what we send, and what we read from the senders we record. */
export interface SenderInfo {
  ssrc: number;
  ntpSec: number;
  ntpFrac: number;
  rtpTs: number;
  packetCount: number;
  octetCount: number;
}

/** Sender info for a report sent at `nowMs` (performance.now() ms): the NTP time of that instant. */
export function senderInfoAt(nowMs: number, ssrc: number, rtpTs: number, packetCount: number, octetCount: number): SenderInfo {
  const [ntpSec, ntpFrac] = ntpTime(nowMs);
  return { ssrc, ntpSec, ntpFrac, rtpTs, packetCount, octetCount };
}

function toBuffer(p: { getByteLength(): number; serialize(b: ArrayBuffer, o: number): void }): Buffer {
  const ab = new ArrayBuffer(p.getByteLength());
  p.serialize(ab, 0);
  return Buffer.from(ab);
}

function sdes(ssrc: number, cname: string): InstanceType<typeof SdesPacket> {
  const s = new SdesPacket();
  const chunk = new SdesChunk();
  chunk.setSsrc(ssrc >>> 0);
  chunk.addItem(SDES_CNAME, cname);
  s.addChunk(chunk);
  return s;
}

function senderReport(info: SenderInfo): InstanceType<typeof SenderReportPacket> {
  const sr = new SenderReportPacket();
  sr.setSsrc(info.ssrc >>> 0);
  sr.setNtpSeconds(info.ntpSec >>> 0);
  sr.setNtpFraction(info.ntpFrac >>> 0);
  sr.setRtpTimestamp(info.rtpTs >>> 0);
  sr.setPacketCount(info.packetCount >>> 0);
  sr.setOctetCount(info.octetCount >>> 0);
  return sr;
}

/** SR + SDES(CNAME), as RFC 3550 6.1 requires of a compound packet. */
export function buildSenderReport(info: SenderInfo, cname: string): Buffer {
  const compound = new CompoundPacket();
  compound.addPacket(senderReport(info));
  compound.addPacket(sdes(info.ssrc, cname));
  return toBuffer(compound);
}

/** SR + SDES + BYE, sent when a track ends. */
export function buildBye(info: SenderInfo, cname: string, reason?: string): Buffer {
  const bye = new ByePacket();
  bye.addSsrc(info.ssrc >>> 0);
  if (reason !== undefined) bye.setReason(reason);
  const compound = new CompoundPacket();
  compound.addPacket(senderReport(info));
  compound.addPacket(sdes(info.ssrc, cname));
  compound.addPacket(bye);
  return toBuffer(compound);
}

/**
 * RR (one per 31 blocks, an empty one when there are none) + SDES(CNAME), as
 * RFC 3550 6.1 requires of a compound packet. Cumulative loss is written as
 * 24-bit two's complement here: rtp.js 0.15 writes negative values as
 * sign-magnitude and reads back only 12 bits.
 */
export function buildReceiverReport(ourSsrc: number, cname: string, blocks: readonly ReportBlock[]): Buffer {
  const compound = new CompoundPacket();
  let index = 0;
  do {
    const rr = new ReceiverReportPacket();
    rr.setSsrc(ourSsrc >>> 0);
    for (let n = 0; n < MAX_BLOCKS_PER_RR && index < blocks.length; n++, index++) {
      const b = blocks[index]!;
      const report = new ReceptionReport();
      report.setSsrc(b.ssrc >>> 0);
      report.setFractionLost(Math.min(255, Math.max(0, Math.floor(b.fractionLost))));
      report.setHighestSeqNumber(b.highestSeq >>> 0);
      report.setJitter(Math.max(0, Math.round(b.jitter)) >>> 0);
      report.setLastSRTimestamp(b.lsr >>> 0);
      report.setDelaySinceLastSR(b.dlsr >>> 0);
      rr.addReport(report);
    }
    compound.addPacket(rr);
  } while (index < blocks.length);
  compound.addPacket(sdes(ourSsrc, cname));
  const out = toBuffer(compound);
  // Patch cumulative loss into each block: RRs come first, each full but the last.
  let offset = 0;
  for (let i = 0; i < blocks.length; i++) {
    const inRr = i % MAX_BLOCKS_PER_RR;
    if (inRr === 0 && i > 0) offset += RR_HEADER_BYTES + MAX_BLOCKS_PER_RR * REPORT_BLOCK_BYTES;
    const at = offset + RR_HEADER_BYTES + inRr * REPORT_BLOCK_BYTES + 5;
    const lost = totalLost24(blocks[i]!.totalLost);
    out[at] = (lost >>> 16) & 0xff;
    out[at + 1] = (lost >>> 8) & 0xff;
    out[at + 2] = lost & 0xff;
  }
  return out;
}

/** Cumulative loss as the RR's 24-bit two's complement field (clamped, RFC 3550 A.3). */
export function totalLost24(lost: number): number {
  const clamped = lost > 0x7fffff ? 0x7fffff : lost < -0x800000 ? -0x800000 : Math.trunc(lost);
  return clamped & 0xffffff;
}

/** Reads the 24-bit two's complement cumulative loss back as a signed number. */
export function readTotalLost24(field: number): number {
  const v = field & 0xffffff;
  return v & 0x800000 ? v - 0x1000000 : v;
}

/**
 * A compound RTCP packet over `msg` (no copy), or null when it is not RTCP or
 * its lengths don't add up: peers' RTCP is input, not something to throw on.
 */
export function parseRtcp(msg: Uint8Array): Compound | null {
  if (msg.byteLength < 4) return null;
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (!isRtcp(view)) return null;
  try {
    return new CompoundPacket(view);
  } catch {
    return null;
  }
}

function compoundOf(msg: Uint8Array | Compound): Compound | null {
  return msg instanceof CompoundPacket ? msg : parseRtcp(msg);
}

/** The sender info of every SR in a compound packet (raw bytes or parsed once with `parseRtcp`). */
export function readSenderInfo(msg: Uint8Array | Compound): SenderInfo[] {
  const compound = compoundOf(msg);
  const out: SenderInfo[] = [];
  if (compound === null) return out;
  for (const p of compound.getPackets()) {
    if (!(p instanceof SenderReportPacket)) continue;
    out.push({
      ssrc: p.getSsrc() >>> 0,
      ntpSec: p.getNtpSeconds() >>> 0,
      ntpFrac: p.getNtpFraction() >>> 0,
      rtpTs: p.getRtpTimestamp() >>> 0,
      packetCount: p.getPacketCount() >>> 0,
      octetCount: p.getOctetCount() >>> 0,
    });
  }
  return out;
}

/** The SSRCs leaving, from every BYE in a compound packet. */
export function readBye(msg: Uint8Array | Compound): number[] {
  const compound = compoundOf(msg);
  const out: number[] = [];
  if (compound === null) return out;
  for (const p of compound.getPackets()) {
    if (!(p instanceof ByePacket)) continue;
    for (const ssrc of p.getSsrcs()) out.push(ssrc >>> 0);
  }
  return out;
}

/** LSR (RFC 3550 6.4.1): the middle 32 bits of an SR's 64-bit NTP timestamp. */
export function lsrOf(ntpSec: number, ntpFrac: number): number {
  return (((ntpSec & 0xffff) << 16) | (ntpFrac >>> 16)) >>> 0;
}

/** DLSR: time since the SR arrived, in 1/65536 s (both times on one ms clock); 0 if no SR yet. */
export function dlsrOf(srArrivalMs: number, nowMs: number): number {
  if (!Number.isFinite(srArrivalMs)) return 0;
  const units = Math.floor(((nowMs - srArrivalMs) * 65536) / 1000);
  return units <= 0 ? 0 : units >= TWO_32 ? 0xffffffff : units;
}

/**
 * NTP timestamp to ms since the Unix epoch. Seconds below the Unix epoch
 * offset are read as NTP era 1 (from 2036-02-07), as RFC 4330 section 3 suggests.
 */
export function ntpToUnixMs(ntpSec: number, ntpFrac: number): number {
  let sec = ntpSec >>> 0;
  if (sec < NTP_UNIX_OFFSET) sec += TWO_32;
  return (sec - NTP_UNIX_OFFSET) * 1000 + ((ntpFrac >>> 0) / TWO_32) * 1000;
}

/** One sender's clock, from its last SR: maps its RTP timestamps to wall time, and gives LSR/DLSR. */
export class SenderClock {
  /** The last SR's NTP time, ms since the Unix epoch (NaN before any SR). */
  ntpMs = NaN;
  /** The last SR's RTP timestamp. */
  rtpTs = 0;
  /** LSR of the last SR (0 before any). */
  lsr = 0;
  /** When the last SR arrived, on the caller's ms clock. */
  arrivalMs = NaN;
  reports = 0;

  get hasReport(): boolean {
    return this.reports > 0;
  }

  update(ntpSec: number, ntpFrac: number, rtpTs: number, arrivalMs: number): void {
    this.ntpMs = ntpToUnixMs(ntpSec, ntpFrac);
    this.rtpTs = rtpTs >>> 0;
    this.lsr = lsrOf(ntpSec, ntpFrac);
    this.arrivalMs = arrivalMs;
    this.reports++;
  }

  /** DLSR for a report block sent at `nowMs` (0 before any SR). */
  dlsr(nowMs: number): number {
    return this.hasReport ? dlsrOf(this.arrivalMs, nowMs) : 0;
  }

  /**
   * Wall time (ms since the Unix epoch) of RTP timestamp `rtpTs`, from the
   * last SR; NaN before any. The distance is taken as signed 32-bit, so
   * timestamps up to 2^31 units before or after the SR's map correctly
   * across the 32-bit wrap.
   */
  ntpMsOf(rtpTs: number, clockRate: number): number {
    if (!this.hasReport) return NaN;
    const delta = ((rtpTs >>> 0) - this.rtpTs) | 0;
    return this.ntpMs + (delta * 1000) / clockRate;
  }
}

/**
 * Whether `msg` is a well-formed compound RTCP packet (RFC 3550 6.1): one or
 * more packets of version 2 with RTCP packet types (192–223), whose lengths
 * add up to the datagram exactly, and report blocks that fit their packet.
 */
export function isWellFormedRtcp(msg: Uint8Array): boolean {
  if (msg.length < 8) return false;
  let off = 0;
  while (off < msg.length) {
    if (off + 4 > msg.length) return false;
    const b0 = msg[off]!;
    const pt = msg[off + 1]!;
    if (b0 >> 6 !== 2 || pt < 192 || pt > 223) return false;
    const len = (((msg[off + 2]! << 8) | msg[off + 3]!) + 1) * 4;
    if (off + len > msg.length) return false;
    // SR (200): 28 bytes before its report blocks, RR (201): 8; 24 bytes a block.
    const head = pt === 200 ? 28 : pt === 201 ? 8 : -1;
    if (head >= 0 && head + 24 * (b0 & 0x1f) > len) return false;
    off += len;
  }
  return true;
}

/**
 * The report block about `ssrc` in a compound RTCP packet from a receiver (in an
 * RR, or an SR if the client also sends), or null; anything that isn't
 * well-formed RTCP returns null. Report blocks are read from the bytes: rtp.js
 * 0.15 keeps only 12 bits of the 24-bit cumulative loss.
 */
export function readReceptionReport(msg: Uint8Array, ssrc: number, clockRate: number, nowMs: number): ReceiverReportStats | null {
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  let off = 0;
  while (off + 8 <= msg.length) {
    const b0 = msg[off]!;
    if (b0 >> 6 !== 2) return null;
    const count = b0 & 0x1f;
    const pt = msg[off + 1]!;
    const len = (view.getUint16(off + 2) + 1) * 4;
    if (off + len > msg.length) return null;
    // SR (200): 8 + 20 bytes of sender info before the blocks; RR (201): 8.
    const blocksAt = pt === 200 ? off + 28 : pt === 201 ? off + 8 : -1;
    if (blocksAt >= 0) {
      for (let k = 0; k < count; k++) {
        const b = blocksAt + 24 * k;
        if (b + 24 > off + len) return null;
        if (view.getUint32(b) !== ssrc >>> 0) continue;
        const lsr = view.getUint32(b + 16);
        const dlsr = view.getUint32(b + 20);
        let rttMs: number | null = null;
        if (lsr !== 0) {
          // RFC 3550 6.4.1: A - LSR - DLSR, in 1/65536 s.
          const rtt = (ntpMiddle(nowMs) - lsr - dlsr) >>> 0;
          // A wrapped (negative) value means clocks or reports disagree: report none.
          if (rtt < 0x80000000) rttMs = (rtt / 65536) * 1000;
        }
        const jitter = view.getUint32(b + 12);
        // The 24-bit cumulative loss is signed (duplicates can make it negative).
        let totalLost = (msg[b + 5]! << 16) | (msg[b + 6]! << 8) | msg[b + 7]!;
        if (totalLost & 0x800000) totalLost -= 0x1000000;
        return {
          fractionLost: msg[b + 4]! / 256,
          totalLost,
          jitter,
          jitterMs: (jitter / clockRate) * 1000,
          rttMs,
          highestSeq: view.getUint32(b + 8),
          receivedAt: Date.now(),
        };
      }
    }
    off += len;
  }
  return null;
}
