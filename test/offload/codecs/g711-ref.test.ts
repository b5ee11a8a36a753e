// The G.711 codec against the reference written from the standard's tables
// (test/helpers/g711-ref.ts): every 16-bit input and every code.
import t from 'tap';
import { alawDecodeRef, alawRef, ulawDecodeRef, ulawRef } from '../../helpers/g711-ref.js';
import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from '../../../offload/codecs/g711/g711.js';

t.test('encoding: all 65536 inputs give the reference code', async (t) => {
  const src = Buffer.alloc(65536 * 2);
  for (let i = 0; i < 65536; i++) src.writeInt16LE(i - 32768, 2 * i);
  for (const [law, encode, ref] of [
    ['mu-law', encodeUlaw, ulawRef],
    ['A-law', encodeAlaw, alawRef],
  ] as const) {
    const codes = new Uint8Array(65536);
    encode(src, codes);
    const wrong = [...codes.keys()].filter((i) => codes[i] !== ref(i - 32768));
    t.same(
      wrong.slice(0, 10).map((i) => i - 32768),
      [],
      `${law}: no input encodes differently`,
    );
  }
});

t.test('decoding: all 256 codes give the reference value', async (t) => {
  const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
  for (const [law, decode, ref] of [
    ['mu-law', decodeUlaw, ulawDecodeRef],
    ['A-law', decodeAlaw, alawDecodeRef],
  ] as const) {
    const out = Buffer.alloc(512);
    decode(codes, out);
    const wrong = [...codes].filter((c) => out.readInt16LE(2 * c) !== ref(c));
    t.same(wrong, [], `${law}: every code decodes to its interval's midpoint`);
  }
  t.equal(ulawRef(-1), 0x7f, 'mu-law: -1 is negative zero (0x7F)');
  t.equal(alawRef(-1), 0x55, 'A-law: -1 is negative zero (0x55)');
});
