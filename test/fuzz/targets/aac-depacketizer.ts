/** The AAC-hbr depacketizer (RFC 3640 AU headers, fragmented AUs) fed packet sequences. */
import fc from 'fast-check';
import { AacDepacketizer } from '../../../offload/codecs/aac/depacketizer.js';
import { concat, u16be, type Target } from '../lib.js';
import { aacSequences, forEachPacket, sequenceOf } from './packets.js';

/** AU-headers-length, 13/3-bit AU headers (sizes that may lie), data. */
const payload = fc.oneof(
  fc
    .tuple(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 0x1fff }), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 6 }),
      fc.uint8Array({ maxLength: 200 }),
      fc.integer({ min: -3, max: 3 }),
    )
    .map(([headers, data, skew]) => {
      const bits = Math.max(0, headers.length * 16 + skew);
      const hdr = new Uint8Array(headers.length * 2);
      headers.forEach(([size, index], i) => {
        const v = (size << 3) | index;
        hdr[2 * i] = v >> 8;
        hdr[2 * i + 1] = v & 0xff;
      });
      return concat([u16be(bits), hdr, data]);
    }),
  fc.uint8Array({ maxLength: 64 }),
);

export const target: Target = {
  name: 'aac-depacketizer',
  seeds: async () => aacSequences(),
  arbitrary: sequenceOf(payload),
  run(input) {
    const d = new AacDepacketizer({ sizeLength: 13, indexLength: 3, indexDeltaLength: 3 });
    let bytes = 0;
    forEachPacket(input, (p, ts, marker, lost) => {
      for (const f of d.push(p, ts, marker, lost)) bytes += f.data.length;
    });
    for (const f of d.flush()) bytes += f.data.length;
    return bytes;
  },
  // Never throws; the AU bytes out are at most the payload bytes in.
  expected: () => false,
  outputRatio: 1,
};
