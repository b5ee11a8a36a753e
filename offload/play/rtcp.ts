/**
 * RTCP for play sessions (sender side): sender reports, BYE, and reading the
 * receiver reports clients send back. Built with rtp.js: it runs every few
 * seconds per track, far from the per-packet path.
 */
import { packets } from 'rtp.js';
import type { ReceiverReportStats } from '../channel.js';
import { ntpMiddle, ntpTime } from '../rtp.js';

const { CompoundPacket, SenderReportPacket, ByePacket, SdesPacket, SdesChunk } = packets;

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

function senderReport(info: SenderInfo, nowMs: number): InstanceType<typeof SenderReportPacket> {
  const sr = new SenderReportPacket();
  const [sec, frac] = ntpTime(nowMs);
  sr.setSsrc(info.ssrc);
  sr.setNtpSeconds(sec);
  sr.setNtpFraction(frac);
  sr.setRtpTimestamp(info.rtpTimestamp >>> 0);
  sr.setPacketCount(info.packetCount >>> 0);
  sr.setOctetCount(info.octetCount >>> 0);
  return sr;
}

/** SR + SDES(CNAME), as RFC 3550 6.1 requires of a compound packet. */
export function buildSenderReport(info: SenderInfo, nowMs: number): Buffer {
  const compound = new CompoundPacket();
  compound.addPacket(senderReport(info, nowMs));
  compound.addPacket(sdes(info.ssrc, info.cname));
  return toBuffer(compound);
}

/** SR + SDES + BYE, sent when a track ends. */
export function buildBye(info: SenderInfo, nowMs: number, reason?: string): Buffer {
  const bye = new ByePacket();
  bye.addSsrc(info.ssrc);
  if (reason !== undefined) bye.setReason(reason);
  const compound = new CompoundPacket();
  compound.addPacket(senderReport(info, nowMs));
  compound.addPacket(sdes(info.ssrc, info.cname));
  compound.addPacket(bye);
  return toBuffer(compound);
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
