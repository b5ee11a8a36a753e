/**
 * RTCP for play sessions (sender side): sender reports, BYE, and reading the
 * receiver reports clients send back. Built with rtp.js: it runs every few
 * seconds per track, far from the per-packet path.
 */
import { packets } from 'rtp.js';
import type { ReceiverReportStats } from '../channel.js';
import { ntpMiddle, ntpTime } from '../rtp.js';

const { CompoundPacket, SenderReportPacket, ByePacket, SdesPacket, SdesChunk, ReceiverReportPacket, isRtcp } = packets;

export interface SenderInfo {
  ssrc: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  cname: string;
}

function toBuffer(p: { getByteLength(): number; serialize(b: ArrayBuffer, o: number): void }): Buffer {
  const ab = new ArrayBuffer(p.getByteLength());
  p.serialize(ab, 0);
  return Buffer.from(ab);
}

function sdes(ssrc: number, cname: string): InstanceType<typeof SdesPacket> {
  const s = new SdesPacket();
  const chunk = new SdesChunk();
  chunk.setSsrc(ssrc);
  chunk.addItem(1, cname);
  s.addChunk(chunk);
  return s;
}

/** SR + SDES(CNAME), as RFC 3550 6.1 requires of a compound packet. */
export function buildSenderReport(info: SenderInfo, nowMs: number): Buffer {
  const sr = new SenderReportPacket();
  const [sec, frac] = ntpTime(nowMs);
  sr.setSsrc(info.ssrc);
  sr.setNtpSeconds(sec);
  sr.setNtpFraction(frac);
  sr.setRtpTimestamp(info.rtpTimestamp >>> 0);
  sr.setPacketCount(info.packetCount >>> 0);
  sr.setOctetCount(info.octetCount >>> 0);
  const compound = new CompoundPacket();
  compound.addPacket(sr);
  compound.addPacket(sdes(info.ssrc, info.cname));
  return toBuffer(compound);
}

/** SR + SDES + BYE, sent when a track ends. */
export function buildBye(info: SenderInfo, nowMs: number, reason?: string): Buffer {
  const sr = new SenderReportPacket();
  const [sec, frac] = ntpTime(nowMs);
  sr.setSsrc(info.ssrc);
  sr.setNtpSeconds(sec);
  sr.setNtpFraction(frac);
  sr.setRtpTimestamp(info.rtpTimestamp >>> 0);
  sr.setPacketCount(info.packetCount >>> 0);
  sr.setOctetCount(info.octetCount >>> 0);
  const bye = new ByePacket();
  bye.addSsrc(info.ssrc);
  if (reason !== undefined) bye.setReason(reason);
  const compound = new CompoundPacket();
  compound.addPacket(sr);
  compound.addPacket(sdes(info.ssrc, info.cname));
  compound.addPacket(bye);
  return toBuffer(compound);
}

/**
 * The report block about `ssrc` in a compound RTCP packet from a receiver (in an
 * RR, or an SR if the client also sends), or null. Not-RTCP input returns null.
 */
export function readReceptionReport(msg: Uint8Array, ssrc: number, clockRate: number, nowMs: number): ReceiverReportStats | null {
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (!isRtcp(view)) return null;
  let compound: InstanceType<typeof CompoundPacket>;
  try {
    compound = new CompoundPacket(view);
  } catch {
    return null;
  }
  for (const p of compound.getPackets()) {
    let reports: ReturnType<InstanceType<typeof ReceiverReportPacket>['getReports']> = [];
    if (p instanceof ReceiverReportPacket || p instanceof SenderReportPacket) reports = p.getReports();
    for (const r of reports) {
      if (r.getSsrc() >>> 0 !== ssrc >>> 0) continue;
      const lsr = r.getLastSRTimestamp() >>> 0;
      const dlsr = r.getDelaySinceLastSR() >>> 0;
      let rttMs: number | null = null;
      if (lsr !== 0) {
        // RFC 3550 6.4.1: A - LSR - DLSR, in 1/65536 s.
        const rtt = (ntpMiddle(nowMs) - lsr - dlsr) >>> 0;
        // A wrapped (negative) value means clocks or reports disagree; don't report nonsense.
        if (rtt < 0x80000000) rttMs = (rtt / 65536) * 1000;
      }
      const jitter = r.getJitter() >>> 0;
      // The 24-bit cumulative loss is signed (duplicates can make it negative).
      let totalLost = r.getTotalLost();
      if (totalLost > 0x7fffff) totalLost -= 0x1000000;
      return {
        fractionLost: r.getFractionLost() / 256,
        totalLost,
        jitter,
        jitterMs: (jitter / clockRate) * 1000,
        rttMs,
        highestSeq: r.getHighestSeqNumber() >>> 0,
        receivedAt: Date.now(),
      };
    }
  }
  return null;
}
