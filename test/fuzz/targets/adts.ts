/** ADTS frames (storage/aac.ts parseAdtsFrames), as a recording's .aac track is read back. */
import fc from 'fast-check';
import { adtsHeader, parseAdtsFrames } from '../../../storage/aac.js';
import { concat, isA, seedFile, type Target } from '../lib.js';

export const target: Target = {
  name: 'adts',
  seeds: () => [seedFile('tone.aac'), seedFile('tone.aac').subarray(0, 300)],
  arbitrary: fc
    .array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 40 })), {
      maxLength: 6,
    })
    .map((frames) => concat(frames.flatMap(([p, sri, ch, body]) => [safeHeader(p, sri, ch, body.length), body]))),
  run(input) {
    const { frames, end } = parseAdtsFrames(input);
    if (end > input.length) throw new Error(`end ${end} past the ${input.length}-byte input`);
    return frames.length * 64;
  },
  // TypeError: lost sync; RangeError: a header shorter than itself.
  expected: (err) => isA(err, 'TypeError', 'RangeError'),
  outputRatio: 10,
};

function safeHeader(profile: number, sri: number, ch: number, body: number): Uint8Array {
  try {
    return adtsHeader({ coreObjectType: profile + 1, sampleRateIndex: sri, channelConfiguration: ch }, body);
  } catch {
    return new Uint8Array([0xff, 0xf1, 0x50, 0x80, 0x00, 0x1f, 0xfc]);
  }
}
