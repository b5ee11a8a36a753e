/**
 * Opus packet framing (RFC 6716 section 3): the TOC byte (3.1), the frame-length
 * coding (3.2.1), the four frame-count codes (3.2.2-3.2.5) and the validity rules
 * R1-R7 of 3.4. Durations are in 48 kHz samples, the RTP clock of RFC 7587.
 *
 * The one home of Opus TOC logic: the file reader (storage/ogg.ts), the Ogg
 * writer of recordings and the RTP depacketizer (offload/codecs/opus) use it.
 * `opusPacketError` is the data-plane entry: it never throws and allocates
 * nothing, and says which rule a packet breaks. `opusPacketDuration` is the
 * readers' entry: a packet's duration, or RangeError. `parseOpusPacket` is for
 * tools and tests: it throws RangeError with `opusPacketError`'s message.
 */

export type OpusMode = 'silk' | 'hybrid' | 'celt';
/** Audio bandwidth: narrow, medium, wide, super-wide, full. */
export type OpusBandwidth = 'nb' | 'mb' | 'wb' | 'swb' | 'fb';

export interface OpusConfig {
  /** The 5-bit config number, 0..31. */
  config: number;
  mode: OpusMode;
  bandwidth: OpusBandwidth;
  /** Duration of each frame in 48 kHz samples (120 = 2.5 ms ... 2880 = 60 ms). */
  frameSamples: number;
}

export interface OpusPacketInfo extends OpusConfig {
  stereo: boolean;
  /** Frame-count code c, 0..3. */
  code: number;
  /** Byte length of each frame; 0 is a legal length (DTX or lost frame). */
  frameLengths: number[];
  /** Code 3: padding bytes, counting the padding-length bytes; else 0. */
  padding: number;
  /** Total duration: frame count x frameSamples. */
  samples: number;
}

/** No frame may be longer than this (R2), and no length field can code more. */
export const OPUS_MAX_FRAME_BYTES = 1275;
/** R5: at most 120 ms of audio per packet. */
export const OPUS_MAX_PACKET_SAMPLES = 5760;

/** RFC 6716 Table 2, one row per config number. */
const CONFIGS: readonly OpusConfig[] = Object.freeze(buildConfigs());

function buildConfigs(): OpusConfig[] {
  const rows: OpusConfig[] = [];
  const silkSizes = [480, 960, 1920, 2880]; // 10, 20, 40, 60 ms
  const hybridSizes = [480, 960]; //           10, 20 ms
  const celtSizes = [120, 240, 480, 960]; //   2.5, 5, 10, 20 ms
  for (const bandwidth of ['nb', 'mb', 'wb'] as const) {
    for (const frameSamples of silkSizes) rows.push({ config: rows.length, mode: 'silk', bandwidth, frameSamples });
  }
  for (const bandwidth of ['swb', 'fb'] as const) {
    for (const frameSamples of hybridSizes) rows.push({ config: rows.length, mode: 'hybrid', bandwidth, frameSamples });
  }
  for (const bandwidth of ['nb', 'wb', 'swb', 'fb'] as const) {
    for (const frameSamples of celtSizes) rows.push({ config: rows.length, mode: 'celt', bandwidth, frameSamples });
  }
  for (const row of rows) Object.freeze(row);
  return rows;
}

/** Frame duration in 48 kHz samples for each config, for the per-packet path. */
const FRAME_SAMPLES = Int32Array.from(CONFIGS, (row) => row.frameSamples);

/** The configuration (mode, bandwidth, frame size) a TOC byte selects. */
export function opusConfig(toc: number): OpusConfig {
  return CONFIGS[(toc >> 3) & 0x1f]!;
}

/** Duration of one frame, in 48 kHz samples, for a TOC byte. */
export function opusFrameSamples(toc: number): number {
  return FRAME_SAMPLES[(toc >> 3) & 0x1f]!;
}

export function opusIsStereo(toc: number): boolean {
  return (toc & 0x04) !== 0;
}

/**
 * Number of frames in a packet, from its first bytes only (TOC, and the frame
 * count byte for code 3); -1 when the packet is too short to say.
 * Does not check the rest of the packet: see opusPacketError.
 */
export function opusFrameCount(packet: Uint8Array): number {
  if (packet.length < 1) return -1;
  const code = packet[0]! & 0x03;
  if (code === 0) return 1;
  if (code !== 3) return 2;
  return packet.length < 2 ? -1 : packet[1]! & 0x3f;
}

/** Duration of a packet in 48 kHz samples, from its first bytes; -1 when too short. */
export function opusPacketSamples(packet: Uint8Array): number {
  const frames = opusFrameCount(packet);
  return frames < 0 ? -1 : frames * opusFrameSamples(packet[0]!);
}

/**
 * Duration of a packet in 48 kHz samples, from its TOC byte and, for code 3,
 * the frame count byte (RFC 6716 3.1, 3.2.5). RangeError for an empty packet,
 * a missing or zero frame count, or more than 120 ms (R5).
 */
export function opusPacketDuration(packet: Uint8Array): number {
  if (packet.length === 0) throw new RangeError('empty Opus packet');
  const frames = opusFrameCount(packet);
  if (frames < 0) throw new RangeError('Opus code 3 packet has no frame count byte');
  if (frames === 0) throw new RangeError('Opus code 3 packet declares 0 frames');
  const samples = frames * opusFrameSamples(packet[0]!);
  if (samples > OPUS_MAX_PACKET_SAMPLES) {
    throw new RangeError(`Opus packet lasts ${samples / 48} ms (${frames} frames), more than 120 ms`);
  }
  return samples;
}

/**
 * Why a packet is malformed per RFC 6716 3.4 (message starts with the rule, e.g.
 * "[R3] ..."), or null when it is valid. Never throws.
 */
export function opusPacketError(packet: Uint8Array): string | null {
  return walkOpusPacket(packet, null);
}

/**
 * Full parse of one Opus packet. Throws RangeError naming the violated rule
 * (R1-R7) when the packet is malformed.
 */
export function parseOpusPacket(packet: Uint8Array): OpusPacketInfo {
  const layout: PacketLayout = { frameLengths: [], padding: 0 };
  const error = walkOpusPacket(packet, layout);
  if (error !== null) throw new RangeError(`Opus packet: ${error}`);
  const toc = packet[0]!;
  const config = opusConfig(toc);
  return {
    ...config,
    stereo: opusIsStereo(toc),
    code: toc & 0x03,
    frameLengths: layout.frameLengths,
    padding: layout.padding,
    samples: layout.frameLengths.length * config.frameSamples,
  };
}

interface PacketLayout {
  frameLengths: number[];
  padding: number;
}

/**
 * Reads a frame length (3.2.1) at `pos`, bounded by `end`: one byte below 252,
 * else two (first + 4 x second). Returns -1 when the field is cut off; the field's
 * size is frameLengthBytes(first byte).
 */
function readFrameLength(packet: Uint8Array, pos: number, end: number): number {
  if (pos >= end) return -1;
  const first = packet[pos]!;
  if (first < 252) return first;
  if (pos + 1 >= end) return -1;
  return packet[pos + 1]! * 4 + first;
}

function frameLengthBytes(firstByte: number): number {
  return firstByte < 252 ? 1 : 2;
}

/** Shared walk for validation and parsing; fills `layout` only when given. */
function walkOpusPacket(packet: Uint8Array, layout: PacketLayout | null): string | null {
  const length = packet.length;
  if (length < 1) return '[R1] empty packet (at least the TOC byte is required)';
  const code = packet[0]! & 0x03;

  if (code === 0) {
    const frame = length - 1;
    if (frame > OPUS_MAX_FRAME_BYTES) return `[R2] code 0 frame of ${frame} bytes exceeds ${OPUS_MAX_FRAME_BYTES}`;
    if (layout) layout.frameLengths.push(frame);
    return null;
  }

  if (code === 1) {
    if ((length - 1) % 2 !== 0) return `[R3] code 1 packet of ${length} bytes: ${length - 1} bytes after the TOC do not split into two equal frames`;
    const frame = (length - 1) / 2;
    if (frame > OPUS_MAX_FRAME_BYTES) return `[R2] code 1 frames of ${frame} bytes exceed ${OPUS_MAX_FRAME_BYTES}`;
    if (layout) layout.frameLengths.push(frame, frame);
    return null;
  }

  if (code === 2) {
    const first = readFrameLength(packet, 1, length);
    if (first < 0) return `[R4] code 2 packet of ${length} bytes is too short for the first frame's length`;
    const header = 1 + frameLengthBytes(packet[1]!);
    if (first > length - header) {
      return `[R4] code 2 first frame of ${first} bytes exceeds the ${length - header} bytes remaining`;
    }
    const second = length - header - first;
    if (second > OPUS_MAX_FRAME_BYTES) return `[R2] code 2 second frame of ${second} bytes exceeds ${OPUS_MAX_FRAME_BYTES}`;
    if (layout) layout.frameLengths.push(first, second);
    return null;
  }

  // Code 3: TOC, frame count byte, optional padding length, optional frame lengths.
  if (length < 2) return '[R6] code 3 packet of 1 byte lacks the frame count byte';
  const countByte = packet[1]!;
  const vbr = (countByte & 0x80) !== 0;
  const padded = (countByte & 0x40) !== 0;
  const frames = countByte & 0x3f;
  if (frames === 0) return '[R5] code 3 packet declares 0 frames';
  const samples = frames * opusFrameSamples(packet[0]!);
  if (samples > OPUS_MAX_PACKET_SAMPLES) {
    return `[R5] code 3 packet of ${frames} frames holds ${samples / 48} ms, more than 120 ms`;
  }

  let pos = 2;
  // Padding: each 255 adds 254 bytes and continues; any other value ends the run.
  let trailingPadding = 0;
  let padding = 0;
  if (padded) {
    for (;;) {
      if (pos >= length) return `[${vbr ? 'R7' : 'R6'}] code 3 packet of ${length} bytes ends inside its padding length`;
      const value = packet[pos++]!;
      padding++;
      if (value === 255) {
        trailingPadding += 254;
      } else {
        trailingPadding += value;
        break;
      }
    }
    padding += trailingPadding;
  }

  if (!vbr) {
    // R6: (N - 2 - P) is a non-negative multiple of M.
    const data = length - 2 - padding;
    if (data < 0) return `[R6] code 3 packet of ${length} bytes declares ${padding} bytes of padding`;
    if (data % frames !== 0) return `[R6] code 3 CBR packet: ${data} bytes of frame data do not split into ${frames} equal frames`;
    const frame = data / frames;
    if (frame > OPUS_MAX_FRAME_BYTES) return `[R2] code 3 CBR frames of ${frame} bytes exceed ${OPUS_MAX_FRAME_BYTES}`;
    if (layout) {
      for (let i = 0; i < frames; i++) layout.frameLengths.push(frame);
      layout.padding = padding;
    }
    return null;
  }

  // R7: room for the M-1 length fields, those frames, and the trailing padding.
  const end = length - trailingPadding;
  if (end < pos) return `[R7] code 3 packet of ${length} bytes declares ${padding} bytes of padding`;
  let framesTotal = 0;
  for (let i = 0; i < frames - 1; i++) {
    const frame = readFrameLength(packet, pos, end);
    if (frame < 0) return `[R7] code 3 VBR packet of ${length} bytes ends inside the length of frame ${i + 1}`;
    pos += frameLengthBytes(packet[pos]!);
    framesTotal += frame;
    if (layout) layout.frameLengths.push(frame);
  }
  const last = end - pos - framesTotal;
  if (last < 0) {
    return `[R7] code 3 VBR packet: ${frames - 1} frames declare ${framesTotal} bytes, ${end - pos} remain before the padding`;
  }
  if (last > OPUS_MAX_FRAME_BYTES) return `[R2] code 3 VBR last frame of ${last} bytes exceeds ${OPUS_MAX_FRAME_BYTES}`;
  if (layout) {
    layout.frameLengths.push(last);
    layout.padding = padding;
  }
  return null;
}
