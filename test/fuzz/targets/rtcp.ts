/**
 * Shared RTCP input: real compound packets (SR+SDES, SR+SDES+BYE, RR+SDES) as
 * offcast builds them, and a fast-check arbitrary of compound packets whose
 * headers, counts and lengths may or may not agree with the bytes.
 */
import fc from 'fast-check';
import { buildBye, buildReceiverReport, buildSenderReport, senderInfoAt } from '../../../offload/rtcp.js';
import { concat, u16be, u32be } from '../lib.js';

export function rtcpSeeds(): Uint8Array[] {
  const info = senderInfoAt(1_700_000_000_000, 0x11223344, 123456, 50, 60000);
  const block = (ssrc: number) => ({ ssrc, fractionLost: 12, totalLost: -3, highestSeq: 70000, jitter: 40, lsr: 0x12345678, dlsr: 65536 });
  return [
    buildSenderReport(info, 'offcast@fuzz'),
    buildBye(info, 'offcast@fuzz', 'done'),
    buildBye({ ...info, ntpSec: 0, ntpFrac: 0 }, ''),
    buildReceiverReport(0x55667788, 'rx', [block(0x11223344)]),
    buildReceiverReport(0x55667788, 'rx', []),
    buildReceiverReport(
      0x55667788,
      'rx',
      Array.from({ length: 33 }, (_, i) => block(0x11223344 + i)),
    ),
  ].map((b) => new Uint8Array(b));
}

const rtcpPacket = fc
  .record({
    version: fc.oneof(fc.constant(2), fc.integer({ min: 0, max: 3 })),
    padding: fc.boolean(),
    count: fc.integer({ min: 0, max: 31 }),
    pt: fc.oneof(fc.constantFrom(200, 201, 202, 203, 204, 205, 206, 207), fc.integer({ min: 0, max: 255 })),
    words: fc.option(fc.integer({ min: 0, max: 0xffff })),
    ssrc: fc.oneof(fc.constant(0x11223344), fc.integer({ min: 0, max: 0xffffffff })),
    body: fc.uint8Array({ maxLength: 160 }),
  })
  .map((p) => {
    const body = concat([u32be(p.ssrc), p.body]);
    const words = p.words ?? Math.ceil(body.length / 4);
    const padded = new Uint8Array(Math.ceil(body.length / 4) * 4);
    padded.set(body);
    if (p.padding && padded.length > 0) padded[padded.length - 1] = padded.length % 256;
    return concat([new Uint8Array([(p.version << 6) | (p.padding ? 0x20 : 0) | p.count, p.pt]), u16be(words), padded]);
  });

export const rtcpCompound = fc.oneof(fc.array(rtcpPacket, { minLength: 1, maxLength: 5 }).map(concat), fc.uint8Array({ maxLength: 256 }));
