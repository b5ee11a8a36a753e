/** WAV (storage/wav.ts openWav): RIFF chunks, fmt, data. */
import fc from 'fast-check';
import { openWav } from '../../../storage/wav.js';
import { concat, seedFile, text, u32le, type Target } from '../lib.js';
import { readerTarget } from './reader.js';

const u16le = (v: number): Uint8Array => new Uint8Array([v & 0xff, (v >> 8) & 0xff]);
const chunk = fc.oneof(
  fc
    .record({
      tag: fc.constantFrom(1, 3, 6, 7, 0xfffe, 2, 0),
      channels: fc.integer({ min: 0, max: 3 }),
      rate: fc.constantFrom(0, 8000, 44100, 48000, 0xffffffff),
      bits: fc.constantFrom(0, 8, 16, 24, 12),
      align: fc.integer({ min: 0, max: 8 }),
      size: fc.constantFrom(16, 18, 40, 14, 0),
    })
    .map((f) => {
      const body = concat([
        u16le(f.tag),
        u16le(f.channels),
        u32le(f.rate),
        u32le(f.rate * f.align),
        u16le(f.align),
        u16le(f.bits),
        new Uint8Array(Math.max(0, f.size - 16)),
      ]);
      return concat([text('fmt '), u32le(f.size), body.subarray(0, f.size)]);
    }),
  fc
    .tuple(fc.integer({ min: 0, max: 64 }), fc.integer({ min: -2, max: 2 }))
    .map(([n, skew]) => concat([text('data'), u32le(Math.max(0, n + skew)), new Uint8Array(n)])),
  fc
    .tuple(fc.constantFrom('LIST', 'bext', 'fact', 'JUNK'), fc.uint8Array({ maxLength: 9 }))
    .map(([id, b]) => concat([text(id), u32le(b.length), b, new Uint8Array(b.length & 1)])),
);

export const target: Target = readerTarget('wav', 'wav', openWav, {
  seeds: () => ['tone-s16.wav', 'tone-ulaw.wav', 'stereo-bext.wav'].map(seedFile),
  arbitrary: fc.array(chunk, { maxLength: 5 }).map((chunks) => {
    const body = concat([text('WAVE'), ...chunks]);
    return concat([text('RIFF'), u32le(body.length), body]);
  }),
});
