/**
 * WAV writer for recordings: 16-bit PCM (L16 received as little-endian) or G.711
 * bytes. The sizes in the header are unknown while recording: begin() writes
 * 0xFFFFFFFF there (the usual "streaming, read to the end of the file" marker)
 * and end() patches the real header over it. Timestamp gaps become silence, so
 * the file keeps the stream's timing.
 */
import { WAVE_FORMAT_ALAW, WAVE_FORMAT_MULAW, WAVE_FORMAT_PCM } from '../wav.js';
import type { ContainerWriter, FilePatch, RecordedFrame } from './types.js';

export type WavCodec = 'pcm_s16le' | 'pcm_mulaw' | 'pcm_alaw';

export interface WavFormat {
  codec: WavCodec;
  sampleRate: number;
  channels: number;
}

export interface WavWriterOptions extends WavFormat {
  /**
   * A timestamp jump longer than this is a discontinuity (not filled with silence),
   * so a bogus jump cannot make the writer emit hours of silence at once. Default 30 s.
   */
  maxGapMs?: number;
}

export interface WavWriterStats {
  /** Sample frames written, silence included. */
  frames: number;
  /** Frames dropped: timestamp going back, not whole sample frames, or past the 4 GiB limit. */
  dropped: number;
  /** Sample frames of silence inserted at timestamp gaps. */
  silenceFrames: number;
  /** Gaps longer than maxGapMs, left unfilled. */
  discontinuities: number;
}

/** Header of a PCM file: RIFF, fmt (16 bytes), data. */
export const WAV_PCM_HEADER_BYTES = 44;
/** Header of a G.711 file: RIFF, fmt (WAVEFORMATEX, 18 bytes), fact, data. */
export const WAV_G711_HEADER_BYTES = 58;
/** Size fields of an unfinished file. */
const UNKNOWN_SIZE = 0xffffffff;
export const DEFAULT_MAX_GAP_MS = 30000;
/** Silence is emitted as views of one shared block of this size. */
const SILENCE_BLOCK_BYTES = 64 * 1024;

/** Byte that decodes to (near) zero: 0 for PCM, 0xFF for mu-law, 0xD5 for A-law (G.711). */
export function silenceByte(codec: WavCodec): number {
  return codec === 'pcm_mulaw' ? 0xff : codec === 'pcm_alaw' ? 0xd5 : 0x00;
}

export function wavHeaderBytes(codec: WavCodec): number {
  return codec === 'pcm_s16le' ? WAV_PCM_HEADER_BYTES : WAV_G711_HEADER_BYTES;
}

function bytesPerSample(codec: WavCodec): number {
  return codec === 'pcm_s16le' ? 2 : 1;
}

/** Largest data chunk: the RIFF size (header - 8 + data + pad byte) must fit 32 bits. */
export function wavMaxDataBytes(format: WavFormat): number {
  const blockAlign = format.channels * bytesPerSample(format.codec);
  const max = UNKNOWN_SIZE - 1 - (wavHeaderBytes(format.codec) - 8);
  return max - (max % blockAlign);
}

function checkFormat(format: WavFormat): void {
  if (format.codec !== 'pcm_s16le' && format.codec !== 'pcm_mulaw' && format.codec !== 'pcm_alaw') {
    throw new RangeError(`WAV: codec ${String(format.codec)} is not one of pcm_s16le, pcm_mulaw, pcm_alaw`);
  }
  if (!Number.isInteger(format.sampleRate) || format.sampleRate < 1 || format.sampleRate > 0xffffffff) {
    throw new RangeError(`WAV: sample rate ${format.sampleRate} is not a positive 32-bit integer`);
  }
  if (!Number.isInteger(format.channels) || format.channels < 1 || format.channels > 255) {
    throw new RangeError(`WAV: ${format.channels} channels (need 1..255)`);
  }
}

/**
 * The complete header for `dataBytes` bytes of sample data (pure; recovery uses it
 * to rewrite the header of a file cut by a crash). Pass 0xFFFFFFFF for "unknown".
 * PCM: the canonical 44-byte header. G.711: a WAVEFORMATEX (cbSize 0) and a `fact`
 * chunk with the sample frame count, as non-PCM formats require.
 */
export function wavHeader(format: WavFormat, dataBytes: number): Uint8Array {
  checkFormat(format);
  const unknown = dataBytes === UNKNOWN_SIZE;
  if (!unknown && (!Number.isInteger(dataBytes) || dataBytes < 0 || dataBytes > wavMaxDataBytes(format))) {
    throw new RangeError(`WAV: ${dataBytes} bytes of data do not fit a WAV file (max ${wavMaxDataBytes(format)})`);
  }
  const { codec, sampleRate, channels } = format;
  const pcm = codec === 'pcm_s16le';
  const headerBytes = wavHeaderBytes(codec);
  const blockAlign = channels * bytesPerSample(codec);
  const out = new Uint8Array(headerBytes);
  const view = new DataView(out.buffer);
  const ascii = (at: number, text: string): void => {
    for (let i = 0; i < 4; i++) out[at + i] = text.charCodeAt(i);
  };
  // A chunk of odd size is followed by a pad byte, counted in the RIFF size.
  const riffSize = unknown ? UNKNOWN_SIZE : headerBytes - 8 + dataBytes + (dataBytes & 1);
  ascii(0, 'RIFF');
  view.setUint32(4, riffSize, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, pcm ? 16 : 18, true);
  view.setUint16(20, pcm ? WAVE_FORMAT_PCM : codec === 'pcm_mulaw' ? WAVE_FORMAT_MULAW : WAVE_FORMAT_ALAW, true);
  view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * blockAlign, true); // byte rate
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, bytesPerSample(codec) * 8, true);
  let at = 36;
  if (!pcm) {
    view.setUint16(36, 0, true); // cbSize
    ascii(38, 'fact');
    view.setUint32(42, 4, true);
    view.setUint32(46, unknown ? UNKNOWN_SIZE : dataBytes / blockAlign, true);
    at = 50;
  }
  ascii(at, 'data');
  view.setUint32(at + 4, dataBytes, true);
  return out;
}

const silenceBlocks = new Map<number, Uint8Array>();

/** A shared read-only-by-convention block of silence bytes. */
function silenceBlock(value: number): Uint8Array {
  let block = silenceBlocks.get(value);
  if (block === undefined) {
    block = new Uint8Array(SILENCE_BLOCK_BYTES).fill(value);
    silenceBlocks.set(value, block);
  }
  return block;
}

/**
 * Chunks returned by frame() are views of the frame's own bytes and of a shared
 * silence block: the caller copies them (DurableFile.write does) before the frame's
 * buffer is reused, and never writes into them.
 */
export class WavWriter implements ContainerWriter {
  readonly ext = 'wav';
  readonly contentType = 'audio/wav';
  readonly format: WavFormat;
  readonly stats: WavWriterStats = { frames: 0, dropped: 0, silenceFrames: 0, discontinuities: 0 };

  private readonly blockAlign: number;
  private readonly maxDataBytes: number;
  private readonly maxGapFrames: number;
  private readonly silence: Uint8Array;
  private state: 'new' | 'writing' | 'ended' = 'new';
  private dataBytes = 0;
  /** Timestamp the next frame should carry; NaN before the first. */
  private nextTs = Number.NaN;

  constructor(opts: WavWriterOptions) {
    checkFormat(opts);
    const maxGapMs = opts.maxGapMs ?? DEFAULT_MAX_GAP_MS;
    if (!(maxGapMs >= 0)) throw new RangeError(`WavWriter: maxGapMs ${maxGapMs} is negative`);
    this.format = { codec: opts.codec, sampleRate: opts.sampleRate, channels: opts.channels };
    this.blockAlign = opts.channels * bytesPerSample(opts.codec);
    this.maxDataBytes = wavMaxDataBytes(this.format);
    this.maxGapFrames = Math.round((maxGapMs * opts.sampleRate) / 1000);
    this.silence = silenceBlock(silenceByte(opts.codec));
  }

  /** Bytes of sample data written so far. */
  get dataLength(): number {
    return this.dataBytes;
  }

  begin(): Uint8Array[] {
    if (this.state !== 'new') throw new Error('WavWriter: begin() was already called');
    this.state = 'writing';
    return [wavHeader(this.format, UNKNOWN_SIZE)];
  }

  frame(f: RecordedFrame): Uint8Array[] {
    if (this.state !== 'writing') throw new Error(`WavWriter: frame() ${this.state === 'new' ? 'before begin()' : 'after end()'}`);
    const data = f.data;
    const frames = data.length / this.blockAlign;
    if (!Number.isSafeInteger(f.ts) || !Number.isInteger(frames) || f.ts < this.nextTs) {
      this.stats.dropped++;
      return [];
    }
    const out: Uint8Array[] = [];
    if (f.ts > this.nextTs) {
      const gap = f.ts - this.nextTs;
      if (gap > this.maxGapFrames) this.stats.discontinuities++;
      else if (!this.fillSilence(gap, out)) {
        this.stats.dropped++;
        return [];
      }
    }
    if (this.dataBytes + data.length > this.maxDataBytes) {
      this.stats.dropped++;
      return out;
    }
    if (data.length > 0) out.push(data);
    this.dataBytes += data.length;
    this.stats.frames += frames;
    this.nextTs = f.ts + frames;
    return out;
  }

  /** Nothing is held back: every frame's bytes were returned by frame(). */
  flush(): Uint8Array[] {
    return [];
  }

  /** A pad byte if the data is odd-sized, and the real header over the placeholder. */
  end(): { tail: Uint8Array[]; patches: FilePatch[] } {
    if (this.state === 'new') throw new Error('WavWriter: end() before begin()');
    if (this.state === 'ended') return { tail: [], patches: [] };
    this.state = 'ended';
    const tail = this.dataBytes & 1 ? [new Uint8Array(1)] : [];
    return { tail, patches: [{ offset: 0, bytes: wavHeader(this.format, this.dataBytes) }] };
  }

  /** Appends `frames` sample frames of silence; false when they would pass the size limit. */
  private fillSilence(frames: number, out: Uint8Array[]): boolean {
    let bytes = frames * this.blockAlign;
    if (this.dataBytes + bytes > this.maxDataBytes) return false;
    this.dataBytes += bytes;
    this.stats.frames += frames;
    this.stats.silenceFrames += frames;
    const step = SILENCE_BLOCK_BYTES - (SILENCE_BLOCK_BYTES % this.blockAlign);
    while (bytes > 0) {
      const n = Math.min(step, bytes);
      out.push(this.silence.subarray(0, n));
      bytes -= n;
    }
    return true;
  }
}
