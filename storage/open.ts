/**
 * Opening media files: the format is detected from the content, never from the
 * name, and the reader for it opens the file. Only the offload opens media (the
 * control plane asks it to probe), so only the offload imports this module.
 */
import { open, stat } from 'node:fs/promises';
import { CorruptMediaError, UnsupportedMediaError } from './errors.js';
import { openAnnexB } from './h264/annexb.js';
import { openMp4 } from './mp4.js';
import { openOggOpus } from './ogg.js';
import type { MediaFormat, MediaReader, Probe } from './types.js';
import { openWav } from './wav.js';

/** Bytes of a file's head that detectFormat looks at. */
export const DETECT_BYTES = 64;

const MP4_TOP_LEVEL_BOXES = new Set(['moov', 'mdat', 'free', 'skip', 'wide']);

function ascii(buf: Uint8Array, at: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(buf[at + i]!);
  return s;
}

/**
 * The container format of a file from its first bytes (DETECT_BYTES suffice), or
 * null when none of offcast's readers applies.
 */
export function detectFormat(head: Uint8Array): MediaFormat | null {
  if (head.length >= 12 && ascii(head, 0, 4) === 'RIFF' && ascii(head, 8, 4) === 'WAVE') return 'wav';
  if (head.length >= 4 && ascii(head, 0, 4) === 'OggS') return 'ogg';
  if (head.length >= 8) {
    const size = ((head[0]! << 24) | (head[1]! << 16) | (head[2]! << 8) | head[3]!) >>> 0;
    const type = ascii(head, 4, 4);
    if (type === 'ftyp' && size >= 8) return 'mp4';
    // Size 0 runs to the end of the file; 1 means a 64-bit size follows the type.
    if (MP4_TOP_LEVEL_BOXES.has(type) && (size === 0 || size === 1 || size >= 8)) return 'mp4';
  }
  // H.264 Annex B: a start code, then a NAL header with forbidden_zero_bit 0 and a
  // coded type (1..23; 0 and 24..31 are unspecified).
  let nal = -1;
  if (head.length >= 5 && head[0] === 0 && head[1] === 0 && head[2] === 0 && head[3] === 1) nal = 4;
  else if (head.length >= 4 && head[0] === 0 && head[1] === 0 && head[2] === 1) nal = 3;
  if (nal > 0) {
    const header = head[nal]!;
    const type = header & 0x1f;
    if ((header & 0x80) === 0 && type >= 1 && type <= 23) return 'h264';
  }
  return null;
}

export interface OpenOptions {
  /** Frame rate for raw H.264 without VUI timing. */
  frameRate?: number;
}

export type OpenReader = (path: string, opts?: OpenOptions) => Promise<MediaReader>;

const readers = new Map<MediaFormat, OpenReader>([
  ['wav', (p) => openWav(p)],
  ['ogg', (p) => openOggOpus(p)],
  ['h264', (p, o) => openAnnexB(p, o?.frameRate === undefined ? {} : { frameRate: o.frameRate })],
  ['mp4', (p) => openMp4(p)],
]);

/**
 * Sets (or replaces) the reader for a format. The recording reader lives in the
 * offload (it depacketizes) and is registered there at start
 * (`registerRecordingReader()` in offload/record/reader.ts).
 */
export function registerReader(format: MediaFormat, openReader: OpenReader): void {
  readers.set(format, openReader);
}

function hexBytes(buf: Uint8Array, count: number): string {
  const shown = Array.from(buf.subarray(0, count), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return buf.length > count ? `${shown} ...` : shown;
}

/**
 * Opens a media file with the reader for its detected format. UnsupportedMediaError
 * when the content is not recognized (or no reader is registered for it),
 * CorruptMediaError for an empty file; readers add their own errors.
 */
export async function openMedia(filePath: string, opts?: OpenOptions): Promise<MediaReader> {
  if ((await stat(filePath)).isDirectory()) {
    // A recording: a folder with a manifest and its tracks' files.
    const openRecording = readers.get('recording');
    if (openRecording === undefined) throw new UnsupportedMediaError('no reader is available for recordings (registerRecordingReader() has not run)');
    return openRecording(filePath, opts);
  }
  const handle = await open(filePath, 'r');
  let head: Uint8Array;
  try {
    const buf = new Uint8Array(DETECT_BYTES);
    const { bytesRead } = await handle.read(buf, 0, DETECT_BYTES, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  if (head.length === 0) throw new CorruptMediaError('empty file');
  const format = detectFormat(head);
  if (format === null) {
    throw new UnsupportedMediaError(`unrecognized media format (first bytes: ${hexBytes(head, 16)})`);
  }
  const openReader = readers.get(format);
  if (openReader === undefined) throw new UnsupportedMediaError(`no reader is available for ${format} files`);
  return openReader(filePath, opts);
}

/** Opens, takes the probe and closes. */
export async function probeMedia(filePath: string, opts?: OpenOptions): Promise<Probe> {
  const reader = await openMedia(filePath, opts);
  try {
    return reader.probe;
  } finally {
    await reader.close();
  }
}
