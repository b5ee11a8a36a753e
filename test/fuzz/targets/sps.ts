/** H.264 SPS, PPS and slice headers (storage/h264/sps.ts) on single NAL units. */
import fc from 'fast-check';
import { parsePps, parseSliceHeader, parseSps, type Pps, type Sps } from '../../../storage/h264/sps.js';
import { bytesOf, concat, fixture, isA, seedFile, type Target } from '../lib.js';

/** NAL units of the fixture files (no start codes), types 1, 5, 7, 8 only. */
function nals(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const file of [
    seedFile('tiny.h264'),
    fixture('fixtures/h264/high444-cqm.h264'),
    fixture('fixtures/h264/mbaff.h264').subarray(0, 4000),
    fixture('fixtures/h264/crop-ntsc.h264').subarray(0, 3000),
  ]) {
    let start = -1;
    for (let i = 0; i + 3 <= file.length; i++) {
      if (file[i] === 0 && file[i + 1] === 0 && file[i + 2] === 1) {
        if (start >= 0) out.push(file.slice(start, i > 0 && file[i - 1] === 0 ? i - 1 : i));
        start = i + 3;
        i += 2;
      }
    }
    if (start >= 0) out.push(file.slice(start));
  }
  return out.filter((n) => [1, 5, 7, 8].includes(n[0]! & 0x1f)).map((n) => n.subarray(0, 200));
}

/**
 * Input: one byte picks the NAL type to parse as (SPS, PPS or a slice), then the
 * NAL. Slices and PPSs are parsed against the fixtures' parameter sets.
 */
let sets: { sps: (Sps | undefined)[]; pps: (Pps | undefined)[] } | undefined;
function parameterSets(): { sps: (Sps | undefined)[]; pps: (Pps | undefined)[] } {
  if (sets !== undefined) return sets;
  sets = { sps: [], pps: [] };
  for (const n of nals()) {
    try {
      if ((n[0]! & 0x1f) === 7) {
        const s = parseSps(n);
        sets.sps[s.spsId] ??= s;
      } else if ((n[0]! & 0x1f) === 8) {
        const p = parsePps(n, 1);
        sets.pps[p.ppsId] ??= p;
      }
    } catch {
      // not every fixture NAL (cut to 200 bytes) parses
    }
  }
  return sets;
}

export const target: Target = {
  name: 'sps',
  seeds: () => nals().map((n) => concat([new Uint8Array([n[0]! & 0x1f]), n])),
  arbitrary: fc.tuple(fc.constantFrom(7, 8, 1, 5), fc.uint8Array({ maxLength: 64 })).map(([t, b]) => concat([new Uint8Array([t, 0x60 | t]), b])),
  run(input) {
    if (input.length === 0) return 0;
    const nal = input.subarray(1);
    switch (input[0]! % 4) {
      case 0:
        return bytesOf(parseSps(nal));
      case 1:
        return bytesOf(parsePps(nal, input[0]! & 4 ? 3 : 1));
      default:
        return bytesOf(parseSliceHeader(nal, parameterSets(), { throughRefPicMarking: (input[0]! & 4) !== 0 }));
    }
  },
  // TypeError: not this NAL type; RangeError: values out of range, bits run out.
  expected: (err) => isA(err, 'TypeError', 'RangeError'),
  outputRatio: 64,
};
