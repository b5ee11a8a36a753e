/** AAC AudioSpecificConfig (storage/aac.ts), as it comes from an SDP's fmtp config= or an MP4's esds. */
import fc from 'fast-check';
import { parseAudioSpecificConfig } from '../../../storage/aac.js';
import { bytesOf, isA, type Target } from '../lib.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

export const target: Target = {
  name: 'aac-config',
  // ffmpeg's configs (LC mono 8 kHz with an SBR sync extension, LC stereo 44.1/48 kHz), HE-AAC, HE-AACv2, escape object type, explicit rate.
  seeds: () => ['158856E500', '1190', '1210', '121056E500', '2B8A08', 'EB098800', 'F8E85000', '1788'].map(hex),
  arbitrary: fc.oneof(
    fc
      .tuple(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), fc.uint8Array({ maxLength: 6 }))
      .map(([aot, sri, ch, rest]) => {
        const out = new Uint8Array(2 + rest.length);
        out[0] = (aot << 3) | (sri >> 1);
        out[1] = ((sri & 1) << 7) | (ch << 3);
        out.set(rest, 2);
        return out;
      }),
    fc.uint8Array({ maxLength: 12 }),
  ),
  run(input) {
    return bytesOf(parseAudioSpecificConfig(input));
  },
  // TypeError: values no AAC stream uses; RangeError: the bytes end early.
  expected: (err) => isA(err, 'TypeError', 'RangeError'),
  outputRatio: 16,
};
