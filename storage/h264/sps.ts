/**
 * H.264 parameter sets and slice headers (ITU-T H.264 7.3.2.1, 7.3.2.2, 7.3.3, E.1):
 * what storage needs to describe a stream (size, profile, frame rate, reordering)
 * and to find access-unit boundaries and picture order.
 *
 * Parsers take a NAL unit (header byte included) and remove emulation prevention
 * first. Wrong NAL type -> TypeError; running out of bits or a value outside its
 * syntax range -> RangeError.
 */
import type { H264Params } from '../types.js';
import { BitReader, NalType, forbiddenBit, nalRefIdc, nalType, rbspFromNal } from './nal.js';

/** profile_idc values whose SPS carries chroma_format_idc, bit depths and scaling lists (7.3.2.1.1). */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);
/** Every profile_idc H.264 defines (Annex A, G, H, I), plus 144 (the withdrawn High 4:4:4). */
const KNOWN_PROFILES = new Set([66, 77, 88, 144, ...HIGH_PROFILES]);

/** Largest picture dimension in macroblocks: sqrt(8 * MaxFS) for level 6.2 (A.3.1 f, g). */
const MAX_DIMENSION_MBS = 1055;

export interface HrdParameters {
  cpbCount: number;
  bitRateScale: number;
  cpbSizeScale: number;
  /** Per CPB: bit rate and size in bits/s and bits (value+1 scaled per E.2.2). */
  bitRates: number[];
  cpbSizes: number[];
  cbr: boolean[];
  initialCpbRemovalDelayLength: number;
  cpbRemovalDelayLength: number;
  dpbOutputDelayLength: number;
  timeOffsetLength: number;
}

export interface VuiTiming {
  numUnitsInTick: number;
  timeScale: number;
  fixedFrameRate: boolean;
}

export interface BitstreamRestriction {
  motionVectorsOverPicBoundaries: boolean;
  maxBytesPerPicDenom: number;
  maxBitsPerMbDenom: number;
  log2MaxMvLengthHorizontal: number;
  log2MaxMvLengthVertical: number;
  maxNumReorderFrames: number;
  maxDecFrameBuffering: number;
}

export interface Vui {
  aspectRatioIdc?: number;
  sarWidth?: number;
  sarHeight?: number;
  overscanAppropriate?: boolean;
  videoFormat?: number;
  videoFullRange?: boolean;
  colourPrimaries?: number;
  transferCharacteristics?: number;
  matrixCoefficients?: number;
  chromaSampleLocTop?: number;
  chromaSampleLocBottom?: number;
  timing?: VuiTiming;
  nalHrd?: HrdParameters;
  vclHrd?: HrdParameters;
  lowDelayHrd?: boolean;
  picStructPresent: boolean;
  bitstreamRestriction?: BitstreamRestriction;
}

export interface Sps {
  profileIdc: number;
  /** constraint_set0..5 flags and the 2 reserved bits: the second byte of profile-level-id. */
  constraintFlags: number;
  levelIdc: number;
  spsId: number;
  chromaFormatIdc: number;
  separateColourPlane: boolean;
  /** ChromaArrayType (7.4.2.1.1): 0 for monochrome or separate colour planes. */
  chromaArrayType: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  qpprimeYZeroTransformBypass: boolean;
  seqScalingMatrixPresent: boolean;
  log2MaxFrameNum: number;
  picOrderCntType: number;
  /** Only for picOrderCntType 0. */
  log2MaxPicOrderCntLsb: number;
  /** picOrderCntType 1 fields. */
  deltaPicOrderAlwaysZero: boolean;
  offsetForNonRefPic: number;
  offsetForTopToBottomField: number;
  offsetForRefFrame: number[];
  maxNumRefFrames: number;
  gapsInFrameNumAllowed: boolean;
  picWidthInMbs: number;
  picHeightInMapUnits: number;
  frameMbsOnly: boolean;
  mbAdaptiveFrameField: boolean;
  direct8x8Inference: boolean;
  /** frame_crop_*_offset as coded (in crop units, not pixels). */
  crop: { left: number; right: number; top: number; bottom: number };
  /** Displayed size in pixels, after cropping. */
  width: number;
  height: number;
  vui?: Vui;
}

export interface Pps {
  ppsId: number;
  spsId: number;
  entropyCodingMode: boolean;
  bottomFieldPicOrderInFramePresent: boolean;
  numSliceGroups: number;
  numRefIdxL0DefaultActive: number;
  numRefIdxL1DefaultActive: number;
  weightedPred: boolean;
  weightedBipredIdc: number;
  picInitQp: number;
  picInitQs: number;
  chromaQpIndexOffset: number;
  deblockingFilterControlPresent: boolean;
  constrainedIntraPred: boolean;
  redundantPicCntPresent: boolean;
  /** Present when the PPS has the High-profile extension (7.3.2.2, more_rbsp_data()). */
  transform8x8Mode?: boolean;
  picScalingMatrixPresent?: boolean;
  secondChromaQpIndexOffset?: number;
}

/** slice_type % 5 (Table 7-6). */
export const SliceType = { P: 0, B: 1, I: 2, SP: 3, SI: 4 } as const;

export interface SliceHeader {
  nalType: number;
  nalRefIdc: number;
  idr: boolean;
  firstMbInSlice: number;
  /** slice_type as coded (0..9). */
  sliceType: number;
  ppsId: number;
  spsId: number;
  colourPlaneId: number;
  frameNum: number;
  fieldPic: boolean;
  bottomField: boolean;
  idrPicId: number;
  picOrderCntLsb: number;
  deltaPicOrderCntBottom: number;
  deltaPicOrderCnt0: number;
  deltaPicOrderCnt1: number;
  redundantPicCnt: number;
  /**
   * Only with `{ throughRefPicMarking: true }`: whether dec_ref_pic_marking() holds
   * memory_management_control_operation 5 (all references dropped, POC reset, 8.2.1).
   */
  mmco5?: boolean;
}

/** Parameter sets by id, as a stream has announced them so far. */
export interface ParameterSets {
  sps: ReadonlyArray<Sps | undefined>;
  pps: ReadonlyArray<Pps | undefined>;
}

function checkNal(nal: Uint8Array, expected: number, what: string): void {
  if (nal.length === 0) throw new TypeError(`empty NAL unit where an ${what} was expected`);
  if (forbiddenBit(nal)) throw new TypeError(`NAL unit has forbidden_zero_bit set (not an ${what})`);
  if (nalType(nal) !== expected) throw new TypeError(`NAL unit type ${nalType(nal)} is not an ${what} (type ${expected})`);
}

/**
 * The SPS RBSP for either an SPS NAL unit (header 0x67 and the like) or an RBSP that
 * already starts at profile_idc. The two cannot be confused: a header byte with
 * type 7 and forbidden bit 0 is never a profile_idc H.264 defines.
 */
function spsRbsp(input: Uint8Array): Uint8Array {
  if (input.length === 0) throw new TypeError('empty input where an SPS was expected');
  const b = input[0]!;
  if (!forbiddenBit(input) && nalType(input) === NalType.sps) return rbspFromNal(input, 1);
  if (KNOWN_PROFILES.has(b)) return rbspFromNal(input, 0);
  if (!forbiddenBit(input)) throw new TypeError(`NAL unit type ${nalType(input)} is not an SPS (type 7)`);
  throw new TypeError(`not an SPS: first byte 0x${b.toString(16).padStart(2, '0')} is neither an SPS NAL header nor a known profile_idc`);
}

function skipScalingList(r: BitReader, size: number): void {
  let lastScale = 8;
  let nextScale = 8;
  for (let j = 0; j < size; j++) {
    if (nextScale !== 0) {
      const delta = r.se();
      if (delta < -128 || delta > 127) throw new RangeError(`delta_scale = ${delta}, outside -128..127`);
      nextScale = (lastScale + delta + 256) % 256;
    }
    lastScale = nextScale === 0 ? lastScale : nextScale;
  }
}

function parseHrd(r: BitReader): HrdParameters {
  const cpbCount = r.ueMax(31, 'cpb_cnt_minus1') + 1;
  const bitRateScale = r.u(4);
  const cpbSizeScale = r.u(4);
  const bitRates: number[] = [];
  const cpbSizes: number[] = [];
  const cbr: boolean[] = [];
  for (let i = 0; i < cpbCount; i++) {
    bitRates.push((r.ue() + 1) * 2 ** (6 + bitRateScale));
    cpbSizes.push((r.ue() + 1) * 2 ** (4 + cpbSizeScale));
    cbr.push(r.flag());
  }
  return {
    cpbCount,
    bitRateScale,
    cpbSizeScale,
    bitRates,
    cpbSizes,
    cbr,
    initialCpbRemovalDelayLength: r.u(5) + 1,
    cpbRemovalDelayLength: r.u(5) + 1,
    dpbOutputDelayLength: r.u(5) + 1,
    timeOffsetLength: r.u(5),
  };
}

function parseVui(r: BitReader): Vui {
  const vui: Vui = { picStructPresent: false };
  if (r.flag()) {
    vui.aspectRatioIdc = r.u(8);
    if (vui.aspectRatioIdc === 255) {
      vui.sarWidth = r.u(16);
      vui.sarHeight = r.u(16);
    }
  }
  if (r.flag()) vui.overscanAppropriate = r.flag();
  if (r.flag()) {
    vui.videoFormat = r.u(3);
    vui.videoFullRange = r.flag();
    if (r.flag()) {
      vui.colourPrimaries = r.u(8);
      vui.transferCharacteristics = r.u(8);
      vui.matrixCoefficients = r.u(8);
    }
  }
  if (r.flag()) {
    vui.chromaSampleLocTop = r.ueMax(5, 'chroma_sample_loc_type_top_field');
    vui.chromaSampleLocBottom = r.ueMax(5, 'chroma_sample_loc_type_bottom_field');
  }
  if (r.flag()) {
    vui.timing = { numUnitsInTick: r.u(32), timeScale: r.u(32), fixedFrameRate: r.flag() };
  }
  const nalHrd = r.flag();
  if (nalHrd) vui.nalHrd = parseHrd(r);
  const vclHrd = r.flag();
  if (vclHrd) vui.vclHrd = parseHrd(r);
  if (nalHrd || vclHrd) vui.lowDelayHrd = r.flag();
  vui.picStructPresent = r.flag();
  if (r.flag()) {
    vui.bitstreamRestriction = {
      motionVectorsOverPicBoundaries: r.flag(),
      maxBytesPerPicDenom: r.ueMax(16, 'max_bytes_per_pic_denom'),
      maxBitsPerMbDenom: r.ueMax(16, 'max_bits_per_mb_denom'),
      log2MaxMvLengthHorizontal: r.ueMax(16, 'log2_max_mv_length_horizontal'),
      log2MaxMvLengthVertical: r.ueMax(16, 'log2_max_mv_length_vertical'),
      maxNumReorderFrames: r.ueMax(16, 'max_num_reorder_frames'),
      maxDecFrameBuffering: r.ueMax(16, 'max_dec_frame_buffering'),
    };
    if (vui.bitstreamRestriction.maxNumReorderFrames > vui.bitstreamRestriction.maxDecFrameBuffering) {
      throw new RangeError(
        `max_num_reorder_frames = ${vui.bitstreamRestriction.maxNumReorderFrames} exceeds max_dec_frame_buffering = ${vui.bitstreamRestriction.maxDecFrameBuffering}`,
      );
    }
  }
  return vui;
}

/** Parses a sequence parameter set: a NAL unit of type 7, or its RBSP starting at profile_idc. */
export function parseSps(input: Uint8Array): Sps {
  const r = new BitReader(spsRbsp(input));
  const profileIdc = r.u(8);
  const constraintFlags = r.u(8);
  const levelIdc = r.u(8);
  const spsId = r.ueMax(31, 'seq_parameter_set_id');
  let chromaFormatIdc = 1;
  let separateColourPlane = false;
  let bitDepthLuma = 8;
  let bitDepthChroma = 8;
  let qpprimeYZeroTransformBypass = false;
  let seqScalingMatrixPresent = false;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.ueMax(3, 'chroma_format_idc');
    if (chromaFormatIdc === 3) separateColourPlane = r.flag();
    bitDepthLuma = r.ueMax(6, 'bit_depth_luma_minus8') + 8;
    bitDepthChroma = r.ueMax(6, 'bit_depth_chroma_minus8') + 8;
    qpprimeYZeroTransformBypass = r.flag();
    seqScalingMatrixPresent = r.flag();
    if (seqScalingMatrixPresent) {
      const lists = chromaFormatIdc !== 3 ? 8 : 12;
      for (let i = 0; i < lists; i++) {
        if (r.flag()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  const log2MaxFrameNum = r.ueMax(12, 'log2_max_frame_num_minus4') + 4;
  const picOrderCntType = r.ueMax(2, 'pic_order_cnt_type');
  let log2MaxPicOrderCntLsb = 0;
  let deltaPicOrderAlwaysZero = false;
  let offsetForNonRefPic = 0;
  let offsetForTopToBottomField = 0;
  const offsetForRefFrame: number[] = [];
  if (picOrderCntType === 0) {
    log2MaxPicOrderCntLsb = r.ueMax(12, 'log2_max_pic_order_cnt_lsb_minus4') + 4;
  } else if (picOrderCntType === 1) {
    deltaPicOrderAlwaysZero = r.flag();
    offsetForNonRefPic = r.se();
    offsetForTopToBottomField = r.se();
    const cycle = r.ueMax(255, 'num_ref_frames_in_pic_order_cnt_cycle');
    for (let i = 0; i < cycle; i++) offsetForRefFrame.push(r.se());
  }
  const maxNumRefFrames = r.ueMax(16, 'max_num_ref_frames');
  const gapsInFrameNumAllowed = r.flag();
  const picWidthInMbs = r.ueMax(MAX_DIMENSION_MBS - 1, 'pic_width_in_mbs_minus1') + 1;
  const picHeightInMapUnits = r.ueMax(MAX_DIMENSION_MBS - 1, 'pic_height_in_map_units_minus1') + 1;
  const frameMbsOnly = r.flag();
  const mbAdaptiveFrameField = frameMbsOnly ? false : r.flag();
  const direct8x8Inference = r.flag();
  const crop = { left: 0, right: 0, top: 0, bottom: 0 };
  if (r.flag()) {
    crop.left = r.ue();
    crop.right = r.ue();
    crop.top = r.ue();
    crop.bottom = r.ue();
  }
  const vui = r.flag() ? parseVui(r) : undefined;

  // Cropped size (7.4.2.1.1, frame_crop_*_offset semantics).
  const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const subWidthC = chromaFormatIdc === 3 ? 1 : 2;
  const subHeightC = chromaFormatIdc === 1 ? 2 : 1;
  const frameHeightFactor = frameMbsOnly ? 1 : 2;
  const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
  const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * frameHeightFactor;
  const codedWidth = picWidthInMbs * 16;
  const codedHeight = picHeightInMapUnits * 16 * frameHeightFactor;
  const width = codedWidth - cropUnitX * (crop.left + crop.right);
  const height = codedHeight - cropUnitY * (crop.top + crop.bottom);
  if (width <= 0 || height <= 0) {
    throw new RangeError(
      `frame cropping (${crop.left},${crop.right},${crop.top},${crop.bottom}) leaves nothing of the ${codedWidth}x${codedHeight} coded picture`,
    );
  }

  const sps: Sps = {
    profileIdc,
    constraintFlags,
    levelIdc,
    spsId,
    chromaFormatIdc,
    separateColourPlane,
    chromaArrayType,
    bitDepthLuma,
    bitDepthChroma,
    qpprimeYZeroTransformBypass,
    seqScalingMatrixPresent,
    log2MaxFrameNum,
    picOrderCntType,
    log2MaxPicOrderCntLsb,
    deltaPicOrderAlwaysZero,
    offsetForNonRefPic,
    offsetForTopToBottomField,
    offsetForRefFrame,
    maxNumRefFrames,
    gapsInFrameNumAllowed,
    picWidthInMbs,
    picHeightInMapUnits,
    frameMbsOnly,
    mbAdaptiveFrameField,
    direct8x8Inference,
    crop,
    width,
    height,
  };
  if (vui) sps.vui = vui;
  return sps;
}

/**
 * Parses a picture parameter set (NAL type 8). The High-profile tail
 * (transform_8x8_mode_flag onwards) is read only when `chromaFormatIdc` of the
 * referenced SPS is given, since its scaling lists depend on it; slice headers need
 * none of it.
 */
export function parsePps(nal: Uint8Array, chromaFormatIdc?: number): Pps {
  checkNal(nal, NalType.pps, 'PPS');
  const r = new BitReader(rbspFromNal(nal, 1));
  const ppsId = r.ueMax(255, 'pic_parameter_set_id');
  const spsId = r.ueMax(31, 'seq_parameter_set_id');
  const entropyCodingMode = r.flag();
  const bottomFieldPicOrderInFramePresent = r.flag();
  const numSliceGroups = r.ueMax(7, 'num_slice_groups_minus1') + 1;
  if (numSliceGroups > 1) {
    const mapType = r.ueMax(6, 'slice_group_map_type');
    if (mapType === 0) {
      for (let i = 0; i < numSliceGroups; i++) r.ue();
    } else if (mapType === 2) {
      for (let i = 0; i < numSliceGroups - 1; i++) {
        r.ue();
        r.ue();
      }
    } else if (mapType >= 3 && mapType <= 5) {
      r.skip(1);
      r.ue();
    } else if (mapType === 6) {
      const mapUnits = r.ueMax(MAX_DIMENSION_MBS * MAX_DIMENSION_MBS, 'pic_size_in_map_units_minus1') + 1;
      r.skip(mapUnits * Math.ceil(Math.log2(numSliceGroups)));
    }
  }
  const pps: Pps = {
    ppsId,
    spsId,
    entropyCodingMode,
    bottomFieldPicOrderInFramePresent,
    numSliceGroups,
    numRefIdxL0DefaultActive: r.ueMax(31, 'num_ref_idx_l0_default_active_minus1') + 1,
    numRefIdxL1DefaultActive: r.ueMax(31, 'num_ref_idx_l1_default_active_minus1') + 1,
    weightedPred: r.flag(),
    weightedBipredIdc: r.u(2),
    picInitQp: r.se() + 26,
    picInitQs: r.se() + 26,
    chromaQpIndexOffset: r.se(),
    deblockingFilterControlPresent: r.flag(),
    constrainedIntraPred: r.flag(),
    redundantPicCntPresent: r.flag(),
  };
  if (pps.weightedBipredIdc === 3) throw new RangeError('weighted_bipred_idc = 3 (reserved)');
  if (chromaFormatIdc !== undefined && r.moreRbspData()) {
    pps.transform8x8Mode = r.flag();
    pps.picScalingMatrixPresent = r.flag();
    if (pps.picScalingMatrixPresent) {
      const lists = 6 + (chromaFormatIdc !== 3 ? 2 : 6) * (pps.transform8x8Mode ? 1 : 0);
      for (let i = 0; i < lists; i++) {
        if (r.flag()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
    pps.secondChromaQpIndexOffset = r.se();
  }
  return pps;
}

export interface SliceHeaderOptions {
  /**
   * Go on through ref_pic_list_modification and pred_weight_table to
   * dec_ref_pic_marking() to learn whether the picture holds mmco 5.
   */
  throughRefPicMarking?: boolean;
}

/** Header bytes worth un-escaping for a slice header: generous for the longest pred_weight_table. */
const SLICE_HEADER_PREFIX = 1024;

/**
 * Parses a slice header (7.3.3) of a NAL unit of type 1, 2 or 5, up to
 * redundant_pic_cnt, or through dec_ref_pic_marking with `throughRefPicMarking`.
 * A PPS or SPS the slice refers to and `sets` lacks -> RangeError.
 */
export function parseSliceHeader(nal: Uint8Array, sets: ParameterSets, opts?: SliceHeaderOptions): SliceHeader {
  if (nal.length === 0) throw new TypeError('empty NAL unit where a slice was expected');
  if (forbiddenBit(nal)) throw new TypeError('NAL unit has forbidden_zero_bit set (not a slice)');
  const type = nalType(nal);
  if (type !== NalType.slice && type !== NalType.idrSlice && type !== NalType.sliceDataPartitionA) {
    throw new TypeError(`NAL unit type ${type} is not a slice with a slice header (types 1, 2, 5)`);
  }
  try {
    return parseSliceHeaderRbsp(rbspFromNal(nal, 1, SLICE_HEADER_PREFIX), nal, sets, opts);
  } catch (err) {
    // The prefix may have been too short for a long header: retry on the whole NAL.
    if (err instanceof RangeError && nal.length > SLICE_HEADER_PREFIX && /bitstream ends/.test(err.message)) {
      return parseSliceHeaderRbsp(rbspFromNal(nal, 1), nal, sets, opts);
    }
    throw err;
  }
}

function parseSliceHeaderRbsp(rbsp: Uint8Array, nal: Uint8Array, sets: ParameterSets, opts?: SliceHeaderOptions): SliceHeader {
  const r = new BitReader(rbsp);
  const type = nalType(nal);
  const refIdc = nalRefIdc(nal);
  const idr = type === NalType.idrSlice;
  const firstMbInSlice = r.ueMax(MAX_DIMENSION_MBS * MAX_DIMENSION_MBS, 'first_mb_in_slice');
  const sliceType = r.ueMax(9, 'slice_type');
  const ppsId = r.ueMax(255, 'pic_parameter_set_id');
  const pps = sets.pps[ppsId];
  if (!pps) throw new RangeError(`slice refers to PPS ${ppsId}, which has not been seen`);
  const sps = sets.sps[pps.spsId];
  if (!sps) throw new RangeError(`PPS ${ppsId} refers to SPS ${pps.spsId}, which has not been seen`);
  const kind = sliceType % 5;
  if (idr && kind !== SliceType.I && kind !== SliceType.SI) throw new RangeError(`IDR slice with slice_type ${sliceType} (not I or SI)`);
  const colourPlaneId = sps.separateColourPlane ? r.u(2) : 0;
  const frameNum = r.u(sps.log2MaxFrameNum);
  let fieldPic = false;
  let bottomField = false;
  if (!sps.frameMbsOnly) {
    fieldPic = r.flag();
    if (fieldPic) bottomField = r.flag();
  }
  const idrPicId = idr ? r.ueMax(65535, 'idr_pic_id') : 0;
  let picOrderCntLsb = 0;
  let deltaPicOrderCntBottom = 0;
  let deltaPicOrderCnt0 = 0;
  let deltaPicOrderCnt1 = 0;
  if (sps.picOrderCntType === 0) {
    picOrderCntLsb = r.u(sps.log2MaxPicOrderCntLsb);
    if (pps.bottomFieldPicOrderInFramePresent && !fieldPic) deltaPicOrderCntBottom = r.se();
  } else if (sps.picOrderCntType === 1 && !sps.deltaPicOrderAlwaysZero) {
    deltaPicOrderCnt0 = r.se();
    if (pps.bottomFieldPicOrderInFramePresent && !fieldPic) deltaPicOrderCnt1 = r.se();
  }
  const redundantPicCnt = pps.redundantPicCntPresent ? r.ueMax(127, 'redundant_pic_cnt') : 0;
  const header: SliceHeader = {
    nalType: type,
    nalRefIdc: refIdc,
    idr,
    firstMbInSlice,
    sliceType,
    ppsId,
    spsId: pps.spsId,
    colourPlaneId,
    frameNum,
    fieldPic,
    bottomField,
    idrPicId,
    picOrderCntLsb,
    deltaPicOrderCntBottom,
    deltaPicOrderCnt0,
    deltaPicOrderCnt1,
    redundantPicCnt,
  };
  if (opts?.throughRefPicMarking) header.mmco5 = readThroughRefPicMarking(r, kind, refIdc, idr, fieldPic, sps, pps);
  return header;
}

/** Reads the rest of the slice header up to dec_ref_pic_marking(); returns whether it holds mmco 5. */
function readThroughRefPicMarking(r: BitReader, kind: number, refIdc: number, idr: boolean, fieldPic: boolean, sps: Sps, pps: Pps): boolean {
  const isB = kind === SliceType.B;
  const isP = kind === SliceType.P || kind === SliceType.SP;
  if (isB) r.skip(1); // direct_spatial_mv_pred_flag
  let numRefL0 = pps.numRefIdxL0DefaultActive;
  let numRefL1 = pps.numRefIdxL1DefaultActive;
  if (isP || isB) {
    if (r.flag()) {
      const max = fieldPic ? 31 : 15;
      numRefL0 = r.ueMax(max, 'num_ref_idx_l0_active_minus1') + 1;
      if (isB) numRefL1 = r.ueMax(max, 'num_ref_idx_l1_active_minus1') + 1;
    }
  }
  // ref_pic_list_modification() (7.3.3.1); types 20/21 never get here.
  if (kind !== SliceType.I && kind !== SliceType.SI) {
    skipRefPicListModification(r);
    if (isB) skipRefPicListModification(r);
  }
  if ((pps.weightedPred && isP) || (pps.weightedBipredIdc === 1 && isB)) {
    // pred_weight_table() (7.3.3.2)
    r.ueMax(7, 'luma_log2_weight_denom');
    if (sps.chromaArrayType !== 0) r.ueMax(7, 'chroma_log2_weight_denom');
    skipWeights(r, numRefL0, sps.chromaArrayType !== 0);
    if (isB) skipWeights(r, numRefL1, sps.chromaArrayType !== 0);
  }
  if (refIdc === 0) return false;
  // dec_ref_pic_marking() (7.3.3.3)
  if (idr) {
    r.skip(2); // no_output_of_prior_pics_flag, long_term_reference_flag
    return false;
  }
  if (!r.flag()) return false; // adaptive_ref_pic_marking_mode_flag
  let mmco5 = false;
  for (let ops = 0; ; ops++) {
    if (ops > 100) throw new RangeError('dec_ref_pic_marking with more than 100 operations');
    const op = r.ueMax(6, 'memory_management_control_operation');
    if (op === 0) break;
    if (op === 1 || op === 3) r.ue(); // difference_of_pic_nums_minus1
    if (op === 2) r.ue(); // long_term_pic_num
    if (op === 3 || op === 6) r.ue(); // long_term_frame_idx
    if (op === 4) r.ue(); // max_long_term_frame_idx_plus1
    if (op === 5) mmco5 = true;
  }
  return mmco5;
}

function skipRefPicListModification(r: BitReader): void {
  if (!r.flag()) return;
  for (let ops = 0; ; ops++) {
    if (ops > 33) throw new RangeError('ref_pic_list_modification with more than 33 operations');
    const idc = r.ueMax(5, 'modification_of_pic_nums_idc');
    if (idc === 3) return;
    r.ue(); // abs_diff_pic_num_minus1, long_term_pic_num or abs_diff_view_idx_minus1
  }
}

function skipWeights(r: BitReader, numRef: number, chroma: boolean): void {
  for (let i = 0; i < numRef; i++) {
    if (r.flag()) {
      r.se();
      r.se();
    }
    if (chroma && r.flag()) {
      r.se();
      r.se();
      r.se();
      r.se();
    }
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** A frame rate as an exact fraction (e.g. 30000/1001). */
export interface FrameRate {
  num: number;
  den: number;
}

/** Frame rates the readers accept (frames per second). */
export const MIN_FRAME_RATE = 1;
export const MAX_FRAME_RATE = 240;

/**
 * Frame rate from VUI timing (E.2.1): time_scale / (2 * num_units_in_tick), since a
 * tick is a field period, reduced to lowest terms; undefined without timing info.
 * Zero fields or a rate outside 1..240 fps -> RangeError (a corrupt SPS).
 */
export function vuiFrameRate(sps: Sps): FrameRate | undefined {
  const t = sps.vui?.timing;
  if (!t) return undefined;
  if (t.numUnitsInTick === 0 || t.timeScale === 0) {
    throw new RangeError(`SPS VUI timing has num_units_in_tick = ${t.numUnitsInTick}, time_scale = ${t.timeScale} (both must be > 0)`);
  }
  const num = t.timeScale;
  const den = 2 * t.numUnitsInTick;
  const fps = num / den;
  if (fps < MIN_FRAME_RATE || fps > MAX_FRAME_RATE) {
    throw new RangeError(
      `SPS VUI timing gives ${+fps.toFixed(3)} fps (time_scale ${t.timeScale}, num_units_in_tick ${t.numUnitsInTick}), outside ${MIN_FRAME_RATE}..${MAX_FRAME_RATE}`,
    );
  }
  const g = gcd(num, den);
  return { num: num / g, den: den / g };
}

/** RFC 6184 profile-level-id: profile_idc, constraint flags and level_idc of an SPS NAL unit, 6 lowercase hex digits. */
export function profileLevelId(sps: Uint8Array): string {
  const rbsp = spsRbsp(sps);
  if (rbsp.length < 3) throw new RangeError(`SPS of ${rbsp.length} RBSP bytes is too short for profile-level-id`);
  let out = '';
  for (let i = 0; i < 3; i++) out += rbsp[i]!.toString(16).padStart(2, '0');
  return out;
}

/**
 * H264Params for a track from its parameter set NAL units (e.g. avcC or the Annex B
 * stream): size, profile-level-id and VUI frame rate from the first SPS. The arrays
 * are kept as given (not copied). A VUI frame rate outside 1..240 fps is left out
 * rather than failing the track: containers carry their own timing.
 */
export function h264ParamsFromParameterSets(sps: Uint8Array[], pps: Uint8Array[]): H264Params {
  if (sps.length === 0) throw new RangeError('no SPS');
  if (pps.length === 0) throw new RangeError('no PPS');
  const first = parseSps(sps[0]!);
  for (const p of pps) parsePps(p);
  const params: H264Params = {
    sps,
    pps,
    profileLevelId: profileLevelId(sps[0]!),
    width: first.width,
    height: first.height,
  };
  let rate: FrameRate | undefined;
  try {
    rate = vuiFrameRate(first);
  } catch {
    rate = undefined;
  }
  if (rate) params.frameRate = rate.num / rate.den;
  return params;
}
