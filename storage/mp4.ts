/**
 * MP4/MOV reader: H.264 (avc1/avc3) video and AAC-LC audio, streamed sample by
 * sample with bounded memory.
 *
 * Only the `moov` box (wherever it is) and `ftyp` are read into memory: the
 * top-level boxes are walked with positioned reads, and `moov` is parsed by
 * ./mp4moov.ts, which reads only the boxes this reader uses and checks every size
 * and table count against the box's real bytes, so a corrupt or hostile moov costs
 * no more than its size. The sample tables (stsz, stsc, stco/co64, stts, ctts, stss)
 * are then expanded into per-sample typed arrays (about 30 bytes per sample), and
 * sample bytes are read with coalesced positioned reads, one bounded window per track.
 *
 * Timing: every track's media time is mapped through its edit list, then converted
 * exactly (integer rational, rounded) to the output clock: 90 kHz for video, the
 * AudioSpecificConfig sample rate for AAC. Edit lists: leading empty edits
 * (media_time -1) delay the track; the first non-empty edit's media_time M maps to
 * that presentation time. Later edits, rates other than 1 and segment durations are
 * ignored (no samples are dropped: AAC priming frames are still output, with
 * timestamps before the presentation start). Negative composition offsets move the
 * dts earlier rather than the pts later (pts >= dts always). Finally all tracks
 * share one zero: the earliest dts over the supported tracks becomes 0.
 *
 * Messages name samples 1-based and tracks by their MP4 track_ID, as MP4 tools do.
 * Text, timecode, hint and metadata tracks are not listed in the probe (TrackKind
 * has no kind for them) but are named when no track can be streamed.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { AOT_AAC_LC, AOT_PS, AOT_SBR, parseAudioSpecificConfig, type AudioSpecificConfig } from './aac.js';
import { CorruptMediaError, UnsupportedMediaError } from './errors.js';
import { readInto } from './io.js';
import { h264ParamsFromParameterSets } from './h264/sps.js';
import { boxHeaderAt, parseMoovBody, type BoxHeader, type Esds, type MoovInfo, type Stbl, type Trak } from './mp4moov.js';
import type { AacParams, H264Params, MediaReader, Probe, Sample, SampleOptions, TrackInfo, TrackKind } from './types.js';

/** Largest moov we load (a 10-hour movie's tables are well below this). */
const MAX_MOOV_BYTES = 256 * 1024 * 1024;
const MAX_FTYP_BYTES = 64 * 1024;
/** A sane file has a handful of top-level boxes; this bounds the walk on garbage. */
const MAX_TOP_LEVEL_BOXES = 10000;
/** Larger samples are treated as corrupt tables (the biggest 4K I-frames are a few MB). */
const MAX_SAMPLE_BYTES = 64 * 1024 * 1024;
/** Per-track read window: consecutive samples of a track are fetched together. */
const READ_WINDOW_BYTES = 1024 * 1024;
/** Bytes of other data a coalesced read may skip over between two samples of a track. */
const MAX_READ_GAP = 16 * 1024;
const VIDEO_CLOCK = 90000;
const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------
// Box walking (top level over the file, children inside moov)

/** Box types an MP4/MOV file starts with (QuickTime files may lack ftyp). */
const FIRST_BOX_TYPES = new Set(['ftyp', 'styp', 'moov', 'mdat', 'free', 'skip', 'wide', 'pnot', 'uuid', 'junk', 'pdin', 'sidx', 'moof', 'meta']);

interface TopLevel {
  ftyp?: BoxHeader;
  moov?: BoxHeader;
  /** First box found running past the end of the file, if any. */
  cut?: BoxHeader;
  fragmented: boolean;
}

async function walkTopLevel(handle: FileHandle, fileSize: number): Promise<TopLevel> {
  const out: TopLevel = { fragmented: false };
  const head = new Uint8Array(16);
  let pos = 0;
  for (let n = 0; pos < fileSize; n++) {
    if (n === MAX_TOP_LEVEL_BOXES) throw new CorruptMediaError(`MP4: more than ${MAX_TOP_LEVEL_BOXES} top-level boxes`);
    const got = await readInto(handle, head, 0, Math.min(16, fileSize - pos), pos);
    let box: BoxHeader;
    try {
      box = boxHeaderAt(head, 0, got, pos, fileSize);
    } catch (err) {
      // Junk after a complete moov (padding, a cut trailer) costs nothing: samples are
      // checked against the file size anyway.
      if (out.moov !== undefined) break;
      const what = pos === 0 ? `not an MP4 file (${(err as Error).message})` : (err as Error).message;
      throw new CorruptMediaError(`MP4: ${what}`, { cause: err });
    }
    if (pos === 0 && !FIRST_BOX_TYPES.has(box.type)) {
      throw new CorruptMediaError(`MP4: not an MP4 file (first box type '${box.type}' is none of ftyp, moov, mdat, free...)`);
    }
    if (box.end > fileSize) {
      out.cut = box;
      if (box.type === 'moov' && out.moov === undefined) out.moov = box;
      break;
    }
    if (box.type === 'moov' && out.moov === undefined) out.moov = box;
    else if (box.type === 'ftyp' && out.ftyp === undefined) out.ftyp = box;
    else if (box.type === 'moof') out.fragmented = true;
    pos = box.end;
  }
  return out;
}

async function parseMoov(handle: FileHandle, top: TopLevel, fileSize: number): Promise<MoovInfo> {
  const moov = top.moov!;
  const moovBytes = moov.end - moov.start;
  if (moovBytes > MAX_MOOV_BYTES) throw new UnsupportedMediaError(`MP4: moov box of ${moovBytes} bytes exceeds ${MAX_MOOV_BYTES}`);
  // QuickTime sound sample entries of version 1 and 2 are longer: the ftyp's major
  // brand says which layout the file uses (a file without ftyp gets the ISO one).
  let quickTime = false;
  const ftyp = top.ftyp;
  if (ftyp !== undefined && ftyp.end - ftyp.start <= MAX_FTYP_BYTES && ftyp.end - ftyp.start >= ftyp.headerSize + 4) {
    const brand = new Uint8Array(4);
    await readInto(handle, brand, 0, 4, ftyp.start + ftyp.headerSize);
    quickTime = String.fromCharCode(...brand).includes('qt');
  }
  const body = new Uint8Array(moovBytes - moov.headerSize);
  const got = await readInto(handle, body, 0, body.length, moov.start + moov.headerSize);
  if (got < body.length) throw new CorruptMediaError(`MP4: truncated moov: file now holds ${moov.start + moov.headerSize + got} bytes`);
  try {
    return parseMoovBody(body, moov.start + moov.headerSize, fileSize, quickTime);
  } catch (err) {
    throw new CorruptMediaError(`MP4: corrupt moov: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------
// Tracks

/** Sample tables of one supported track, in track timescale units. */
interface TrackTable {
  /** Probe index. */
  index: number;
  trackId: number;
  kind: TrackKind;
  timescale: number;
  clock: number;
  count: number;
  offsets: Float64Array;
  sizes: Uint32Array;
  /** Decode times (timescale units, before edits). */
  dts: Float64Array;
  durations: Uint32Array;
  ctsOffsets: Int32Array | null;
  /** null: every sample is a sync sample. */
  sync: Uint8Array | null;
  /** Edit-list shift in timescale units (added to media times). */
  shift: number;
  /** Common zero in output clock units (subtracted after conversion). */
  zero: number;
  /** H.264 NAL length prefix bytes (video only). */
  nalLengthSize: number;
}

/** Converts `t` timescale units to `clock` units, rounding to nearest, exactly for |t| < 2^53. */
export function rescale(t: number, timescale: number, clock: number): number {
  const q = Math.floor(t / timescale);
  const r = t - q * timescale;
  return q * clock + Math.round((r * clock) / timescale);
}

function dtsOut(t: TrackTable, i: number): number {
  return rescale(t.dts[i]! + t.shift, t.timescale, t.clock) - t.zero;
}

function ptsOut(t: TrackTable, i: number): number {
  const cts = t.ctsOffsets === null ? 0 : t.ctsOffsets[i]!;
  return rescale(t.dts[i]! + cts + t.shift, t.timescale, t.clock) - t.zero;
}

function durationOut(t: TrackTable, i: number): number {
  const start = t.dts[i]! + t.shift;
  return rescale(start + t.durations[i]!, t.timescale, t.clock) - rescale(start, t.timescale, t.clock);
}

const NO_ENTRIES = new Uint32Array(0);

function numbers<T extends ArrayLike<number>>(a: T | undefined): T | Uint32Array {
  return a ?? NO_ENTRIES;
}

/** Expands the sample tables into per-sample typed arrays; throws RangeError on inconsistencies. */
function buildTables(
  stbl: Stbl,
  fileSize: number,
  trackId: number,
): Omit<TrackTable, 'index' | 'trackId' | 'kind' | 'timescale' | 'clock' | 'shift' | 'zero' | 'nalLengthSize'> {
  const sizesIn = numbers((stbl.stsz ?? stbl.stz2)?.sample_sizes);
  if (stbl.stsz === undefined && stbl.stz2 === undefined) throw new RangeError('no stsz box');
  const count = sizesIn.length;
  const sizes = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const s = sizesIn[i]!;
    if (s > MAX_SAMPLE_BYTES) throw new RangeError(`sample ${i + 1} declares ${s} bytes`);
    sizes[i] = s;
  }

  const chunkOffsets = numbers((stbl.stco ?? stbl.co64)?.chunk_offsets);
  const firstChunk = numbers(stbl.stsc?.first_chunk);
  const perChunk = numbers(stbl.stsc?.samples_per_chunk);
  const descIndex = numbers(stbl.stsc?.sample_description_index);
  const offsets = new Float64Array(count);
  let i = 0;
  for (let run = 0; run < firstChunk.length && i < count; run++) {
    const first = firstChunk[run]!;
    const next = run + 1 < firstChunk.length ? firstChunk[run + 1]! : chunkOffsets.length + 1;
    if (first < 1 || next <= first) throw new RangeError(`stsc run ${run + 1} starts at chunk ${first}, next at ${next}`);
    if (descIndex[run] !== 1) {
      throw new UnsupportedMediaError(`MP4: track ${trackId} switches to sample description ${descIndex[run]} mid-stream`);
    }
    const spc = perChunk[run]!;
    for (let chunk = first; chunk < next && chunk <= chunkOffsets.length && i < count; chunk++) {
      let off = chunkOffsets[chunk - 1]!;
      for (let s = 0; s < spc && i < count; s++, i++) {
        offsets[i] = off;
        off += sizes[i]!;
      }
    }
  }
  if (i < count) throw new RangeError(`stsc/stco place ${i} of ${count} samples`);

  const dts = new Float64Array(count);
  const durations = new Uint32Array(count);
  const sttsCounts = numbers(stbl.stts?.sample_counts);
  const sttsDeltas = numbers(stbl.stts?.sample_deltas);
  let t = 0;
  i = 0;
  for (let e = 0; e < sttsCounts.length && i < count; e++) {
    const delta = sttsDeltas[e]!;
    for (let n = sttsCounts[e]!; n > 0 && i < count; n--, i++) {
      dts[i] = t;
      durations[i] = delta;
      t += delta;
    }
  }
  if (i < count) throw new RangeError(`stts times ${i} of ${count} samples`);

  let ctsOffsets: Int32Array | null = null;
  if (stbl.ctts !== undefined) {
    ctsOffsets = new Int32Array(count);
    const c = numbers(stbl.ctts.sample_counts);
    const o = numbers(stbl.ctts.sample_offsets);
    i = 0;
    // Samples past the table keep offset 0 (as ffmpeg does).
    for (let e = 0; e < c.length && i < count; e++) {
      for (let n = c[e]!; n > 0 && i < count; n--, i++) ctsOffsets[i] = o[e]!;
    }
  }

  let sync: Uint8Array | null = null;
  if (stbl.stss !== undefined) {
    sync = new Uint8Array(count);
    for (const n of numbers(stbl.stss.sample_numbers)) if (n >= 1 && n <= count) sync[n - 1] = 1;
  }

  for (let k = 0; k < count; k++) {
    const end = offsets[k]! + sizes[k]!;
    if (end > fileSize) {
      throw new CorruptMediaError(`MP4: truncated: sample ${k + 1} of track ${trackId} ends at byte ${end}, file holds ${fileSize}`);
    }
  }
  return { count, offsets, sizes, dts, durations, ctsOffsets, sync };
}

/** Edit-list shift in media timescale units (see the module comment). */
function editShift(trak: Trak, timescale: number, movieTimescale: number | undefined): number {
  const edit = trak.edit;
  if (edit?.mediaTime === undefined) return 0;
  const delayT = movieTimescale ? Math.round((edit.delay * timescale) / movieTimescale) : 0;
  return delayT - edit.mediaTime;
}

/** The DecoderSpecificInfo (tag 5) inside the DecoderConfigDescriptor (tag 4). */
function esdsConfig(esds: Esds | undefined): { oti: number; dsi?: Uint8Array } | undefined {
  const dcd = esds?.esd?.descs?.find((d) => d.tag === 4);
  if (dcd === undefined || typeof dcd.oti !== 'number') return undefined;
  const dsi = dcd.descs?.find((d) => d.tag === 5)?.data;
  return { oti: dcd.oti, dsi };
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, '0');
  return s;
}

/**
 * H264Params from the avcC parameter sets (profile-level-id, size, VUI frame
 * rate); the track header's size is the fallback when the SPS can't be read.
 */
function h264Params(sps: Uint8Array[], pps: Uint8Array[], width: number, height: number): H264Params {
  const first = sps[0];
  if (first === undefined || first.length < 4) throw new RangeError('SPS shorter than 4 bytes');
  try {
    return h264ParamsFromParameterSets(sps, pps);
  } catch {
    return { sps, pps, profileLevelId: hex(first.subarray(1, 4)), width, height };
  }
}

/** Describes a track offcast cannot stream, for the probe and error messages. */
interface Unsupported {
  codec: string;
  /** For the "no supported track" message: "video", "audio, HE-AAC"... */
  note: string;
}

interface Classified {
  info: TrackInfo;
  table: TrackTable;
  /** avc3 without parameter sets in avcC: take them from the first sample (video size for H264Params). */
  inband?: { width: number; height: number };
}

const HANDLER_KIND: Record<string, TrackKind> = { vide: 'video', soun: 'audio' };
/** Other handler types, named for the "no supported track" message. */
const HANDLER_NAMES: Record<string, string> = {
  sbtl: 'subtitles',
  subt: 'subtitles',
  text: 'text',
  tmcd: 'timecode',
  hint: 'hint',
  meta: 'metadata',
};

function sumDurations(stbl: Stbl | undefined): number {
  const c = numbers(stbl?.stts?.sample_counts);
  const d = numbers(stbl?.stts?.sample_deltas);
  let total = 0;
  for (let e = 0; e < c.length; e++) total += c[e]! * (d[e] ?? 0);
  return total;
}

function classify(trak: Trak, index: number, kind: TrackKind, movieTimescale: number | undefined, fileSize: number): Classified | Unsupported {
  const trackId = trak.tkhd?.track_id ?? index + 1;
  const stbl = trak.mdia?.minf?.stbl;
  const entry = stbl?.stsd?.entries?.[0];
  const type = entry?.type ?? 'unknown';
  const unsupported = (codec: string, note: string): Unsupported => ({ codec, note });
  if (kind === 'video' && type !== 'avc1' && type !== 'avc3') return unsupported(type, 'video');
  if (kind === 'audio' && type !== 'mp4a') return unsupported(type, 'audio');

  let aac: AacParams | undefined;
  let asc: AudioSpecificConfig | undefined;
  let h264: H264Params | undefined;
  let nalLengthSize = 0;
  let inband: Classified['inband'];
  if (kind === 'audio') {
    const config = esdsConfig(entry!.esds ?? entry!.wave?.esds);
    if (config === undefined) return unsupported('mp4a', 'audio without esds');
    // 0x40 MPEG-4 audio; 0x66-0x68 MPEG-2 AAC profiles carry an ASC as well.
    if (config.oti !== 0x40 && (config.oti < 0x66 || config.oti > 0x68)) {
      return unsupported(`mp4a.${config.oti.toString(16)}`, 'audio');
    }
    if (config.dsi === undefined) throw new RangeError(`track ${trackId}: AAC without AudioSpecificConfig`);
    try {
      asc = parseAudioSpecificConfig(config.dsi);
    } catch (err) {
      throw new RangeError(`track ${trackId}: ${(err as Error).message}`, { cause: err });
    }
    if (asc.objectType === AOT_SBR || asc.objectType === AOT_PS) {
      return unsupported(`mp4a.40.${asc.objectType}`, `audio, HE-AAC${asc.objectType === AOT_PS ? ' v2' : ''}`);
    }
    if (asc.objectType !== AOT_AAC_LC) return unsupported(`mp4a.40.${asc.objectType}`, 'audio, not AAC-LC');
    const channels = asc.channels || entry!.channel_count || 0;
    aac = { audioSpecificConfig: config.dsi.slice(), objectType: asc.objectType, sampleRate: asc.sampleRate, channels };
  } else {
    const avcC = entry!.avcC;
    if (avcC === undefined) throw new RangeError(`track ${trackId}: ${type} sample entry without avcC`);
    nalLengthSize = avcC.lengthSizeMinusOne + 1;
    const sps = avcC.SPS.map((p) => p.slice());
    const pps = avcC.PPS.map((p) => p.slice());
    const width = trackDimension(trak.tkhd?.width, entry!.width);
    const height = trackDimension(trak.tkhd?.height, entry!.height);
    if (sps.length === 0 || pps.length === 0) {
      if (type !== 'avc3') throw new RangeError(`track ${trackId}: avcC holds no ${sps.length === 0 ? 'SPS' : 'PPS'}`);
      inband = { width, height };
    } else {
      h264 = h264Params(sps, pps, width, height);
    }
  }

  const timescale = trak.mdia?.mdhd?.timescale ?? 0;
  if (!(timescale > 0)) throw new RangeError(`track ${trackId}: media timescale is 0`);
  if (stbl === undefined) throw new RangeError(`track ${trackId}: no sample table (stbl)`);
  let tables;
  try {
    tables = buildTables(stbl, fileSize, trackId);
  } catch (err) {
    if (err instanceof RangeError) throw new RangeError(`track ${trackId}: ${err.message}`, { cause: err });
    throw err;
  }
  const clock = kind === 'video' ? VIDEO_CLOCK : asc!.sampleRate;
  const table: TrackTable = {
    ...tables,
    index,
    trackId,
    kind,
    timescale,
    clock,
    shift: editShift(trak, timescale, movieTimescale),
    zero: 0,
    nalLengthSize,
  };
  // Negative composition offsets (ctts v1) would put pts before dts, which no
  // decoder accepts: keep the pts and move all dts earlier by the largest negative
  // offset, as ffmpeg's demuxer does (and as a cslg box would say).
  const ctsOffsets = table.ctsOffsets;
  if (ctsOffsets !== null) {
    let min = 0;
    for (let i = 0; i < ctsOffsets.length; i++) if (ctsOffsets[i]! < min) min = ctsOffsets[i]!;
    if (min < 0) {
      for (let i = 0; i < ctsOffsets.length; i++) ctsOffsets[i] = ctsOffsets[i]! - min;
      table.shift += min;
    }
  }
  const durationMs = Math.round((sumOf(table.durations) * 1000) / timescale);
  const info: TrackInfo = {
    index,
    kind,
    codec: kind === 'video' ? 'h264' : 'aac',
    supported: true,
    clockRate: clock,
    durationMs,
  };
  if (aac !== undefined) {
    info.channels = aac.channels;
    info.aac = aac;
  }
  if (h264 !== undefined) info.h264 = h264;
  return { info, table, inband };
}

function sumOf(a: Uint32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

/** tkhd width/height are 16.16 fixed point; fall back to the sample entry. */
function trackDimension(tkhd: number | undefined, entry: number | undefined): number {
  const fromTkhd = Math.round((tkhd ?? 0) / 65536);
  return fromTkhd > 0 ? fromTkhd : (entry ?? 0);
}

/** Splits one AVC sample into NAL unit views; throws RangeError on a length running past the sample. */
export function splitLengthPrefixed(sample: Uint8Array, lengthSize: number): Uint8Array[] {
  const nals: Uint8Array[] = [];
  let pos = 0;
  while (pos < sample.length) {
    if (pos + lengthSize > sample.length) throw new RangeError(`NAL length cut at byte ${pos} of ${sample.length}`);
    let len = 0;
    for (let k = 0; k < lengthSize; k++) len = len * 256 + sample[pos + k]!;
    pos += lengthSize;
    if (pos + len > sample.length) throw new RangeError(`NAL of ${len} bytes at byte ${pos} runs past the ${sample.length}-byte sample`);
    if (len > 0) nals.push(sample.subarray(pos, pos + len));
    pos += len;
  }
  return nals;
}

// ---------------------------------------------------------------------------

export async function openMp4(path: string): Promise<MediaReader> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    return await openHandle(handle, size);
  } catch (err) {
    await handle.close();
    if (err instanceof CorruptMediaError || err instanceof UnsupportedMediaError) throw err;
    if (err instanceof RangeError || err instanceof TypeError) throw new CorruptMediaError(`MP4: ${err.message}`, { cause: err });
    throw err;
  }
}

async function openHandle(handle: FileHandle, fileSize: number): Promise<Mp4Reader> {
  if (fileSize === 0) throw new CorruptMediaError('MP4: empty file');
  const top = await walkTopLevel(handle, fileSize);
  if (top.moov === undefined) {
    const cut = top.cut;
    throw new CorruptMediaError(
      cut === undefined
        ? 'MP4: no moov box'
        : `MP4: no moov box (file truncated: '${cut.type}' at byte ${cut.start} declares ${cut.end - cut.start} bytes, file holds ${fileSize})`,
    );
  }
  if (top.cut === top.moov) {
    throw new CorruptMediaError(`MP4: truncated moov: box at byte ${top.moov.start} declares ${top.moov.end - top.moov.start} bytes, file holds ${fileSize}`);
  }
  if (top.fragmented) throw new UnsupportedMediaError('MP4: fragmented MP4 is not supported');
  const moov = await parseMoov(handle, top, fileSize);

  const tracks: TrackInfo[] = [];
  const tables: TrackTable[] = [];
  const skipped: string[] = [];
  const inband: Classified[] = [];
  const movieTimescale = moov.mvhd?.timescale;
  for (const trak of moov.traks ?? []) {
    const handler = trak.mdia?.hdlr?.handler ?? '';
    const kind = HANDLER_KIND[handler];
    const entryType = trak.mdia?.minf?.stbl?.stsd?.entries?.[0]?.type ?? handler;
    if (kind === undefined) {
      skipped.push(`${entryType} (${HANDLER_NAMES[handler] ?? (handler || 'no handler')})`);
      continue;
    }
    const index = tracks.length;
    const c = classify(trak, index, kind, movieTimescale, fileSize);
    if ('info' in c) {
      tracks.push(c.info);
      tables.push(c.table);
      if (c.inband !== undefined) inband.push(c);
    } else {
      const timescale = trak.mdia?.mdhd?.timescale ?? 0;
      const entry = trak.mdia?.minf?.stbl?.stsd?.entries?.[0];
      tracks.push({
        index,
        kind,
        codec: c.codec,
        supported: false,
        clockRate: kind === 'video' ? VIDEO_CLOCK : entry?.samplerate || timescale,
        channels: kind === 'audio' ? entry?.channel_count : undefined,
        durationMs: timescale > 0 ? Math.round((sumDurations(trak.mdia?.minf?.stbl) * 1000) / timescale) : 0,
      });
      skipped.push(`${c.codec} (${c.note})`);
    }
  }
  if (tables.length === 0) {
    if (moov.mvex !== undefined) throw new UnsupportedMediaError('MP4: fragmented MP4 is not supported');
    throw new UnsupportedMediaError(`MP4: no supported track${skipped.length > 0 ? `: ${skipped.join(', ')}` : ''}; offcast streams H.264 and AAC-LC from MP4`);
  }
  if (moov.mvex !== undefined && tables.every((t) => t.count === 0)) {
    throw new UnsupportedMediaError('MP4: fragmented MP4 is not supported');
  }
  for (const c of inband) await takeInbandParams(handle, c);
  setCommonZero(tables);
  const durationMs = tracks.reduce((m, t) => Math.max(m, t.durationMs), 0);
  const probe: Probe = { format: 'mp4', bytes: fileSize, durationMs, tracks };
  return new Mp4Reader(handle, probe, tables, fileSize);
}

/** avc3: parameter sets travel in the stream; the probe takes them from the first sample. */
async function takeInbandParams(handle: FileHandle, c: Classified): Promise<void> {
  const table = c.table;
  const what = `MP4: track ${table.trackId}: avc3 with no SPS/PPS in avcC or in its first sample`;
  if (table.count === 0) throw new CorruptMediaError(what);
  const bytes = new Uint8Array(table.sizes[0]!);
  await readInto(handle, bytes, 0, bytes.length, table.offsets[0]!);
  let nals: Uint8Array[];
  try {
    nals = splitLengthPrefixed(bytes, table.nalLengthSize);
  } catch (err) {
    throw new CorruptMediaError(`MP4: broken NAL length in sample 1 of track ${table.trackId}: ${(err as Error).message}`, { cause: err });
  }
  const sps = nals.filter((n) => (n[0]! & 0x1f) === 7).map((n) => n.slice());
  const pps = nals.filter((n) => (n[0]! & 0x1f) === 8).map((n) => n.slice());
  if (sps.length === 0 || pps.length === 0) throw new CorruptMediaError(what);
  c.info.h264 = h264Params(sps, pps, c.inband!.width, c.inband!.height);
}

/**
 * One zero for the whole file: the earliest first dts over the supported tracks
 * (compared in seconds) becomes 0 in every track's clock. pts >= dts in every
 * track, and rounding is monotonic, so no timestamp becomes negative.
 */
function setCommonZero(tables: TrackTable[]): void {
  let best: { value: number; clock: number } | undefined;
  for (const t of tables) {
    if (t.count === 0) continue;
    const first = dtsOut(t, 0);
    if (best === undefined || first / t.clock < best.value / best.clock) best = { value: first, clock: t.clock };
  }
  if (best === undefined) return;
  for (const t of tables) t.zero = rescale(best.value, best.clock, t.clock);
}

/** Per-track read state of one iteration. */
interface Cursor {
  table: TrackTable;
  next: number;
  /** Seconds of the next sample's dts, for interleaving. */
  nextTime: number;
  window: Uint8Array;
  /** File position of window[0]. */
  windowStart: number;
}

class Mp4Reader implements MediaReader {
  readonly probe: Probe;
  readonly #handle: FileHandle;
  readonly #tables: TrackTable[];
  readonly #fileSize: number;
  #closed = false;

  constructor(handle: FileHandle, probe: Probe, tables: TrackTable[], fileSize: number) {
    this.#handle = handle;
    this.probe = probe;
    this.#tables = tables;
    this.#fileSize = fileSize;
  }

  /**
   * Samples of all selected tracks interleaved by dts (in seconds; ties go to the
   * lower track index). `data` and `nals` are views over a read window that is never
   * reused, so keeping a Sample is safe (it keeps its window alive).
   */
  async *samples(opts?: SampleOptions): AsyncIterable<Sample> {
    if (this.#closed) throw new Error('MP4 reader is closed');
    const wanted = opts?.tracks;
    const cursors: Cursor[] = [];
    for (const table of this.#tables) {
      if (wanted !== undefined && !wanted.includes(table.index)) continue;
      if (table.count === 0) continue;
      cursors.push({ table, next: 0, nextTime: dtsOut(table, 0) / table.clock, window: EMPTY, windowStart: 0 });
    }
    while (cursors.length > 0 && !this.#closed) {
      let pick = 0;
      for (let c = 1; c < cursors.length; c++) if (cursors[c]!.nextTime < cursors[pick]!.nextTime) pick = c;
      const cursor = cursors[pick]!;
      const t = cursor.table;
      const i = cursor.next;
      const bytes = await this.#sampleBytes(cursor, i);
      const sample: Sample = {
        track: t.index,
        data: EMPTY,
        pts: ptsOut(t, i),
        dts: dtsOut(t, i),
        duration: durationOut(t, i),
        keyframe: true,
      };
      if (t.kind === 'video') {
        try {
          sample.nals = splitLengthPrefixed(bytes, t.nalLengthSize);
        } catch (err) {
          throw new CorruptMediaError(`MP4: broken NAL length in sample ${i + 1} of track ${t.trackId}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        sample.keyframe = t.sync === null || t.sync[i] === 1;
      } else {
        sample.data = bytes;
      }
      cursor.next = i + 1;
      if (cursor.next === t.count) cursors.splice(pick, 1);
      else cursor.nextTime = dtsOut(t, cursor.next) / t.clock;
      yield sample;
    }
  }

  /** Sample `i` from the cursor's window, refilling it with a coalesced read when needed. */
  async #sampleBytes(cursor: Cursor, i: number): Promise<Uint8Array> {
    const t = cursor.table;
    const offset = t.offsets[i]!;
    const size = t.sizes[i]!;
    let at = offset - cursor.windowStart;
    if (at < 0 || at + size > cursor.window.length) {
      // Extend over the following samples of this track while they lie ahead
      // within a small gap and the window stays bounded.
      let end = offset + size;
      for (let k = i + 1; k < t.count; k++) {
        const o = t.offsets[k]!;
        const e = o + t.sizes[k]!;
        if (o < end || o - end > MAX_READ_GAP || e - offset > READ_WINDOW_BYTES) break;
        end = e;
      }
      const window = new Uint8Array(end - offset);
      const got = await readInto(this.#handle, window, 0, window.length, offset);
      if (got < window.length) {
        throw new CorruptMediaError(
          `MP4: truncated: sample ${i + 1} of track ${t.trackId} lies past byte ${offset + got}, file now holds fewer than ${this.#fileSize} bytes`,
        );
      }
      cursor.window = window;
      cursor.windowStart = offset;
      at = 0;
    }
    return cursor.window.subarray(at, at + size);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#handle.close();
  }
}
