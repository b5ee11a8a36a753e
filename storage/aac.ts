/**
 * AAC helpers: AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), the 7-byte ADTS
 * header (14496-3 1.A.2) that turns raw access units into a playable .aac stream,
 * and an ADTS frame splitter for reading such streams back.
 * Pure byte arithmetic; parsers are views over the caller's bytes.
 */

/** samplingFrequencyIndex 0..12 (13, 14 reserved; 15 = explicit 24-bit value). */
export const AAC_SAMPLE_RATES: readonly number[] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** Object types that signal SBR (HE-AAC) or SBR+PS (HE-AAC v2) explicitly. */
export const AOT_AAC_LC = 2;
export const AOT_SBR = 5;
export const AOT_PS = 29;

export interface AudioSpecificConfig {
  /** audioObjectType as signalled first (5 or 29 for explicit HE-AAC/HE-AAC v2). */
  objectType: number;
  /** The core codec's object type: the one after the SBR extension, else objectType. */
  coreObjectType: number;
  /** Core sampling frequency (for HE-AAC the AAC core runs at half the output rate). */
  sampleRate: number;
  /** 0..12, or 15 when the frequency is written explicitly. */
  sampleRateIndex: number;
  /** channelConfiguration as coded (0 = defined by a program config element). */
  channelConfiguration: number;
  /** Output channels for channelConfiguration 1..14; 0 when defined by a PCE. */
  channels: number;
  /** Samples per channel per access unit: 1024/960 (GA), 512/480 (LD/ELD). */
  frameLength: number;
}

/** Channels per channelConfiguration (14496-3 table 1.19, with the 2013 additions). */
const CHANNELS_BY_CONFIG = [0, 1, 2, 3, 4, 5, 6, 8, 0, 0, 0, 7, 8, 24, 8];

/** Object types whose config starts with GASpecificConfig (frameLengthFlag first). */
const GA_OBJECT_TYPES = new Set([1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23]);
const AOT_ER_AAC_LD = 23;
const AOT_ER_AAC_ELD = 39;

/** MSB-first bit reader over a byte view; reading past the end throws RangeError. */
class BitReader {
  private bitPos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  read(bits: number): number {
    if (this.bitPos + bits > this.bytes.length * 8) {
      throw new RangeError(`AudioSpecificConfig: needs more than its ${this.bytes.length} bytes (reading ${bits} bits at bit ${this.bitPos})`);
    }
    let value = 0;
    for (let i = 0; i < bits; i++) {
      const byte = this.bytes[this.bitPos >> 3]!;
      value = value * 2 + ((byte >> (7 - (this.bitPos & 7))) & 1);
      this.bitPos++;
    }
    return value;
  }
}

function readObjectType(r: BitReader): number {
  const aot = r.read(5);
  return aot === 31 ? 32 + r.read(6) : aot;
}

/** Returns [index, rate]; index 15 carries an explicit 24-bit frequency. */
function readSampleRate(r: BitReader): [number, number] {
  const index = r.read(4);
  if (index === 15) {
    const rate = r.read(24);
    if (rate === 0) throw new TypeError('AudioSpecificConfig: explicit sampling frequency is 0');
    return [15, rate];
  }
  const rate = AAC_SAMPLE_RATES[index];
  if (rate === undefined) throw new TypeError(`AudioSpecificConfig: reserved samplingFrequencyIndex ${index}`);
  return [index, rate];
}

/**
 * Parses the fields of an AudioSpecificConfig that streaming needs. Bits after the
 * frame-length flag (PCE, extension flags, a trailing SBR sync extension as ffmpeg
 * writes: "119056E500") are not interpreted. Throws TypeError for values no AAC
 * stream uses (object type 0, reserved frequency index) and RangeError when the
 * bytes end early.
 */
export function parseAudioSpecificConfig(bytes: Uint8Array): AudioSpecificConfig {
  const r = new BitReader(bytes);
  const objectType = readObjectType(r);
  if (objectType === 0) throw new TypeError('AudioSpecificConfig: audioObjectType 0 (null object)');
  const [sampleRateIndex, sampleRate] = readSampleRate(r);
  const channelConfiguration = r.read(4);
  let coreObjectType = objectType;
  if (objectType === AOT_SBR || objectType === AOT_PS) {
    readSampleRate(r); // extensionSamplingFrequency: the SBR output rate
    coreObjectType = readObjectType(r);
    if (coreObjectType === 22) r.read(4); // extensionChannelConfiguration (ER BSAC)
  }
  let frameLength = 1024;
  if (GA_OBJECT_TYPES.has(coreObjectType)) {
    const frameLengthFlag = r.read(1);
    if (coreObjectType === AOT_ER_AAC_LD) frameLength = frameLengthFlag ? 480 : 512;
    else frameLength = frameLengthFlag ? 960 : 1024;
  } else if (coreObjectType === AOT_ER_AAC_ELD) {
    frameLength = r.read(1) ? 480 : 512;
  }
  const channels = CHANNELS_BY_CONFIG[channelConfiguration] ?? 0;
  return { objectType, coreObjectType, sampleRate, sampleRateIndex, channelConfiguration, channels, frameLength };
}

/**
 * Builds a minimal AudioSpecificConfig (GASpecificConfig with all flags 0) for an
 * object type below 31, a tabled sample rate (else explicit) and channelConfiguration.
 */
export function buildAudioSpecificConfig(objectType: number, sampleRate: number, channelConfiguration: number): Uint8Array {
  if (!Number.isInteger(objectType) || objectType < 1 || objectType > 30) {
    throw new RangeError(`AudioSpecificConfig: objectType ${objectType} not in 1..30`);
  }
  if (!Number.isInteger(channelConfiguration) || channelConfiguration < 0 || channelConfiguration > 15) {
    throw new RangeError(`AudioSpecificConfig: channelConfiguration ${channelConfiguration} not in 0..15`);
  }
  if (!Number.isInteger(sampleRate) || sampleRate < 1 || sampleRate > 0xffffff) {
    throw new RangeError(`AudioSpecificConfig: sample rate ${sampleRate} not in 1..16777215`);
  }
  const index = AAC_SAMPLE_RATES.indexOf(sampleRate);
  if (index >= 0) {
    // 5 + 4 + 4 + 3 (GASpecificConfig flags) = 16 bits.
    const bits = (objectType << 11) | (index << 7) | (channelConfiguration << 3);
    return Uint8Array.of(bits >> 8, bits & 0xff);
  }
  // 5 + 4 + 24 + 4 + 3 = 40 bits.
  const hi = objectType * 2 ** 35 + 15 * 2 ** 31 + sampleRate * 2 ** 7 + channelConfiguration * 2 ** 3;
  const out = new Uint8Array(5);
  let v = hi;
  for (let i = 4; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

export const ADTS_HEADER_BYTES = 7;
/** frame_length is 13 bits and includes the header. */
export const ADTS_MAX_FRAME_BYTES = 0x1fff;

/**
 * Writes the 7-byte ADTS header (MPEG-4, no CRC, one raw data block, buffer
 * fullness 0x7FF = VBR) for an access unit of `auLength` bytes into `out` at
 * `offset` (a new array by default) and returns `out`. ADTS can express only
 * object types 1..4 (HE-AAC is written as its LC core, as encoders do), tabled
 * sample rates and channelConfiguration 0..7: anything else throws RangeError, as
 * does an AU longer than 8184 bytes.
 */
export function adtsHeader(
  asc: Pick<AudioSpecificConfig, 'coreObjectType' | 'sampleRateIndex' | 'channelConfiguration'>,
  auLength: number,
  out: Uint8Array = new Uint8Array(ADTS_HEADER_BYTES),
  offset = 0,
): Uint8Array {
  const profile = asc.coreObjectType - 1;
  if (profile < 0 || profile > 3) throw new RangeError(`ADTS: object type ${asc.coreObjectType} cannot be expressed (1..4 only)`);
  if (asc.sampleRateIndex > 12) throw new RangeError('ADTS: explicit sampling frequencies cannot be expressed');
  if (asc.channelConfiguration > 7) {
    throw new RangeError(`ADTS: channelConfiguration ${asc.channelConfiguration} cannot be expressed (0..7 only)`);
  }
  const frameLength = auLength + ADTS_HEADER_BYTES;
  if (!Number.isInteger(auLength) || auLength < 0 || frameLength > ADTS_MAX_FRAME_BYTES) {
    throw new RangeError(`ADTS: access unit of ${auLength} bytes does not fit a frame (max ${ADTS_MAX_FRAME_BYTES - ADTS_HEADER_BYTES})`);
  }
  if (offset < 0 || offset + ADTS_HEADER_BYTES > out.length) {
    throw new RangeError(`ADTS: no room for a header at offset ${offset} of ${out.length} bytes`);
  }
  const ch = asc.channelConfiguration;
  out[offset] = 0xff;
  out[offset + 1] = 0xf1; // sync low nibble, ID 0 (MPEG-4), layer 00, protection_absent 1
  out[offset + 2] = (profile << 6) | (asc.sampleRateIndex << 2) | (ch >> 2);
  out[offset + 3] = ((ch & 3) << 6) | (frameLength >> 11);
  out[offset + 4] = (frameLength >> 3) & 0xff;
  out[offset + 5] = ((frameLength & 7) << 5) | 0x1f; // + buffer fullness high 5 bits
  out[offset + 6] = 0xfc; // buffer fullness low 6 bits, number_of_raw_data_blocks_in_frame 0
  return out;
}

export interface AdtsFrame {
  /** File/stream offset of the header. */
  offset: number;
  /** Object type = profile + 1. */
  objectType: number;
  sampleRateIndex: number;
  /** 0 for the reserved indexes 13, 14. */
  sampleRate: number;
  channelConfiguration: number;
  /** 7, or 9 with a CRC. */
  headerLength: number;
  /** The whole frame including its header (frame_length). */
  frameLength: number;
  /** number_of_raw_data_blocks_in_frame + 1. */
  rawDataBlocks: number;
  /** The raw data after the header: a view over the caller's bytes (from parseAdtsHeader: the bytes present, possibly cut). */
  data: Uint8Array;
}

/**
 * Parses the ADTS header at `offset`. Throws TypeError when there is no ADTS
 * syncword there, RangeError when the header itself is cut or declares a length
 * shorter than the header. The frame body may extend past `bytes` (then `data`
 * holds only the bytes present).
 */
export function parseAdtsHeader(bytes: Uint8Array, offset: number): AdtsFrame {
  if (offset + ADTS_HEADER_BYTES > bytes.length) {
    throw new RangeError(`ADTS: header at byte ${offset} is cut (${bytes.length - offset} bytes left)`);
  }
  const b1 = bytes[offset + 1]!;
  if (bytes[offset] !== 0xff || (b1 & 0xf6) !== 0xf0) throw new TypeError(`ADTS: no syncword at byte ${offset}`);
  const b2 = bytes[offset + 2]!;
  const b3 = bytes[offset + 3]!;
  const sampleRateIndex = (b2 >> 2) & 0xf;
  const frameLength = ((b3 & 3) << 11) | (bytes[offset + 4]! << 3) | (bytes[offset + 5]! >> 5);
  const headerLength = b1 & 1 ? 7 : 9;
  if (frameLength < headerLength) {
    throw new RangeError(`ADTS: frame at byte ${offset} declares ${frameLength} bytes, less than its ${headerLength}-byte header`);
  }
  return {
    offset,
    objectType: (b2 >> 6) + 1,
    sampleRateIndex,
    sampleRate: AAC_SAMPLE_RATES[sampleRateIndex] ?? 0,
    channelConfiguration: ((b2 & 1) << 2) | (b3 >> 6),
    headerLength,
    frameLength,
    rawDataBlocks: (bytes[offset + 6]! & 3) + 1,
    data: bytes.subarray(offset + headerLength, offset + frameLength),
  };
}

/**
 * Splits an ADTS stream into frames. Stops at a frame cut by the end of `bytes`
 * (a truncated recording): `end` is the offset just after the last whole frame, so
 * `end < bytes.length` says a tail was left. Throws TypeError when a frame does not
 * start where the previous one ended (lost sync, not ADTS).
 */
export function parseAdtsFrames(bytes: Uint8Array): { frames: AdtsFrame[]; end: number } {
  const frames: AdtsFrame[] = [];
  let offset = 0;
  while (offset + ADTS_HEADER_BYTES <= bytes.length) {
    const frame = parseAdtsHeader(bytes, offset);
    if (offset + frame.frameLength > bytes.length) break;
    frames.push(frame);
    offset += frame.frameLength;
  }
  return { frames, end: offset };
}
