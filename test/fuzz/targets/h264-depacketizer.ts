/** The H.264 depacketizer (RFC 6184 mode 1: single NAL, STAP-A, FU-A) fed packet sequences. */
import fc from 'fast-check';
import { H264Depacketizer } from '../../../offload/codecs/h264/depacketizer.js';
import { concat, u16be, type Target } from '../lib.js';
import { forEachPacket, h264Sequences, sequenceOf } from './packets.js';

const nalHeader = fc.integer({ min: 0, max: 255 });
const body = fc.uint8Array({ maxLength: 48 });
/** Payloads shaped like each packet type, with fields that may lie. */
const payload = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 23 }), body).map(([t, b]) => concat([new Uint8Array([0x60 | t]), b])),
  fc
    .array(fc.tuple(fc.integer({ min: 0, max: 80 }), nalHeader, body), { maxLength: 5 })
    .map((nals) => concat([new Uint8Array([0x78]), ...nals.flatMap(([len, h, b]) => [u16be(len), new Uint8Array([h]), b])])),
  fc
    .tuple(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 31 }), body)
    .map(([s, e, t, b]) => concat([new Uint8Array([0x7c, (s ? 0x80 : 0) | (e ? 0x40 : 0) | t]), b])),
  fc.uint8Array({ maxLength: 64 }),
);

export const target: Target = {
  name: 'h264-depacketizer',
  seeds: h264Sequences,
  arbitrary: sequenceOf(payload),
  run(input) {
    const d = new H264Depacketizer();
    let bytes = 0;
    const count = (frames: { nals?: Uint8Array[]; data: Uint8Array }[]): void => {
      for (const f of frames) {
        bytes += f.data.length;
        for (const n of f.nals ?? []) bytes += n.length;
      }
    };
    forEachPacket(input, (p, ts, marker, lost) => count(d.push(p, ts, marker, lost)));
    count(d.flush());
    return bytes;
  },
  // Never throws (its contract); the NAL bytes out are at most the payload bytes in.
  expected: () => false,
  outputRatio: 1,
};
