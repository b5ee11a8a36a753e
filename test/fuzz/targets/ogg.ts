/** Ogg Opus (storage/ogg.ts openOggOpus): pages, CRCs, lacing, OpusHead/OpusTags, granule positions. */
import fc from 'fast-check';
import { oggCrc32, openOggOpus } from '../../../storage/ogg.js';
import { concat, fixture, seedFile, text, u32le, type Target } from '../lib.js';
import { readerTarget } from './reader.js';

/** Ogg pages with a correct CRC (so the fuzzer gets past it), flags, granules and lacing that may lie. */
function page(flags: number, granule: bigint, serial: number, seq: number, packets: Uint8Array[]): Uint8Array {
  const lacing: number[] = [];
  for (const p of packets) {
    let n = p.length;
    while (n >= 255) {
      lacing.push(255);
      n -= 255;
    }
    lacing.push(n);
  }
  const header = new Uint8Array(27 + lacing.length);
  header.set(text('OggS'), 0);
  header[5] = flags;
  new DataView(header.buffer).setBigInt64(6, granule, true);
  header.set(u32le(serial), 14);
  header.set(u32le(seq), 18);
  header[26] = lacing.length;
  header.set(lacing, 27);
  const out = concat([header, ...packets]);
  out.set(u32le(oggCrc32(out, 0, out.length, 22)), 22);
  return out;
}

const opusHead = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2 }))
  .map(([ch, fam]) => concat([text('OpusHead'), new Uint8Array([1, ch, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, fam])]));

export const target: Target = readerTarget('ogg', 'opus', openOggOpus, {
  seeds: () => [seedFile('tone.opus'), fixture('fixtures/audio/sine-mono-2s.opus').subarray(0, 2000), fixture('fixtures/audio/sine-mono-2s.opus')],
  arbitrary: fc
    .tuple(
      opusHead,
      fc.array(
        fc.tuple(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 3 }), fc.bigInt({ min: -2n, max: 1n << 40n }), fc.integer({ min: 0, max: 7 })),
        { maxLength: 4 },
      ),
    )
    .map(([head, audio]) =>
      concat([
        page(2, 0n, 7, 0, [head]),
        page(0, 0n, 7, 1, [concat([text('OpusTags'), u32le(0), u32le(0)])]),
        ...audio.map(([packets, granule, flags], i) => page(flags & 5, granule, 7, 2 + i, packets)),
      ]),
    ),
});
