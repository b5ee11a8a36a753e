/**
 * WAV (RIFF/WAVE) reader: 16-bit PCM (mono/stereo, 8-48 kHz) and 8-bit G.711
 * (mu-law, A-law; mono 8 kHz, as recordings write it). Streams the data chunk in
 * fixed-size blocks of whole sample frames.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { closedError, CorruptMediaError, UnsupportedMediaError } from './errors.js';
import { readAt, readInto } from './io.js';
import type { MediaReader, Probe, Sample, SampleOptions, SourceCodec } from './types.js';

export const WAVE_FORMAT_PCM = 0x0001;
export const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
export const WAVE_FORMAT_ALAW = 0x0006;
export const WAVE_FORMAT_MULAW = 0x0007;
export const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

/** Bytes of sample data per Sample (rounded down to whole frames). */
const BLOCK_BYTES = 64 * 1024;
/** First read of the header; chunks before `data` rarely exceed it. */
const HEAD_BYTES = 64 * 1024;
/** Largest header (all chunks before `data`) we read; bounds memory on odd files. */
const MAX_HEAD_BYTES = 4 * 1024 * 1024;

/** KSDATAFORMAT_SUBTYPE_* GUIDs share these bytes after the 16-bit format code. */
const SUBFORMAT_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

export interface WavHeader {
  /** Format tag, with WAVE_FORMAT_EXTENSIBLE resolved to its subformat when that is a known GUID. */
  formatTag: number;
  /** The fmt chunk used WAVE_FORMAT_EXTENSIBLE. */
  extensible: boolean;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  /** Bytes per sample frame (all channels). */
  blockAlign: number;
  /** File offset of the first byte of sample data. */
  dataOffset: number;
  /** Bytes of sample data (a whole number of frames). */
  dataBytes: number;
  /** Sample frames in the data chunk. */
  frames: number;
}

/**
 * Thrown by parseWavHeader when the chunks before `data` extend past the bytes it
 * was given (but not past the file): the caller reads `bytesNeeded` and retries.
 */
export class WavHeaderIncompleteError extends RangeError {
  readonly bytesNeeded: number;
  constructor(bytesNeeded: number) {
    super(`WAV header needs at least ${bytesNeeded} bytes`);
    this.name = 'WavHeaderIncompleteError';
    this.bytesNeeded = bytesNeeded;
  }
}

function fourcc(buf: Uint8Array, offset: number): string {
  return String.fromCharCode(buf[offset]!, buf[offset + 1]!, buf[offset + 2]!, buf[offset + 3]!);
}

/** A printable form of a chunk id for messages (ids are arbitrary bytes). */
function printable(id: string): string {
  return JSON.stringify(id);
}

/**
 * Walks the RIFF/WAVE chunks in `buf` (the first bytes of a file of `fileSize`
 * bytes) and returns the format and the location of the sample data. Chunks other
 * than `fmt ` and `data` are skipped, honoring the pad byte after odd sizes.
 * Throws TypeError when this is not a RIFF/WAVE file, RangeError when lengths are
 * inconsistent (truncated header or data, missing chunks, partial frames), and
 * WavHeaderIncompleteError when `buf` is too short to reach the data chunk.
 */
export function parseWavHeader(buf: Uint8Array, fileSize: number): WavHeader {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length >= 4) {
    const magic = fourcc(buf, 0);
    if (magic !== 'RIFF') {
      const why = magic === 'RIFX' ? 'big-endian RIFX' : magic === 'RF64' ? 'RF64' : 'no RIFF header';
      throw new TypeError(`not a RIFF/WAVE file (${why})`);
    }
  }
  if (fileSize < 12) throw new RangeError(`truncated header: file holds ${fileSize} bytes, the RIFF header needs 12`);
  if (buf.length < 12) throw new WavHeaderIncompleteError(12);
  const form = fourcc(buf, 8);
  if (form !== 'WAVE') throw new TypeError(`RIFF file of type ${printable(form)} is not WAVE`);

  let fmt: Omit<WavHeader, 'dataOffset' | 'dataBytes' | 'frames'> | undefined;
  let overrun = '';
  let pos = 12;
  while (pos + 8 <= fileSize) {
    if (pos + 8 > buf.length) throw new WavHeaderIncompleteError(pos + 8);
    const id = fourcc(buf, pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (body + size > fileSize) {
        throw new RangeError(`truncated header: fmt chunk at offset ${pos} declares ${size} bytes, file holds ${fileSize - body}`);
      }
      if (body + size > buf.length) throw new WavHeaderIncompleteError(body + size);
      fmt = parseFmt(view, body, size);
    } else if (id === 'data') {
      if (fmt === undefined) throw new RangeError(`data chunk at offset ${pos} comes before any fmt chunk`);
      if (body + size > fileSize) {
        throw new RangeError(`truncated: data chunk declares ${size} bytes, file holds ${fileSize - body}`);
      }
      if (size % fmt.blockAlign !== 0) {
        throw new RangeError(`data length ${size} is not a multiple of block align ${fmt.blockAlign}`);
      }
      return { ...fmt, dataOffset: body, dataBytes: size, frames: size / fmt.blockAlign };
    } else if (body + size > fileSize) {
      overrun = ` (${printable(id)} chunk at offset ${pos} declares ${size} bytes, file holds ${fileSize - body})`;
    }
    pos = body + size + (size & 1);
  }
  if (pos < fileSize && overrun === '') overrun = ` (${fileSize - pos} stray bytes at offset ${pos})`;
  if (fmt === undefined) throw new RangeError(`truncated header: no fmt chunk${overrun}`);
  throw new RangeError(`truncated header: no data chunk${overrun}`);
}

function parseFmt(view: DataView, at: number, size: number): Omit<WavHeader, 'dataOffset' | 'dataBytes' | 'frames'> {
  if (size < 16) throw new RangeError(`fmt chunk of ${size} bytes is too short (need 16)`);
  let formatTag = view.getUint16(at, true);
  const channels = view.getUint16(at + 2, true);
  const sampleRate = view.getUint32(at + 4, true);
  const blockAlign = view.getUint16(at + 12, true);
  const bitsPerSample = view.getUint16(at + 14, true);
  let extensible = false;
  if (formatTag === WAVE_FORMAT_EXTENSIBLE) {
    extensible = true;
    // cbSize (2) + validBits (2) + channelMask (4) + SubFormat GUID (16).
    if (size < 40) throw new RangeError(`extensible fmt chunk of ${size} bytes is too short (need 40)`);
    const cbSize = view.getUint16(at + 16, true);
    if (cbSize < 22) throw new RangeError(`extensible fmt chunk declares ${cbSize} extension bytes (need 22)`);
    let known = true;
    for (let i = 0; i < SUBFORMAT_GUID_TAIL.length; i++) {
      if (view.getUint8(at + 26 + i) !== SUBFORMAT_GUID_TAIL[i]) known = false;
    }
    if (known) formatTag = view.getUint16(at + 24, true);
  }
  if (channels === 0) throw new RangeError('fmt chunk declares 0 channels');
  if (sampleRate === 0) throw new RangeError('fmt chunk declares a sample rate of 0 Hz');
  if (blockAlign === 0) throw new RangeError('fmt chunk declares a block align of 0');
  const integerSamples = formatTag === WAVE_FORMAT_PCM || formatTag === WAVE_FORMAT_ALAW || formatTag === WAVE_FORMAT_MULAW;
  if (integerSamples && bitsPerSample % 8 === 0 && bitsPerSample > 0 && blockAlign !== (channels * bitsPerSample) / 8) {
    throw new RangeError(`fmt block align ${blockAlign} does not match ${channels} channel(s) of ${bitsPerSample} bits`);
  }
  return { formatTag, extensible, channels, sampleRate, bitsPerSample, blockAlign };
}

const FORMAT_NAMES: Record<number, string> = {
  0x0002: 'MS ADPCM',
  [WAVE_FORMAT_IEEE_FLOAT]: 'IEEE float',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MP3',
  [WAVE_FORMAT_EXTENSIBLE]: 'extensible, unknown subformat',
};

/**
 * The source codec of a parsed header, or UnsupportedMediaError naming what the
 * file holds and what offcast needs.
 */
export function wavSourceCodec(h: WavHeader): SourceCodec {
  if (h.formatTag === WAVE_FORMAT_PCM) {
    if (h.bitsPerSample !== 16) {
      throw new UnsupportedMediaError(`WAV: ${h.bitsPerSample}-bit PCM is not supported (need 16-bit)`);
    }
    if (h.channels !== 1 && h.channels !== 2) {
      throw new UnsupportedMediaError(`WAV: ${h.channels} channels are not supported (need 1 or 2)`);
    }
    if (h.sampleRate < 8000 || h.sampleRate > 48000) {
      throw new UnsupportedMediaError(`WAV: ${h.sampleRate} Hz is not supported (need 8000-48000 Hz)`);
    }
    return 'pcm_s16le';
  }
  if (h.formatTag === WAVE_FORMAT_MULAW || h.formatTag === WAVE_FORMAT_ALAW) {
    const name = h.formatTag === WAVE_FORMAT_MULAW ? 'mu-law' : 'A-law';
    if (h.bitsPerSample !== 8 || h.channels !== 1 || h.sampleRate !== 8000) {
      throw new UnsupportedMediaError(
        `WAV: ${name} with ${h.bitsPerSample}-bit samples, ${h.channels} channel(s), ${h.sampleRate} Hz ` + 'is not supported (need 8-bit mono 8000 Hz)',
      );
    }
    return h.formatTag === WAVE_FORMAT_MULAW ? 'pcm_mulaw' : 'pcm_alaw';
  }
  const name = FORMAT_NAMES[h.formatTag];
  throw new UnsupportedMediaError(
    `WAV: format 0x${h.formatTag.toString(16).padStart(4, '0')}${name ? ` (${name})` : ''} is not supported ` + '(need 16-bit PCM, mu-law or A-law)',
  );
}

/** Opens a WAV file and validates its header; the handle stays open until close(). */
export async function openWav(path: string): Promise<MediaReader> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    let head = await readAt(handle, 0, Math.min(size, HEAD_BYTES));
    let header: WavHeader;
    for (;;) {
      try {
        header = parseWavHeader(head, size);
        break;
      } catch (err) {
        if (err instanceof WavHeaderIncompleteError && err.bytesNeeded <= MAX_HEAD_BYTES && head.length < size) {
          head = await readAt(handle, 0, Math.min(size, Math.max(err.bytesNeeded, head.length * 4), MAX_HEAD_BYTES));
          continue;
        }
        throw wavError(err);
      }
    }
    const codec = wavSourceCodec(header);
    return new WavReader(handle, header, codec, size);
  } catch (err) {
    await handle.close();
    throw err;
  }
}

function wavError(err: unknown): Error {
  if (err instanceof WavHeaderIncompleteError) {
    return new UnsupportedMediaError(`WAV: chunks before the data chunk exceed ${MAX_HEAD_BYTES} bytes`, { cause: err });
  }
  if (err instanceof TypeError) return new UnsupportedMediaError(`WAV: ${err.message}`, { cause: err });
  if (err instanceof RangeError) return new CorruptMediaError(`WAV: ${err.message}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

class WavReader implements MediaReader {
  readonly probe: Probe;
  private readonly handle: FileHandle;
  private readonly header: WavHeader;
  private closed = false;

  constructor(handle: FileHandle, header: WavHeader, codec: SourceCodec, bytes: number) {
    this.handle = handle;
    this.header = header;
    const durationMs = Math.round((header.frames * 1000) / header.sampleRate);
    this.probe = {
      format: 'wav',
      bytes,
      durationMs,
      tracks: [
        {
          index: 0,
          kind: 'audio',
          codec,
          supported: true,
          clockRate: header.sampleRate,
          channels: header.channels,
          durationMs,
        },
      ],
    };
  }

  async *samples(opts?: SampleOptions): AsyncIterable<Sample> {
    if (this.closed) throw closedError('WAV');
    if (opts?.tracks !== undefined && !opts.tracks.includes(0)) return;
    const { blockAlign, dataOffset, dataBytes } = this.header;
    const blockBytes = Math.max(1, Math.floor(BLOCK_BYTES / blockAlign)) * blockAlign;
    let done = 0;
    let frame = 0;
    while (done < dataBytes && !this.closed) {
      const length = Math.min(blockBytes, dataBytes - done);
      // A fresh array per Sample: consumers may keep it.
      const data = new Uint8Array(length);
      let got: number;
      try {
        got = await readInto(this.handle, data, 0, length, dataOffset + done);
      } catch (err) {
        if (this.closed) return; // closed while reading: the consumer is gone
        throw err;
      }
      if (got < length) {
        throw new CorruptMediaError(`WAV: truncated: data chunk declares ${dataBytes} bytes, file now holds ${done + got}`);
      }
      const frames = length / blockAlign;
      yield { track: 0, data, pts: frame, dts: frame, duration: frames, keyframe: true };
      done += length;
      frame += frames;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
