/** H.264 Annex B files (storage/h264/annexb.ts openAnnexB): start codes, access units, SPS/PPS, slice headers, POC. */
import fc from 'fast-check';
import { openAnnexB } from '../../../storage/h264/annexb.js';
import { concat, fixture, seedFile, type Target } from '../lib.js';
import { readerTarget } from './reader.js';

const SC = new Uint8Array([0, 0, 0, 1]);

/** NAL units of the seed file, reshuffled, dropped or repeated, with random ones among them. */
function nalsOf(file: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = -1;
  for (let i = 0; i + 3 <= file.length; i++) {
    if (file[i] === 0 && file[i + 1] === 0 && file[i + 2] === 1) {
      if (start >= 0) out.push(file.slice(start, file[i - 1] === 0 ? i - 1 : i));
      start = i + 3;
      i += 2;
    }
  }
  if (start >= 0) out.push(file.slice(start));
  return out;
}
const tiny = nalsOf(seedFile('tiny.h264'));

export const target: Target = readerTarget('annexb', 'h264', openAnnexB, {
  seeds: () => [
    seedFile('tiny.h264'),
    fixture('fixtures/h264/high444-cqm.h264'),
    fixture('fixtures/h264/mbaff.h264').subarray(0, 5000),
    fixture('fixtures/h264/bframes.h264').subarray(0, 5000),
  ],
  arbitrary: fc
    .array(
      fc.oneof(
        fc.nat(tiny.length - 1).map((i) => tiny[i]!),
        fc.uint8Array({ minLength: 1, maxLength: 40 }),
      ),
      { maxLength: 12 },
    )
    .map((nals) => concat(nals.flatMap((n) => [SC, n]))),
});
