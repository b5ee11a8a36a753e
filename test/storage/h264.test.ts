import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { MAX_ACCESS_UNIT_BYTES, MAX_NAL_BYTES, openAnnexB } from '../../storage/h264/annexb.js';
import { BitReader, findStartCode, rbspFromNal, trimTrailingZeros } from '../../storage/h264/nal.js';
import { h264ParamsFromParameterSets, parsePps, parseSliceHeader, parseSps, profileLevelId, vuiFrameRate, type Pps, type Sps } from '../../storage/h264/sps.js';
import type { MediaReader, Sample } from '../../storage/types.js';
import { FIXTURES, ffprobeOrder, run, skipNoFfmpeg, traceHeaders } from '../fixtures/h264/ffmpeg.js';
import {
  BitWriter,
  annexB,
  concat,
  nalUnit,
  spsFields,
  writePps,
  writeSlice,
  writeSps,
  type PpsFields,
  type SliceFields,
  type SpsFields,
} from '../fixtures/h264/synth.js';

const dir = mkdtempSync(join(tmpdir(), 'offcast-h264-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const fixture = (name: string): string => join(FIXTURES, name);
let fileCount = 0;
function tmpFile(bytes: Uint8Array): string {
  const p = join(dir, `f${fileCount++}.h264`);
  writeFileSync(p, bytes);
  return p;
}

/** NAL units of an Annex B buffer, by a naive whole-buffer scan (independent of storage/h264/nal.ts). */
function splitAnnexB(buf: Uint8Array): { nal: Uint8Array; startCode: number }[] {
  const starts: number[] = [];
  for (let i = 0; i + 2 < buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1) starts.push(i);
  }
  return starts.map((s, k) => {
    let end = k + 1 < starts.length ? starts[k + 1]! : buf.length;
    while (end > s + 3 && buf[end - 1] === 0) end--;
    const startCode = s > 0 && buf[s - 1] === 0 ? s - 1 : s;
    return { nal: buf.subarray(s + 3, end), startCode };
  });
}

async function collect(reader: MediaReader): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of reader.samples()) out.push(s);
  return out;
}

async function readAll(path: string, opts?: { frameRate?: number }): Promise<{ reader: MediaReader; samples: Sample[] }> {
  const reader = await openAnnexB(path, opts);
  const samples = await collect(reader);
  await reader.close();
  return { reader, samples };
}

const types = (nals: Uint8Array[]): number[] => nals.map((n) => n[0]! & 0x1f);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Decode indices sorted by pts: the presentation order. */
function presentationOrder(samples: Sample[]): number[] {
  return samples
    .map((s, i) => ({ pts: s.pts, i }))
    .sort((a, b) => a.pts - b.pts)
    .map((x) => x.i);
}

async function rejects422(tt: Test, promise: Promise<unknown>, message: RegExp, what: string): Promise<void> {
  await tt.rejects(promise, { name: 'CorruptMediaError', statusCode: 422, message }, what);
}

// ---------------------------------------------------------------------------
// nal.ts

t.test('findStartCode', async (tt) => {
  const cases: { bytes: number[]; from?: number; want: number }[] = [
    { bytes: [0, 0, 1], want: 0 },
    { bytes: [0, 0, 0, 1], want: 1 },
    { bytes: [5, 0, 0, 1, 9], want: 1 },
    { bytes: [0, 0, 2, 0, 0, 1], want: 3 },
    { bytes: [1, 0, 0, 0, 0, 0, 1], want: 4 },
    { bytes: [0, 0, 3, 1], want: -1 },
    { bytes: [0, 1, 0, 1], want: -1 },
    { bytes: [0, 0], want: -1 },
    { bytes: [0, 0, 1, 0, 0, 1], from: 1, want: 3 },
    { bytes: [0xff, 0xff, 0, 0, 1], want: 2 },
  ];
  for (const c of cases) {
    const buf = Uint8Array.from(c.bytes);
    tt.equal(findStartCode(buf, c.from ?? 0, buf.length), c.want, `${c.bytes.join(' ')} from ${c.from ?? 0}`);
  }
  // The end bound is exclusive: a start code ending past it is not found.
  tt.equal(findStartCode(Uint8Array.from([9, 0, 0, 1]), 0, 3), -1, 'end bound');
  // Against a naive scan over random data.
  let seed = 7;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) % 3;
  const buf = Uint8Array.from({ length: 5000 }, rand);
  const naive: number[] = [];
  for (let i = 0; i + 2 < buf.length; i++) if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1) naive.push(i);
  const found: number[] = [];
  for (let i = findStartCode(buf, 0, buf.length); i >= 0; i = findStartCode(buf, i + 1, buf.length)) found.push(i);
  tt.same(found, naive, 'random 0/1/2 bytes: every start code, in order');
});

t.test('trimTrailingZeros', async (tt) => {
  const buf = Uint8Array.from([0x65, 1, 2, 0, 0, 0]);
  tt.equal(trimTrailingZeros(buf, 0, 6), 3);
  tt.equal(trimTrailingZeros(buf, 3, 6), 3, 'all zeros: empty');
  tt.equal(trimTrailingZeros(buf, 0, 2), 2);
});

t.test('rbspFromNal removes emulation prevention', async (tt) => {
  const cases: { nal: number[]; want: number[]; view: boolean }[] = [
    { nal: [0x67, 1, 2, 3], want: [1, 2, 3], view: true },
    { nal: [0x67, 0, 0, 3, 1], want: [0, 0, 1], view: false },
    { nal: [0x67, 0, 0, 3, 0, 0, 3, 0], want: [0, 0, 0, 0, 0], view: false },
    { nal: [0x67, 0, 0, 3], want: [0, 0], view: false },
    { nal: [0x67, 0, 3, 0, 3], want: [0, 3, 0, 3], view: true },
    { nal: [0x67, 0, 0, 3, 3], want: [0, 0, 3], view: false },
    { nal: [0x67], want: [], view: true },
  ];
  for (const c of cases) {
    const nal = Uint8Array.from(c.nal);
    const rbsp = rbspFromNal(nal);
    tt.same([...rbsp], c.want, c.nal.join(' '));
    tt.equal(rbsp.buffer === nal.buffer, c.view, `${c.nal.join(' ')}: ${c.view ? 'a view' : 'a copy'}`);
  }
  tt.same([...rbspFromNal(Uint8Array.from([0x67, 0, 0, 3, 1, 0, 0, 3, 2]), 1, 5)], [0, 0, 1], 'limit');
  tt.same([...rbspFromNal(Uint8Array.from([0, 0, 3, 1]), 0)], [0, 0, 1], 'headerBytes 0');
});

t.test('BitReader: exp-Golomb and fixed-width fields', async (tt) => {
  const values = [0, 1, 2, 3, 4, 7, 8, 254, 255, 65535, 2 ** 20, 2 ** 31, 2 ** 32 - 2];
  const w = new BitWriter();
  for (const v of values) w.ue(v);
  const signed = [0, 1, -1, 2, -2, 100, -100, 2 ** 30, -(2 ** 30)];
  for (const v of signed) w.se(v);
  w.u(32, 0xdeadbeef).u(3, 5).bit(1);
  const r = new BitReader(w.trailing().done());
  for (const v of values) tt.equal(r.ue(), v, `ue ${v}`);
  for (const v of signed) tt.equal(r.se(), v, `se ${v}`);
  tt.equal(r.u(32), 0xdeadbeef, 'u(32) stays unsigned');
  tt.equal(r.u(3), 5);
  tt.equal(r.flag(), true);
  tt.equal(r.moreRbspData(), false, 'only the stop bit left');
  tt.throws(() => r.u(16), RangeError, 'past the end');

  // Known codes from H.264 Table 9-2: 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3.
  const k = new BitReader(Uint8Array.from([0b1_010_011_0, 0b0100_0000]));
  tt.same([k.ue(), k.ue(), k.ue(), k.ue()], [0, 1, 2, 3], 'Table 9-2');
  tt.throws(() => new BitReader(Uint8Array.from([0, 0, 0, 0, 0])).ue(), RangeError, 'more than 31 leading zeros');
  tt.throws(() => new BitReader(Uint8Array.from([0])).ue(), RangeError, 'code cut by the end');
  tt.throws(() => new BitReader(Uint8Array.from([0b0100_0000])).ueMax(0, 'x'), /x = 1, more than 0/, 'ueMax');
  const m = new BitReader(Uint8Array.from([0b1100_0000, 0]));
  m.u1();
  tt.equal(m.moreRbspData(), false, 'trailing zero byte (cabac_zero_word) is not data');
  const m2 = new BitReader(Uint8Array.from([0b1100_0000]));
  tt.equal(m2.moreRbspData(), true, 'data bit before the stop bit');
});

// ---------------------------------------------------------------------------
// Fixtures: what each one is (see test/fixtures/h264/make.sh).

interface FixtureSpec {
  file: string;
  frames: number;
  keyframes: number[];
  profileLevelId: string;
  width: number;
  height: number;
  fps: { num: number; den: number };
  /** Frames of reorder delay the reader picks (pts of the first frame / interval). */
  reorder: number;
  sps: Partial<Sps>;
}

const FIXTURE_SPECS: FixtureSpec[] = [
  {
    file: 'bframes.h264',
    frames: 50,
    keyframes: [0, 25],
    profileLevelId: '64000d',
    width: 320,
    height: 240,
    fps: { num: 25, den: 1 },
    reorder: 2,
    sps: { profileIdc: 100, picOrderCntType: 0, frameMbsOnly: true, picWidthInMbs: 20, picHeightInMapUnits: 15 },
  },
  {
    file: 'baseline.h264',
    frames: 25,
    keyframes: [0, 10, 20],
    profileLevelId: '42c00b',
    width: 176,
    height: 144,
    fps: { num: 25, den: 1 },
    reorder: 0,
    sps: { profileIdc: 66, constraintFlags: 0xc0, picOrderCntType: 2 },
  },
  {
    file: 'crop-ntsc.h264',
    frames: 30,
    keyframes: [0, 12, 24],
    profileLevelId: '64000d',
    width: 200,
    height: 100,
    fps: { num: 30000, den: 1001 },
    reorder: 2,
    sps: { picWidthInMbs: 13, picHeightInMapUnits: 7, crop: { left: 0, right: 4, top: 0, bottom: 6 } },
  },
  {
    file: 'high444-cqm.h264',
    frames: 10,
    keyframes: [0],
    profileLevelId: 'f4000a',
    width: 64,
    height: 64,
    fps: { num: 25, den: 1 },
    reorder: 2,
    sps: { profileIdc: 244, chromaFormatIdc: 3, chromaArrayType: 3 },
  },
  {
    file: 'mbaff.h264',
    frames: 15,
    keyframes: [0],
    profileLevelId: '640015',
    width: 160,
    height: 120,
    fps: { num: 25, den: 1 },
    reorder: 1,
    sps: { frameMbsOnly: false, mbAdaptiveFrameField: true, picHeightInMapUnits: 4, crop: { left: 0, right: 0, top: 0, bottom: 2 } },
  },
];

function firstOfType(file: string, type: number): Uint8Array {
  const nal = splitAnnexB(readFileSync(file)).find((n) => (n.nal[0]! & 0x1f) === type);
  if (!nal) throw new Error(`no NAL type ${type} in ${file}`);
  return Uint8Array.from(nal.nal);
}

// ---------------------------------------------------------------------------
// sps.ts

t.test('SPS of the fixtures', async (tt) => {
  for (const f of FIXTURE_SPECS) {
    const nal = firstOfType(fixture(f.file), 7);
    const sps = parseSps(nal);
    tt.match(sps, f.sps, `${f.file}: fields`);
    tt.equal(sps.width, f.width, `${f.file}: width`);
    tt.equal(sps.height, f.height, `${f.file}: height`);
    tt.equal(profileLevelId(nal), f.profileLevelId, `${f.file}: profile-level-id`);
    tt.same(vuiFrameRate(sps), f.fps, `${f.file}: VUI frame rate as an exact fraction`);
    // The parse is complete: writing the parsed fields back gives the same bytes.
    tt.equal(hex(writeSps(sps)), hex(nal), `${f.file}: write(parse(sps)) is byte-exact`);
    // The RBSP (from profile_idc on) parses the same.
    tt.same(parseSps(nal.subarray(1)), sps, `${f.file}: RBSP input`);
  }
  const ntsc = parseSps(firstOfType(fixture('crop-ntsc.h264'), 7));
  tt.match(ntsc.vui, {
    timing: { numUnitsInTick: 1001, timeScale: 60000, fixedFrameRate: false },
    nalHrd: { cpbCount: 1, bitRateScale: 2, cpbSizeScale: 4, bitRates: [3125 * 256], cpbSizes: [3125 * 256], cbr: [false] },
    bitstreamRestriction: { maxNumReorderFrames: 2, maxDecFrameBuffering: 4 },
  });
  tt.equal(ntsc.vui?.vclHrd, undefined);
});

t.test('SPS/PPS fields agree with ffmpeg trace_headers', { skip: skipNoFfmpeg }, async (tt) => {
  const spsNames: [string, (s: Sps) => number | boolean | undefined][] = [
    ['profile_idc', (s) => s.profileIdc],
    ['level_idc', (s) => s.levelIdc],
    ['seq_parameter_set_id', (s) => s.spsId],
    ['chroma_format_idc', (s) => s.chromaFormatIdc],
    ['bit_depth_luma_minus8', (s) => s.bitDepthLuma - 8],
    ['log2_max_frame_num_minus4', (s) => s.log2MaxFrameNum - 4],
    ['pic_order_cnt_type', (s) => s.picOrderCntType],
    ['max_num_ref_frames', (s) => s.maxNumRefFrames],
    ['pic_width_in_mbs_minus1', (s) => s.picWidthInMbs - 1],
    ['pic_height_in_map_units_minus1', (s) => s.picHeightInMapUnits - 1],
    ['frame_mbs_only_flag', (s) => s.frameMbsOnly],
    ['frame_crop_right_offset', (s) => s.crop.right],
    ['frame_crop_bottom_offset', (s) => s.crop.bottom],
    ['num_units_in_tick', (s) => s.vui?.timing?.numUnitsInTick],
    ['time_scale', (s) => s.vui?.timing?.timeScale],
    ['max_num_reorder_frames', (s) => s.vui?.bitstreamRestriction?.maxNumReorderFrames],
    ['max_dec_frame_buffering', (s) => s.vui?.bitstreamRestriction?.maxDecFrameBuffering],
  ];
  const ppsNames: [string, (p: Pps) => number | boolean | undefined][] = [
    ['pic_parameter_set_id', (p) => p.ppsId],
    ['entropy_coding_mode_flag', (p) => p.entropyCodingMode],
    ['bottom_field_pic_order_in_frame_present_flag', (p) => p.bottomFieldPicOrderInFramePresent],
    ['num_ref_idx_l0_default_active_minus1', (p) => p.numRefIdxL0DefaultActive - 1],
    ['weighted_bipred_idc', (p) => p.weightedBipredIdc],
    ['pic_init_qp_minus26', (p) => p.picInitQp - 26],
    ['chroma_qp_index_offset', (p) => p.chromaQpIndexOffset],
    ['redundant_pic_cnt_present_flag', (p) => p.redundantPicCntPresent],
    ['transform_8x8_mode_flag', (p) => p.transform8x8Mode],
    ['pic_scaling_matrix_present_flag', (p) => p.picScalingMatrixPresent],
    ['second_chroma_qp_index_offset', (p) => p.secondChromaQpIndexOffset],
  ];
  const num = (v: number | boolean | undefined): number | undefined => (typeof v === 'boolean' ? Number(v) : v);
  for (const f of FIXTURE_SPECS) {
    const file = fixture(f.file);
    const sections = traceHeaders(file).flatMap((p) => p.sections);
    const spsTrace = sections.find((s) => s.fields.get('nal_unit_type') === 7)!;
    const ppsTrace = sections.find((s) => s.fields.get('nal_unit_type') === 8)!;
    const sps = parseSps(firstOfType(file, 7));
    const pps = parsePps(firstOfType(file, 8), sps.chromaFormatIdc);
    // Elements absent from the trace were not coded: the parser must have the inferred value.
    const inferred: Record<string, number> = { chroma_format_idc: 1, bit_depth_luma_minus8: 0, frame_crop_right_offset: 0, frame_crop_bottom_offset: 0 };
    for (const [name, get] of spsNames) tt.equal(num(get(sps)), spsTrace.fields.get(name) ?? inferred[name], `${f.file}: SPS ${name}`);
    for (const [name, get] of ppsNames) tt.equal(num(get(pps)), ppsTrace.fields.get(name), `${f.file}: PPS ${name}`);
  }
});

t.test('SPS round trips through the writer: synthetic cases', async (tt) => {
  // delta_scale values that never reach nextScale 0 (which would end the list early).
  const alternating = (n: number, d: number): number[] => Array.from({ length: n }, (_, j) => (j % 2 ? -d : d));
  const cases: { name: string; fields: SpsFields; width: number; height: number }[] = [
    { name: 'no VUI', fields: spsFields(), width: 320, height: 240 },
    {
      name: 'baseline (no chroma fields)',
      fields: spsFields({ profileIdc: 66, constraintFlags: 0xe0, picOrderCntType: 2, log2MaxPicOrderCntLsb: 0 }),
      width: 320,
      height: 240,
    },
    {
      name: '4:2:0 cropping 1080p',
      fields: spsFields({ picWidthInMbs: 120, picHeightInMapUnits: 68, crop: { left: 0, right: 0, top: 0, bottom: 4 } }),
      width: 1920,
      height: 1080,
    },
    {
      name: '4:2:2 cropping (CropUnitY 1)',
      fields: spsFields({ profileIdc: 122, chromaFormatIdc: 2, crop: { left: 1, right: 2, top: 3, bottom: 4 } }),
      width: 320 - 2 * 3,
      height: 240 - 7,
    },
    {
      name: '4:4:4 cropping (CropUnitX 1)',
      fields: spsFields({ profileIdc: 244, chromaFormatIdc: 3, crop: { left: 1, right: 2, top: 3, bottom: 4 } }),
      width: 320 - 3,
      height: 240 - 7,
    },
    {
      name: 'separate colour planes (ChromaArrayType 0)',
      fields: spsFields({ profileIdc: 244, chromaFormatIdc: 3, separateColourPlane: true, crop: { left: 1, right: 0, top: 1, bottom: 0 } }),
      width: 319,
      height: 239,
    },
    {
      name: 'monochrome, field coding (CropUnitY 2)',
      fields: spsFields({ chromaFormatIdc: 0, frameMbsOnly: false, picHeightInMapUnits: 8, crop: { left: 0, right: 0, top: 0, bottom: 4 } }),
      width: 320,
      height: 256 - 8,
    },
    {
      name: '4:2:0 field coding (CropUnitY 4)',
      fields: spsFields({ frameMbsOnly: false, mbAdaptiveFrameField: true, picHeightInMapUnits: 8, crop: { left: 0, right: 0, top: 0, bottom: 2 } }),
      width: 320,
      height: 248,
    },
    {
      name: 'high bit depth, scaling lists (incl. a list ending in nextScale 0)',
      fields: spsFields({
        profileIdc: 110,
        bitDepthLuma: 10,
        bitDepthChroma: 10,
        seqScalingMatrixPresent: true,
        scalingDeltas: [[-8], undefined, Array<number>(16).fill(1), undefined, undefined, undefined, alternating(64, 5), [3, -11]],
      }),
      width: 320,
      height: 240,
    },
    {
      name: '4:4:4 with 12 scaling lists',
      fields: spsFields({
        profileIdc: 244,
        chromaFormatIdc: 3,
        seqScalingMatrixPresent: true,
        scalingDeltas: Array.from({ length: 12 }, (_, i) => alternating(i < 6 ? 16 : 64, i + 1)),
      }),
      width: 320,
      height: 240,
    },
    {
      name: 'POC type 1 with a cycle',
      fields: spsFields({ picOrderCntType: 1, log2MaxPicOrderCntLsb: 0, offsetForNonRefPic: -3, offsetForTopToBottomField: 1, offsetForRefFrame: [2, 4, -6] }),
      width: 320,
      height: 240,
    },
    {
      name: 'full VUI',
      fields: spsFields({
        vui: {
          aspectRatioIdc: 255,
          sarWidth: 4,
          sarHeight: 3,
          overscanAppropriate: true,
          videoFormat: 5,
          videoFullRange: true,
          colourPrimaries: 1,
          transferCharacteristics: 1,
          matrixCoefficients: 1,
          chromaSampleLocTop: 2,
          chromaSampleLocBottom: 2,
          timing: { numUnitsInTick: 1001, timeScale: 48000, fixedFrameRate: true },
          vclHrd: {
            cpbCount: 2,
            bitRateScale: 0,
            cpbSizeScale: 0,
            bitRates: [64 * 10, 64 * 20],
            cpbSizes: [16 * 10, 16 * 20],
            cbr: [true, false],
            initialCpbRemovalDelayLength: 24,
            cpbRemovalDelayLength: 24,
            dpbOutputDelayLength: 24,
            timeOffsetLength: 24,
          },
          lowDelayHrd: true,
          picStructPresent: true,
          bitstreamRestriction: {
            motionVectorsOverPicBoundaries: true,
            maxBytesPerPicDenom: 2,
            maxBitsPerMbDenom: 1,
            log2MaxMvLengthHorizontal: 16,
            log2MaxMvLengthVertical: 16,
            maxNumReorderFrames: 3,
            maxDecFrameBuffering: 5,
          },
        },
      }),
      width: 320,
      height: 240,
    },
  ];
  for (const c of cases) {
    const nal = writeSps(c.fields);
    const sps = parseSps(nal);
    const { scalingDeltas: _, ...expected } = c.fields;
    tt.match(sps, expected, `${c.name}: fields`);
    tt.equal(sps.width, c.width, `${c.name}: width`);
    tt.equal(sps.height, c.height, `${c.name}: height`);
    if (!c.fields.seqScalingMatrixPresent) tt.equal(hex(writeSps(sps)), hex(nal), `${c.name}: byte-exact round trip`);
  }
  tt.same(vuiFrameRate(parseSps(writeSps(cases.at(-1)!.fields))), { num: 24000, den: 1001 }, 'time_scale 48000 / (2*1001) reduced');
  tt.equal(vuiFrameRate(parseSps(writeSps(spsFields()))), undefined, 'no VUI: no frame rate');
});

t.test('SPS errors', async (tt) => {
  const good = firstOfType(fixture('crop-ntsc.h264'), 7);
  // Every prefix either fails with RangeError or lost only trailing bits and parses the same.
  const full = parseSps(good);
  let failures = 0;
  for (let n = 1; n < good.length; n++) {
    try {
      tt.same(parseSps(good.subarray(0, n)), full, `prefix of ${n} bytes that parses is complete`);
    } catch (err) {
      tt.type(err, RangeError, `prefix of ${n} bytes: RangeError`);
      failures++;
    }
  }
  tt.ok(failures >= good.length - 2, `all but the stop-bit byte are needed (${failures} of ${good.length - 1} prefixes fail)`);

  tt.throws(() => parseSps(firstOfType(fixture('bframes.h264'), 8)), TypeError, 'a PPS NAL');
  tt.throws(() => parseSps(Uint8Array.from([0x65, 0x88])), /NAL unit type 5 is not an SPS/, 'a slice NAL');
  tt.throws(() => parseSps(new Uint8Array(0)), TypeError, 'empty');
  tt.throws(() => parseSps(Uint8Array.from([0xe7, 0x42])), TypeError, 'forbidden bit and no known profile');
  tt.throws(() => parsePps(good), TypeError, 'parsePps of an SPS');
  tt.throws(() => parsePps(Uint8Array.from([0x88, 0x80])), TypeError, 'parsePps with forbidden bit');

  const bad: { name: string; fields: SpsFields; message: RegExp }[] = [
    { name: 'sps id 32', fields: spsFields({ spsId: 32 }), message: /seq_parameter_set_id = 32/ },
    { name: 'poc type 3', fields: spsFields({ picOrderCntType: 3 }), message: /pic_order_cnt_type = 3/ },
    { name: 'crop everything', fields: spsFields({ crop: { left: 80, right: 80, top: 0, bottom: 0 } }), message: /frame cropping/ },
    { name: 'huge width', fields: spsFields({ picWidthInMbs: 5000 }), message: /pic_width_in_mbs_minus1/ },
    {
      name: 'reorder > dec buffering',
      fields: spsFields({
        vui: {
          picStructPresent: false,
          bitstreamRestriction: {
            motionVectorsOverPicBoundaries: true,
            maxBytesPerPicDenom: 0,
            maxBitsPerMbDenom: 0,
            log2MaxMvLengthHorizontal: 9,
            log2MaxMvLengthVertical: 9,
            maxNumReorderFrames: 4,
            maxDecFrameBuffering: 2,
          },
        },
      }),
      message: /max_num_reorder_frames = 4 exceeds/,
    },
  ];
  for (const b of bad) tt.throws(() => parseSps(writeSps(b.fields)), { name: 'RangeError', message: b.message }, b.name);

  const timing = (numUnitsInTick: number, timeScale: number): Sps =>
    parseSps(writeSps(spsFields({ vui: { picStructPresent: false, timing: { numUnitsInTick, timeScale, fixedFrameRate: false } } })));
  tt.throws(() => vuiFrameRate(timing(0, 50)), /num_units_in_tick = 0/, 'num_units_in_tick 0');
  tt.throws(() => vuiFrameRate(timing(1, 0)), /time_scale = 0/, 'time_scale 0');
  tt.throws(() => vuiFrameRate(timing(1, 2000)), /gives 1000 fps/, '1000 fps');
  tt.throws(() => vuiFrameRate(timing(1, 1)), /gives 0.5 fps/, '0.5 fps');
  tt.same(vuiFrameRate(timing(1, 480)), { num: 240, den: 1 }, '240 fps is allowed');
  tt.same(vuiFrameRate(timing(1001, 120000)), { num: 60000, den: 1001 }, '59.94');
});

t.test('profileLevelId and h264ParamsFromParameterSets', async (tt) => {
  const sps = firstOfType(fixture('crop-ntsc.h264'), 7);
  const pps = firstOfType(fixture('crop-ntsc.h264'), 8);
  const params = h264ParamsFromParameterSets([sps], [pps]);
  tt.same(params, { sps: [sps], pps: [pps], profileLevelId: '64000d', width: 200, height: 100, frameRate: 30000 / 1001 });
  tt.equal(params.sps[0], sps, 'kept, not copied');
  tt.equal(profileLevelId(writeSps(spsFields({ profileIdc: 77, constraintFlags: 0x40, levelIdc: 31 }))), '4d401f');
  const noTiming = h264ParamsFromParameterSets([writeSps(spsFields())], [writePps({ ppsId: 0, spsId: 0 })]);
  tt.notOk('frameRate' in noTiming, 'no VUI timing: no frameRate');
  const absurd = writeSps(spsFields({ vui: { picStructPresent: false, timing: { numUnitsInTick: 1, timeScale: 100000, fixedFrameRate: false } } }));
  tt.notOk('frameRate' in h264ParamsFromParameterSets([absurd], [pps]), 'absurd VUI rate left out (the container times the track)');
  tt.throws(() => h264ParamsFromParameterSets([], [pps]), RangeError);
  tt.throws(() => h264ParamsFromParameterSets([sps], []), RangeError);
  tt.throws(() => h264ParamsFromParameterSets([pps], [pps]), TypeError);
  tt.throws(() => profileLevelId(Uint8Array.from([0x67, 0x64])), RangeError, 'too short');
});

t.test('PPS parsing', async (tt) => {
  const cqm = firstOfType(fixture('high444-cqm.h264'), 8);
  tt.match(parsePps(cqm, 3), { ppsId: 0, spsId: 0, entropyCodingMode: true, transform8x8Mode: true, picScalingMatrixPresent: true });
  tt.equal(parsePps(cqm).transform8x8Mode, undefined, 'tail skipped without the chroma format');
  const p = parsePps(
    writePps({
      ppsId: 200,
      spsId: 31,
      bottomFieldPicOrderInFramePresent: true,
      redundantPicCntPresent: true,
      numRefIdxL0DefaultActive: 32,
      transform8x8: true,
    }),
    1,
  );
  tt.match(p, {
    ppsId: 200,
    spsId: 31,
    bottomFieldPicOrderInFramePresent: true,
    redundantPicCntPresent: true,
    numRefIdxL0DefaultActive: 32,
    transform8x8Mode: true,
    secondChromaQpIndexOffset: -2,
  });
  const noTail = parsePps(writePps({ ppsId: 1, spsId: 0 }), 1);
  tt.equal(noTail.transform8x8Mode, undefined, 'no more_rbsp_data: no tail');
  const w = new BitWriter().ue(256).ue(0);
  tt.throws(() => parsePps(nalUnit(3, 8, w.trailing().done())), /pic_parameter_set_id = 256/);
  // Slice groups (FMO, Baseline) are skipped over to reach the fields after them.
  for (const sliceGroups of [
    { count: 3, mapType: 0 },
    { count: 4, mapType: 2 },
    { count: 2, mapType: 4 },
    { count: 2, mapType: 1 },
    { count: 5, mapType: 6, mapUnits: 99 },
  ]) {
    const fmo = parsePps(writePps({ ppsId: 3, spsId: 0, sliceGroups, numRefIdxL0DefaultActive: 5, redundantPicCntPresent: true }));
    tt.match(
      fmo,
      { ppsId: 3, numSliceGroups: sliceGroups.count, numRefIdxL0DefaultActive: 5, redundantPicCntPresent: true },
      `slice_group_map_type ${sliceGroups.mapType}`,
    );
  }
  const truncated = firstOfType(fixture('bframes.h264'), 8).subarray(0, 2);
  tt.throws(() => parsePps(truncated), RangeError, 'truncated PPS');
});

t.test('slice headers agree with ffmpeg trace_headers', { skip: skipNoFfmpeg }, async (tt) => {
  const names: [string, keyof ReturnType<typeof parseSliceHeader>][] = [
    ['first_mb_in_slice', 'firstMbInSlice'],
    ['slice_type', 'sliceType'],
    ['pic_parameter_set_id', 'ppsId'],
    ['frame_num', 'frameNum'],
    ['field_pic_flag', 'fieldPic'],
    ['idr_pic_id', 'idrPicId'],
    ['pic_order_cnt_lsb', 'picOrderCntLsb'],
  ];
  for (const f of FIXTURE_SPECS) {
    const file = fixture(f.file);
    const trace = traceHeaders(file)
      .flatMap((p) => p.sections)
      .filter((s) => [1, 5].includes(s.fields.get('nal_unit_type')!));
    const sets = { sps: [] as Sps[], pps: [] as Pps[] };
    const mine: ReturnType<typeof parseSliceHeader>[] = [];
    for (const { nal } of splitAnnexB(readFileSync(file))) {
      const type = nal[0]! & 0x1f;
      if (type === 7) sets.sps[parseSps(nal).spsId] = parseSps(nal);
      if (type === 8) sets.pps[parsePps(nal).ppsId] = parsePps(nal);
      if (type === 1 || type === 5) mine.push(parseSliceHeader(nal, sets, { throughRefPicMarking: true }));
    }
    tt.equal(mine.length, trace.length, `${f.file}: slice count`);
    let mismatches = 0;
    for (let i = 0; i < mine.length; i++) {
      for (const [name, key] of names) {
        const want = trace[i]!.fields.get(name) ?? 0;
        if (Number(mine[i]![key]) !== want) {
          mismatches++;
          tt.fail(`${f.file} slice ${i}: ${name} = ${Number(mine[i]![key])}, ffmpeg says ${want}`);
        }
      }
      const mmco5 = trace[i]!.fields.get('memory_management_control_operation[0]') === 5;
      if (mine[i]!.mmco5 !== mmco5) tt.fail(`${f.file} slice ${i}: mmco5`);
    }
    tt.equal(mismatches, 0, `${f.file}: ${mine.length} slice headers match`);
  }
});

t.test('slice header errors', async (tt) => {
  const sps = spsFields();
  const pps: PpsFields = { ppsId: 0, spsId: 0 };
  const sets = { sps: [parseSps(writeSps(sps))], pps: [parsePps(writePps(pps))] };
  const idr = writeSlice({ nalType: 5 }, sps, pps);
  tt.match(parseSliceHeader(idr, sets), { idr: true, sliceType: 7, nalRefIdc: 3 });
  tt.throws(() => parseSliceHeader(idr, { sps: [], pps: [] }), /PPS 0, which has not been seen/);
  tt.throws(() => parseSliceHeader(idr, { sps: [], pps: sets.pps }), /SPS 0, which has not been seen/);
  tt.throws(() => parseSliceHeader(writeSps(sps), sets), TypeError, 'an SPS is not a slice');
  tt.throws(() => parseSliceHeader(idr.subarray(0, 1), sets), RangeError, 'header byte only');
  tt.throws(() => parseSliceHeader(writeSlice({ nalType: 5, sliceType: 5 }, sps, pps), sets), /IDR slice with slice_type 5/);
  // A P slice with a long pred_weight_table past the 1024-byte prefix still parses.
  const wp: PpsFields = { ppsId: 0, spsId: 0, weightedPred: true, numRefIdxL0DefaultActive: 32 };
  const wpSets = { sps: sets.sps, pps: [parsePps(writePps(wp))] };
  const short = writeSlice({ refIdc: 2, mmco5: true }, sps, wp);
  tt.equal(parseSliceHeader(short, wpSets, { throughRefPicMarking: true }).mmco5, true, 'mmco5 after pred_weight_table');
  const long = writeSlice({ refIdc: 2, mmco5: true, weight: 2 ** 28, dataBytes: 100 }, sps, wp);
  tt.ok(long.length > 1100, `a ${long.length}-byte header`);
  tt.equal(parseSliceHeader(long, wpSets, { throughRefPicMarking: true }).mmco5, true, 'mmco5 after a pred_weight_table longer than the 1024-byte prefix');
  tt.throws(() => parseSliceHeader(long.subarray(0, 1100), wpSets, { throughRefPicMarking: true }), RangeError, 'cut inside it');
});

// ---------------------------------------------------------------------------
// annexb.ts on the fixtures

t.test('reader on the fixtures', async (tt) => {
  for (const f of FIXTURE_SPECS) {
    const file = fixture(f.file);
    const bytes = readFileSync(file);
    const { reader, samples } = await readAll(file);
    const interval = (90000 * f.fps.den) / f.fps.num;
    const track = reader.probe.tracks[0]!;
    tt.match(
      reader.probe,
      { format: 'h264', bytes: bytes.length, tracks: [{ index: 0, kind: 'video', codec: 'h264', supported: true, clockRate: 90000 }] },
      f.file,
    );
    tt.equal(reader.probe.tracks.length, 1);
    tt.equal(reader.probe.durationMs, (f.frames * 1000 * f.fps.den) / f.fps.num, `${f.file}: durationMs`);
    tt.equal(track.durationMs, reader.probe.durationMs);
    const fileNals = splitAnnexB(bytes);
    tt.same(
      track.h264,
      {
        sps: [fileNals.find((n) => (n.nal[0]! & 0x1f) === 7)!.nal],
        pps: [fileNals.find((n) => (n.nal[0]! & 0x1f) === 8)!.nal],
        profileLevelId: f.profileLevelId,
        width: f.width,
        height: f.height,
        frameRate: f.fps.num / f.fps.den,
      },
      `${f.file}: h264 params`,
    );
    tt.equal(samples.length, f.frames, `${f.file}: frames`);
    tt.same(
      samples.flatMap((s, i) => (s.keyframe ? [i] : [])),
      f.keyframes,
      `${f.file}: keyframes`,
    );
    // Concatenated, the samples' NAL units are exactly the file's.
    const mine = samples.flatMap((s) => s.nals!);
    tt.equal(mine.length, fileNals.length, `${f.file}: NAL count`);
    tt.ok(
      mine.every((n, i) => hex(n) === hex(fileNals[i]!.nal)),
      `${f.file}: NAL bytes`,
    );
    // Timestamps: dts n*interval; pts a permutation of (R..R+N-1)*interval with pts >= dts.
    tt.ok(
      samples.every((s, i) => s.dts === Math.round(i * interval) && s.duration === Math.round((i + 1) * interval) - Math.round(i * interval)),
      `${f.file}: dts, duration`,
    );
    tt.equal(samples[0]!.pts, Math.round(f.reorder * interval), `${f.file}: first pts = reorder delay`);
    tt.ok(
      samples.every((s) => s.pts >= s.dts),
      `${f.file}: pts >= dts`,
    );
    tt.same(
      samples.map((s) => s.pts).sort((a, b) => a - b),
      samples.map((_, i) => Math.round((i + f.reorder) * interval)),
      `${f.file}: one pts per presentation slot`,
    );
    tt.ok(
      samples.every((s) => s.track === 0 && s.data.length === 0),
      `${f.file}: track 0, data empty`,
    );
  }
});

t.test('reader agrees with ffprobe/ffmpeg on the fixtures', { skip: skipNoFfmpeg }, async (tt) => {
  for (const f of FIXTURE_SPECS) {
    const file = fixture(f.file);
    const bytes = readFileSync(file);
    const { samples } = await readAll(file);
    const probe = ffprobeOrder(file);
    tt.equal(samples.length, probe.packetPos.length, `${f.file}: AU count = ffprobe packets`);
    tt.same(
      samples.map((s) => s.keyframe),
      probe.keyframes,
      `${f.file}: keyframes = ffprobe key flags`,
    );
    // Each AU starts where ffprobe's packet starts.
    const nals = splitAnnexB(bytes);
    const starts: number[] = [];
    let k = 0;
    for (const s of samples) {
      starts.push(nals[k]!.startCode);
      k += s.nals!.length;
    }
    tt.same(starts, probe.packetPos, `${f.file}: AU byte offsets = ffprobe packet positions`);
    // The NAL types of each AU match ffmpeg's packets.
    const trace = traceHeaders(file);
    tt.same(
      samples.map((s) => types(s.nals!)),
      trace.map((p) => p.sections.map((sec) => sec.fields.get('nal_unit_type'))),
      `${f.file}: NAL types per AU`,
    );
    // Presentation order (decode indices sorted by pts) = ffmpeg's frame output order.
    const indexByPos = new Map(probe.packetPos.map((pos, i) => [pos, i]));
    tt.same(
      presentationOrder(samples),
      probe.framePos.map((pos) => indexByPos.get(pos)),
      `${f.file}: presentation order`,
    );
  }
});

t.test('large stream across many 1 MiB blocks agrees with ffprobe', { skip: skipNoFfmpeg }, async (tt) => {
  const file = join(dir, 'large.h264');
  // Lossless (High 4:4:4 Predictive, transform bypass): big frames, 3 B-frames.
  run('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=960x540:rate=30',
    '-t',
    '4',
    '-c:v',
    'libx264',
    '-crf',
    '0',
    '-bf',
    '3',
    '-g',
    '60',
    '-y',
    file,
  ]);
  const bytes = readFileSync(file);
  tt.ok(bytes.length > 3 << 20, `file of ${bytes.length} bytes spans several blocks`);
  const { samples } = await readAll(file);
  const probe = ffprobeOrder(file);
  tt.equal(samples.length, 120);
  tt.same(
    samples.map((s) => s.keyframe),
    probe.keyframes,
  );
  const nals = splitAnnexB(bytes);
  const mine = samples.flatMap((s) => s.nals!);
  tt.equal(mine.length, nals.length);
  tt.ok(
    mine.every((n, i) => Buffer.compare(n, nals[i]!.nal) === 0),
    'NAL bytes',
  );
  const indexByPos = new Map(probe.packetPos.map((pos, i) => [pos, i]));
  tt.same(
    presentationOrder(samples),
    probe.framePos.map((pos) => indexByPos.get(pos)),
    'presentation order',
  );
});

t.test('no VUI timing: frame rate from options or 25', async (tt) => {
  // bframes.h264 with its SPS rewritten without timing_info.
  const bytes = readFileSync(fixture('bframes.h264'));
  const rewritten: Uint8Array[] = [];
  for (const { nal } of splitAnnexB(bytes)) {
    if ((nal[0]! & 0x1f) !== 7) rewritten.push(nal);
    else {
      const sps = parseSps(nal);
      const { timing: _, ...vui } = sps.vui!;
      rewritten.push(writeSps({ ...sps, vui }));
    }
  }
  const file = tmpFile(annexB(rewritten));
  const cases: { opts?: { frameRate?: number }; num: number; den: number }[] = [
    { num: 25, den: 1 },
    { opts: {}, num: 25, den: 1 },
    { opts: { frameRate: 30 }, num: 30, den: 1 },
    { opts: { frameRate: 29.97 }, num: 30000, den: 1001 },
    { opts: { frameRate: 23.976 }, num: 24000, den: 1001 },
    { opts: { frameRate: 12.5 }, num: 12500, den: 1000 },
  ];
  for (const c of cases) {
    const { reader, samples } = await readAll(file, c.opts);
    const label = JSON.stringify(c.opts);
    tt.equal(reader.probe.tracks[0]!.h264!.frameRate, undefined, `${label}: no VUI frameRate in params`);
    tt.equal(reader.probe.durationMs, (50 * 1000 * c.den) / c.num, `${label}: durationMs`);
    const at = (n: number): number => Math.round((n * 90000 * c.den) / c.num);
    tt.ok(
      samples.every((s, i) => s.dts === at(i) && s.duration === at(i + 1) - at(i)),
      `${label}: dts`,
    );
    tt.equal(samples[0]!.pts, at(2), `${label}: reorder 2 from the VUI bitstream restriction`);
  }
  // The VUI rate wins over the option.
  const { samples } = await readAll(fixture('bframes.h264'), { frameRate: 50 });
  tt.equal(samples[1]!.dts, 3600, 'VUI 25 fps overrides frameRate 50');
  for (const frameRate of [0, 0.5, 241, Number.NaN, Infinity, -1]) {
    await tt.rejects(openAnnexB(file, { frameRate }), RangeError, `frameRate ${frameRate}`);
  }
});

// ---------------------------------------------------------------------------
// annexb.ts on synthetic streams (headers only)

interface Pic extends SliceFields {
  /** Extra slices of the same picture (first_mb_in_slice > 0). */
  slices?: number;
  /** NAL units before the slices (AUD, SEI...). */
  before?: Uint8Array[];
}

const AUD = Uint8Array.from([0x09, 0xf0]);
const SEI = Uint8Array.from([0x06, 0x05, 0x01, 0xaa, 0x80]);

/** An Annex B stream: SPS, PPS, then pictures. */
function stream(
  sps: SpsFields,
  pps: PpsFields,
  pics: Pic[],
  opts: { short?: boolean; header?: Uint8Array[] } = {},
): { bytes: Uint8Array; nals: Uint8Array[][] } {
  const aus: Uint8Array[][] = [];
  for (const [i, p] of pics.entries()) {
    const au: Uint8Array[] = [...(i === 0 ? (opts.header ?? [writeSps(sps), writePps(pps)]) : []), ...(p.before ?? [])];
    for (let s = 0; s <= (p.slices ?? 0); s++) au.push(writeSlice({ ...p, firstMb: s * 10 }, sps, pps));
    aus.push(au);
  }
  return { bytes: annexB(aus.flat(), opts.short), nals: aus };
}

const SPS = spsFields();
const PPS: PpsFields = { ppsId: 0, spsId: 0 };

/** I P B B P B B with POC lsb 2 per frame, as an encoder with 2 B-frames writes it. */
function ipbb(periods: number): Pic[] {
  const pics: Pic[] = [];
  for (let p = 0; p < periods; p++) {
    pics.push({ nalType: 5, idrPicId: p, pocLsb: 0 });
    for (let g = 0; g < 2; g++) {
      const base = g * 6;
      pics.push({ pocLsb: base + 6, frameNum: 1 + 2 * g, sliceType: 5 });
      pics.push({ pocLsb: base + 2, frameNum: 2 + 2 * g, sliceType: 6, refIdc: 0 });
      pics.push({ pocLsb: base + 4, frameNum: 2 + 2 * g, sliceType: 6, refIdc: 0 });
    }
  }
  return pics;
}

t.test('synthetic: access units, B-frame order, periods', async (tt) => {
  const { bytes, nals } = stream(SPS, PPS, ipbb(2));
  const { samples } = await readAll(tmpFile(bytes));
  tt.equal(samples.length, 14);
  tt.same(
    samples.map((s) => s.nals!.map(hex)),
    nals.map((au) => au.map(hex)),
    'AUs are exactly the pictures',
  );
  tt.same(
    samples.flatMap((s, i) => (s.keyframe ? [i] : [])),
    [0, 7],
  );
  // No VUI bitstream restriction: the reorder delay is the measured depth (1).
  tt.same(
    samples.map((s) => s.pts / 3600),
    [1, 4, 2, 3, 7, 5, 6, 8, 11, 9, 10, 14, 12, 13],
  );
  tt.same(
    samples.map((s) => s.dts / 3600),
    [...Array(14).keys()],
  );
});

t.test('synthetic: VUI max_num_reorder_frames sets the delay', async (tt) => {
  const restriction = {
    motionVectorsOverPicBoundaries: true,
    maxBytesPerPicDenom: 0,
    maxBitsPerMbDenom: 0,
    log2MaxMvLengthHorizontal: 9,
    log2MaxMvLengthVertical: 9,
    maxNumReorderFrames: 3,
    maxDecFrameBuffering: 4,
  };
  const sps = spsFields({ vui: { picStructPresent: false, bitstreamRestriction: restriction } });
  const { samples } = await readAll(tmpFile(stream(sps, PPS, ipbb(1)).bytes));
  tt.same(
    samples.map((s) => s.pts / 3600),
    [3, 6, 4, 5, 9, 7, 8],
    'delay 3 although 1 would do',
  );
  // A VUI that understates the reordering: the measured depth wins so pts >= dts.
  const low = spsFields({ vui: { picStructPresent: false, bitstreamRestriction: { ...restriction, maxNumReorderFrames: 0 } } });
  const pics: Pic[] = [
    { nalType: 5, pocLsb: 0 },
    { pocLsb: 8, frameNum: 1 },
    { pocLsb: 2, frameNum: 2, refIdc: 0 },
    { pocLsb: 4, frameNum: 2, refIdc: 0 },
    { pocLsb: 6, frameNum: 2, refIdc: 0 },
  ];
  const r2 = await readAll(tmpFile(stream(low, PPS, pics).bytes));
  tt.same(
    r2.samples.map((s) => s.pts / 3600),
    [1, 5, 2, 3, 4],
    'measured depth 1',
  );
  tt.ok(r2.samples.every((s) => s.pts >= s.dts));
});

t.test('synthetic: POC lsb wrap-around (8.2.1.1)', async (tt) => {
  // MaxPicOrderCntLsb 16, 2 per frame: lsb wraps every 8 frames.
  const sps = spsFields({ log2MaxPicOrderCntLsb: 4 });
  const pics: Pic[] = [{ nalType: 5, pocLsb: 0 }];
  let poc = 0;
  for (let g = 0; g < 6; g++) {
    pics.push({ pocLsb: (poc + 4) % 16, frameNum: (2 * g + 1) % 16 });
    pics.push({ pocLsb: (poc + 2) % 16, frameNum: (2 * g + 2) % 16, sliceType: 6, refIdc: 0 });
    poc += 4;
  }
  const { samples } = await readAll(tmpFile(stream(sps, PPS, pics).bytes));
  const order = presentationOrder(samples);
  const expected = [0];
  for (let g = 0; g < 6; g++) expected.push(2 + 2 * g, 1 + 2 * g);
  tt.same(order, expected, 'B before its P across each wrap');
});

t.test('synthetic: mmco 5 starts a new POC period', async (tt) => {
  const pics: Pic[] = [
    { nalType: 5, pocLsb: 0 },
    { pocLsb: 4, frameNum: 1 },
    { pocLsb: 2, frameNum: 2, refIdc: 0, sliceType: 6 },
    // POC lsb 40 would sort after everything; mmco 5 makes it 0 of a new period.
    { pocLsb: 40, frameNum: 2, mmco5: true },
    { pocLsb: 4, frameNum: 1 },
    { pocLsb: 2, frameNum: 2, refIdc: 0, sliceType: 6 },
  ];
  const { samples } = await readAll(tmpFile(stream(SPS, PPS, pics).bytes));
  tt.same(presentationOrder(samples), [0, 2, 1, 3, 5, 4]);
  tt.same(
    samples.map((s) => s.keyframe),
    [true, false, false, false, false, false],
    'mmco 5 is not a keyframe',
  );
});

t.test('synthetic: POC types 1 and 2 present in decode order', async (tt) => {
  for (const type of [1, 2]) {
    const sps = spsFields({ picOrderCntType: type, offsetForRefFrame: type === 1 ? [2] : [] });
    const pics: Pic[] = [{ nalType: 5 }, { frameNum: 1, deltaPoc0: 3 }, { frameNum: 2 }, { nalType: 5, idrPicId: 1 }, { frameNum: 1 }];
    const { samples } = await readAll(tmpFile(stream(sps, PPS, pics).bytes));
    tt.same(
      samples.map((s) => s.pts),
      samples.map((s) => s.dts),
      `type ${type}: pts = dts`,
    );
    tt.same(
      samples.map((s) => s.keyframe),
      [true, false, false, true, false],
    );
  }
  // POC type 1: two non-reference pictures that differ only in delta_pic_order_cnt[0] are two AUs.
  const sps1 = spsFields({ picOrderCntType: 1, offsetForRefFrame: [2] });
  const pics: Pic[] = [{ nalType: 5 }, { frameNum: 1, refIdc: 0, deltaPoc0: 0 }, { frameNum: 1, refIdc: 0, deltaPoc0: 1, firstMb: 5 }];
  const bytes = annexB([writeSps(sps1), writePps(PPS), ...pics.map((p) => writeSlice(p, sps1, PPS))]);
  tt.equal((await readAll(tmpFile(bytes))).samples.length, 3, 'delta_pic_order_cnt[0] differs');
});

t.test('synthetic: slices, AUD, SEI and the boundaries between pictures', async (tt) => {
  const pics: Pic[] = [
    { nalType: 5, slices: 2, before: [SEI] },
    // Same frame_num and POC as nothing before: boundary from frame_num/POC, no AUD.
    { frameNum: 1, pocLsb: 2, slices: 3 },
    { frameNum: 2, pocLsb: 4, before: [AUD, SEI] },
    { frameNum: 3, pocLsb: 6, before: [AUD], slices: 1 },
  ];
  const { bytes, nals } = stream(SPS, PPS, pics);
  const { samples } = await readAll(tmpFile(bytes));
  tt.same(
    samples.map((s) => s.nals!.map(hex)),
    nals.map((au) => au.map(hex)),
  );
  tt.same(
    samples.map((s) => types(s.nals!)),
    [
      [7, 8, 6, 5, 5, 5],
      [1, 1, 1, 1],
      [9, 6, 1],
      [9, 1, 1],
    ],
  );

  // Two pictures whose slice headers differ only in nal_ref_idc (one 0): two AUs.
  const r2 = await readAll(tmpFile(stream(SPS, PPS, [{ nalType: 5 }, { frameNum: 1, pocLsb: 2 }, { frameNum: 1, pocLsb: 2, refIdc: 0, firstMb: 0 }]).bytes));
  tt.equal(r2.samples.length, 3, 'nal_ref_idc 0 vs non-0');

  // A second slice with first_mb_in_slice 0 and identical header starts a new picture.
  const sameHeader = writeSlice({ frameNum: 1, pocLsb: 2 }, SPS, PPS);
  const r3 = await readAll(tmpFile(annexB([writeSps(SPS), writePps(PPS), writeSlice({ nalType: 5 }, SPS, PPS), sameHeader, sameHeader])));
  tt.equal(r3.samples.length, 3, 'first_mb_in_slice 0 starts an AU');

  // Trailing non-VCL NAL units (end of sequence, end of stream, SEI) stay with the last AU.
  const tail = [Uint8Array.from([0x0a]), SEI, Uint8Array.from([0x0b])];
  const base = stream(SPS, PPS, [{ nalType: 5 }, { frameNum: 1, pocLsb: 2 }]);
  const r4 = await readAll(tmpFile(concat(base.bytes, annexB(tail))));
  tt.same(types(r4.samples[1]!.nals!), [1, 10, 6, 11], 'trailing NAL units appended to the last AU');

  // Redundant slices (redundant_pic_cnt > 0) belong to the primary picture's AU.
  const pps = { ...PPS, redundantPicCntPresent: true };
  const r5 = await readAll(
    tmpFile(
      annexB([
        writeSps(SPS),
        writePps(pps),
        writeSlice({ nalType: 5 }, SPS, pps),
        writeSlice({ nalType: 5, redundantPicCnt: 1 }, SPS, pps),
        writeSlice({ frameNum: 1, pocLsb: 2 }, SPS, pps),
      ]),
    ),
  );
  tt.same(
    r5.samples.map((s) => types(s.nals!)),
    [[7, 8, 5, 5], [1]],
    'redundant picture in the same AU',
  );
});

t.test('synthetic: field pictures are paired into one sample', async (tt) => {
  const sps = spsFields({ frameMbsOnly: false, picHeightInMapUnits: 8 });
  const pics: Pic[] = [
    { nalType: 5, field: 'top', pocLsb: 0 },
    { field: 'bottom', pocLsb: 1, refIdc: 3 },
    { field: 'top', frameNum: 1, pocLsb: 8 },
    { field: 'bottom', frameNum: 1, pocLsb: 9 },
    { field: 'top', frameNum: 2, pocLsb: 4, refIdc: 0, sliceType: 6 },
    { field: 'bottom', frameNum: 2, pocLsb: 5, refIdc: 0, sliceType: 6 },
  ];
  const { bytes, nals } = stream(sps, PPS, pics);
  const { samples } = await readAll(tmpFile(bytes));
  tt.equal(samples.length, 3, '6 fields, 3 frames');
  tt.same(
    samples.map((s) => s.nals!.map(hex)),
    [nals[0]!.concat(nals[1]!), nals[2]!.concat(nals[3]!), nals[4]!.concat(nals[5]!)].map((au) => au.map(hex)),
  );
  tt.same(presentationOrder(samples), [0, 2, 1]);
  tt.same(
    samples.map((s) => s.keyframe),
    [true, false, false],
  );
  // An unpaired field stays alone.
  const lone = await readAll(
    tmpFile(
      stream(sps, PPS, [
        { nalType: 5, field: 'top' },
        { field: 'top', frameNum: 1, pocLsb: 2 },
      ]).bytes,
    ),
  );
  tt.equal(lone.samples.length, 2, 'two top fields do not pair');
});

t.test('synthetic: byte-stream details', async (tt) => {
  const { nals } = stream(SPS, PPS, [{ nalType: 5 }, { frameNum: 1, pocLsb: 2 }]);
  const flat = nals.flat();
  const variants: { name: string; bytes: Uint8Array }[] = [
    { name: '3-byte start codes', bytes: annexB(flat, true) },
    { name: 'leading zero bytes', bytes: Uint8Array.from([0, 0, 0, 0, 0, ...annexB(flat)]) },
    {
      name: 'trailing_zero_8bits after each NAL',
      bytes: Uint8Array.from(flat.flatMap((n) => [0, 0, 1, ...n, 0, 0, 0])),
    },
  ];
  for (const v of variants) {
    const { samples } = await readAll(tmpFile(v.bytes));
    tt.same(
      samples.map((s) => s.nals!.map(hex)),
      nals.map((au) => au.map(hex)),
      v.name,
    );
  }
});

t.test('synthetic: start codes straddling the 1 MiB block boundary', async (tt) => {
  const head = [writeSps(SPS), writePps(PPS), writeSlice({ nalType: 5 }, SPS, PPS)];
  const prefix = annexB(head).length;
  for (let shift = -5; shift <= 2; shift++) {
    for (const short of [false, true]) {
      // A filler NAL (0xff bytes, then 0x80) sized so the next start code begins at 1 MiB + shift.
      const scBytes = short ? 3 : 4;
      const fillerLen = (1 << 20) + shift - prefix - scBytes;
      const filler = new Uint8Array(fillerLen).fill(0xff);
      filler[0] = 0x0c;
      filler[fillerLen - 1] = 0x80;
      const next = writeSlice({ frameNum: 1, pocLsb: 2 }, SPS, PPS);
      const bytes = concat(annexB(head), annexB([filler], short), annexB([next], short));
      tt.equal(bytes.length - annexB([next], short).length, (1 << 20) + shift, 'start code placed');
      const { samples } = await readAll(tmpFile(bytes));
      const ok =
        samples.length === 2 && hex(samples[0]!.nals![3]!) === hex(filler) && samples[1]!.nals!.length === 1 && hex(samples[1]!.nals![0]!) === hex(next);
      tt.ok(ok, `start code at 1 MiB ${shift >= 0 ? '+' : ''}${shift}, ${scBytes}-byte`);
    }
  }
});

t.test('samples(): track filter, independent iterations, close', async (tt) => {
  const reader = await openAnnexB(fixture('baseline.h264'));
  const none: Sample[] = [];
  for await (const s of reader.samples({ tracks: [1] })) none.push(s);
  tt.equal(none.length, 0, 'track 1 does not exist');
  const [a, b] = await Promise.all([collect(reader), collect(reader)]);
  tt.equal(a.length, 25);
  tt.same(
    a.map((s) => s.pts),
    b.map((s) => s.pts),
    'two concurrent iterations see the same samples',
  );
  // Stops mid-way when closed.
  let n = 0;
  for await (const _ of reader.samples({ tracks: [0] })) {
    if (++n === 3) await reader.close();
  }
  tt.equal(n, 3, 'no samples after close');
  await tt.rejects(collect(reader), /closed/);
});

// ---------------------------------------------------------------------------
// annexb.ts: errors

t.test('errors: not a stream, missing parameter sets, corrupt NAL units', async (tt) => {
  const slice = writeSlice({ nalType: 5 }, SPS, PPS);
  const cases: { name: string; bytes: Uint8Array; message: RegExp }[] = [
    { name: 'empty file', bytes: new Uint8Array(0), message: /no start code in the file/ },
    {
      name: 'garbage',
      bytes: Uint8Array.from({ length: 4000 }, (_, i) => ((i * 7 + 3) & 0xff) | 0x10),
      message: /not an H.264 Annex B stream: no start code before byte 0/,
    },
    { name: 'garbage before the first start code', bytes: Uint8Array.from([0, 0x42, ...annexB([writeSps(SPS)])]), message: /no start code before byte 1/ },
    { name: 'only zeros', bytes: new Uint8Array(100), message: /no start code in the file/ },
    { name: 'slices without SPS/PPS', bytes: annexB([slice, slice]), message: /no SPS\/PPS before first slice \(NAL type 5 at byte 4\)/ },
    { name: 'PPS but no SPS', bytes: annexB([writePps(PPS), slice]), message: /no SPS\/PPS before first slice/ },
    { name: 'SPS but no PPS', bytes: annexB([writeSps(SPS), slice]), message: /no SPS\/PPS before first slice/ },
    { name: 'parameter sets only', bytes: annexB([writeSps(SPS), writePps(PPS)]), message: /no slices in the stream/ },
    {
      name: 'slice refers to an unknown PPS',
      bytes: annexB([writeSps(SPS), writePps(PPS), writeSlice({ nalType: 5, ppsId: 3 }, SPS, PPS)]),
      message: /PPS 3, which has not been seen/,
    },
    {
      name: 'forbidden_zero_bit',
      bytes: annexB([writeSps(SPS), writePps(PPS), Uint8Array.from([0x85, 0x88, 0x80])]),
      message: /byte \d+ has forbidden_zero_bit set/,
    },
    { name: 'bad SPS', bytes: annexB([writeSps(SPS).subarray(0, 4), writePps(PPS), slice]), message: /bad SPS at byte 4: / },
    { name: 'bad PPS', bytes: annexB([writeSps(SPS), Uint8Array.from([0x68, 0x80]), slice]), message: /bad PPS at byte \d+/ },
    { name: 'empty NAL unit', bytes: Uint8Array.from([0, 0, 1, 0, 0, 1, ...annexB([writeSps(SPS)])]), message: /empty NAL unit at byte 3/ },
    { name: 'partition B without A', bytes: annexB([writeSps(SPS), writePps(PPS), Uint8Array.from([0x23, 0x80])]), message: /partition A/ },
    {
      name: 'VUI timing garbage',
      bytes: annexB([
        writeSps(spsFields({ vui: { picStructPresent: false, timing: { numUnitsInTick: 0, timeScale: 50, fixedFrameRate: false } } })),
        writePps(PPS),
        slice,
      ]),
      message: /bad SPS at byte 4: SPS VUI timing has num_units_in_tick = 0/,
    },
    {
      name: 'VUI 2000 fps',
      bytes: annexB([
        writeSps(spsFields({ vui: { picStructPresent: false, timing: { numUnitsInTick: 1, timeScale: 4000, fixedFrameRate: false } } })),
        writePps(PPS),
        slice,
      ]),
      message: /2000 fps/,
    },
  ];
  for (const c of cases) await rejects422(tt, openAnnexB(tmpFile(c.bytes)), c.message, c.name);
  await tt.rejects(openAnnexB(join(dir, 'missing.h264')), { code: 'ENOENT' }, 'filesystem errors pass through');
});

t.test('errors: truncation', async (tt) => {
  const file = fixture('bframes.h264');
  const bytes = readFileSync(file);
  const nals = splitAnnexB(bytes);
  const last = nals.at(-1)!;
  const lastStart = last.startCode;
  // Cut inside the last slice's header (1 byte after its NAL header): 422.
  await rejects422(
    tt,
    openAnnexB(tmpFile(bytes.subarray(0, lastStart + 4 + 1))),
    /bad slice header in NAL unit at byte \d+ \(1 bytes, truncated or corrupt\)/,
    'cut in a slice header',
  );
  // Cut right after a start code.
  await rejects422(tt, openAnnexB(tmpFile(bytes.subarray(0, lastStart + 4))), /truncated: the file ends right after the start code/, 'cut after a start code');
  // Cut inside slice data: undetectable without decoding; every AU is still there.
  const { samples } = await readAll(tmpFile(bytes.subarray(0, lastStart + 4 + Math.floor(last.nal.length / 2))));
  tt.equal(samples.length, 50, 'cut in slice data: the partial last AU is kept');
  tt.equal(samples.at(-1)!.nals!.at(-1)!.length, Math.floor(last.nal.length / 2), 'the last NAL is what the file holds');
  // A cut at the end of an AU's NAL units, before the next: the AUs before it.
  const r = await readAll(tmpFile(bytes.subarray(0, lastStart)));
  tt.equal(r.samples.length, 49, 'cut between AUs');
});

t.test('errors: size caps', async (tt) => {
  const head = annexB([writeSps(SPS), writePps(PPS), writeSlice({ nalType: 5 }, SPS, PPS)]);
  const filler = (n: number): Uint8Array => {
    const f = new Uint8Array(n).fill(0xff);
    f[0] = 0x0c;
    f[n - 1] = 0x80;
    return f;
  };
  await rejects422(
    tt,
    openAnnexB(tmpFile(concat(head, annexB([filler(MAX_NAL_BYTES + 1)])))),
    /NAL unit at byte \d+ is larger than 8388608 bytes/,
    'NAL over 8 MiB',
  );
  const third = Math.floor(MAX_ACCESS_UNIT_BYTES / 3) + 10;
  const big = annexB([filler(third), filler(third), filler(third)]);
  await rejects422(tt, openAnnexB(tmpFile(concat(head, big))), /access unit at byte 4 is larger than 16777216 bytes/, 'AU over 16 MiB');
  // Exactly at the NAL cap is fine.
  const ok = await readAll(tmpFile(concat(head, annexB([filler(MAX_NAL_BYTES)]))));
  tt.equal(ok.samples[0]!.nals!.at(-1)!.length, MAX_NAL_BYTES, 'a NAL of exactly 8 MiB');
});

t.test('errors: reordering deeper than any DPB', async (tt) => {
  const pics: Pic[] = [{ nalType: 5, pocLsb: 0 }];
  for (let i = 0; i < 18; i++) pics.push({ frameNum: (i + 1) % 16, pocLsb: 100 - 2 * i, sliceType: 5 });
  const sps = spsFields({ log2MaxPicOrderCntLsb: 8 });
  await rejects422(tt, openAnnexB(tmpFile(stream(sps, PPS, pics).bytes)), /presented after more than 16 later-decoded pictures/, '17 frames reordered');
  // 16 is still fine.
  const ok = await readAll(tmpFile(stream(sps, PPS, pics.slice(0, 18)).bytes));
  tt.equal(ok.samples[0]!.pts, 16 * 3600, 'delay of 16 frames');
});
