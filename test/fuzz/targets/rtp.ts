/** RTP header validation and the RFC 7983 / RFC 5761 demux of a record port (offload/record/packet.ts). */
import fc from 'fast-check';
import { classify, Drop, Kind, RtpHeader, validateRtp } from '../../../offload/record/packet.js';
import { concat, rawBytes, u16be, u32be, type Target } from '../lib.js';
import { rtpStream } from './packets.js';

const out = new RtpHeader();

/** Header fields with flags and lengths that may or may not agree with the bytes. */
const rtpPacket = fc
  .record({
    b0: fc.oneof(fc.integer({ min: 0x80, max: 0xbf }), fc.integer({ min: 0, max: 255 })),
    b1: fc.integer({ min: 0, max: 255 }),
    seq: fc.integer({ min: 0, max: 0xffff }),
    ts: fc.integer({ min: 0, max: 0xffffffff }),
    ssrc: fc.integer({ min: 0, max: 0xffffffff }),
    csrcs: fc.uint8Array({ maxLength: 64 }),
    ext: fc.option(
      fc.record({ profile: fc.integer({ min: 0, max: 0xffff }), words: fc.integer({ min: 0, max: 0xffff }), body: fc.uint8Array({ maxLength: 64 }) }),
    ),
    payload: fc.uint8Array({ maxLength: 64 }),
    pad: fc.option(fc.integer({ min: 0, max: 255 })),
  })
  .map((p) => {
    const parts = [new Uint8Array([p.b0, p.b1]), u16be(p.seq), u32be(p.ts), u32be(p.ssrc), p.csrcs];
    if (p.ext !== null) parts.push(u16be(p.ext.profile), u16be(p.ext.words), p.ext.body);
    parts.push(p.payload);
    if (p.pad !== null) parts.push(new Uint8Array([p.pad]));
    return concat(parts);
  });

function check(buf: Uint8Array, len: number): void {
  const kind = classify(buf, len);
  if (!(kind >= Kind.Garbage && kind <= Kind.Turn)) throw new Error(`classify gave ${kind}`);
  const drop = validateRtp(buf, len, out);
  if (drop === Drop.None) {
    if (kind !== Kind.Rtp) throw new Error(`valid RTP classified as ${kind}`);
    const end = Math.min(len, buf.length);
    if (out.payloadOffset < 12 || out.payloadLength < 0 || out.payloadOffset + out.payloadLength > end) {
      throw new Error(`payload ${out.payloadOffset}+${out.payloadLength} outside the ${end}-byte datagram`);
    }
  } else if (!(drop > 0 && drop <= Drop.Garbage)) throw new Error(`validateRtp gave ${drop}`);
}

export const target: Target = {
  name: 'rtp',
  seeds: async () => (await rtpStream()).slice(0, 300),
  arbitrary: fc.oneof(rtpPacket, rawBytes),
  run(input) {
    check(input, input.length);
    // A length shorter or longer than the buffer (a receive buffer with a stale tail).
    if (input.length > 0) check(input, input.length - 1 - (input[0]! % input.length));
    check(input, input.length + 7);
    return 0;
  },
  expected: () => false,
};
