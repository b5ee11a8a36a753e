/**
 * The moov box of an MP4/MOV file, parsed into the fields the MP4 reader uses and
 * nothing else.
 *
 * Only the boxes the reader needs are read: mvhd, mvex (its presence), and in each
 * trak tkhd, edts/elst, mdia/mdhd/hdlr/minf/stbl, the first sample entry of stsd
 * (avc1/avc3 with avcC, mp4a with esds, also inside a QuickTime wave) and the sample
 * tables stsz/stz2/stsc/stco/co64/stts/ctts/stss. Every other box is skipped by its
 * size without a look inside (udta, meta, sample groups, fragments...). Every field
 * is read from inside its box, and every table's entry count is checked against the
 * box's real bytes before anything is allocated, so the work and the memory are
 * bounded by the moov's size (a constant-size stsz, the one table whose entries are
 * not in the file, counts against MAX_SAMPLES over the whole file).
 *
 * The semantics follow mp4box.js, which this parser replaces (it parsed every box
 * anywhere in moov, some of them by their declared counts): the first box of a
 * type in a container wins; table boxes of a version other than the ones defined
 * have no entries; a negative stts delta counts as 1; QuickTime sound sample entries
 * of version 1 and 2 are longer when the ftyp's major brand says QuickTime; sample
 * entry and wave children stop at the first box that is not one. Where mp4box read
 * past a box's end, this parser refuses the box (RangeError).
 *
 * Throws RangeError (sizes and counts that cannot be) or TypeError (a box type that
 * is not a fourcc) naming the box.
 */

/**
 * Samples in one file, over all tracks: the tables cost ~30 bytes a sample, so a
 * small moov must not declare millions. 2^22 is 24 h of 48 kHz AAC, or 10 h of 60 fps
 * video with its audio.
 */
export const MAX_SAMPLES = 1 << 22;
/** Tracks in one moov (real files have a handful; each costs objects). */
export const MAX_TRACKS = 1024;
/** An esds holds a few descriptors; a corrupt one could nest them deeply. */
const MAX_DESCRIPTOR_DEPTH = 8;
const MAX_DESCRIPTORS = 256;

// ---------------------------------------------------------------------------
// Box headers

export interface BoxHeader {
  type: string;
  /** Offset of the box start. */
  start: number;
  headerSize: number;
  /** Offset just past the box (start + declared size). */
  end: number;
}

export function fourcc(b: Uint8Array, offset: number): string {
  return String.fromCharCode(b[offset]!, b[offset + 1]!, b[offset + 2]!, b[offset + 3]!);
}

function isBoxType(b: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 4; i++) {
    const c = b[offset + i]!;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function i32(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

export function u64(b: Uint8Array, o: number): number {
  return u32(b, o) * 2 ** 32 + u32(b, o + 4);
}

function i64(b: Uint8Array, o: number): number {
  return i32(b, o) * 2 ** 32 + u32(b, o + 4);
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/**
 * Reads the box header in `b` at `offset` (`b[0]` is at file position `base`);
 * `limit` is where the enclosing space ends (size 0 extends to it). Throws
 * RangeError for sizes that cannot be, TypeError for a type that is not a fourcc.
 */
export function boxHeaderAt(b: Uint8Array, offset: number, available: number, base: number, limit: number): BoxHeader {
  const start = base + offset;
  if (available < 8) throw new RangeError(`${available} stray bytes at byte ${start}`);
  if (!isBoxType(b, offset + 4)) throw new TypeError(`garbage box type at byte ${start}`);
  const type = fourcc(b, offset + 4);
  const size32 = u32(b, offset);
  let headerSize = 8;
  let size: number;
  if (size32 === 1) {
    if (available < 16) throw new RangeError(`box '${type}' at byte ${start} is cut inside its 64-bit size`);
    size = u64(b, offset + 8);
    headerSize = 16;
  } else if (size32 === 0) {
    size = limit - start;
  } else {
    size = size32;
  }
  if (size < headerSize) throw new RangeError(`garbage box size ${size} for '${type}' at byte ${start}`);
  return { type, start, headerSize, end: start + size };
}

/** A box inside the moov buffer: offsets into it. */
interface Box {
  type: string;
  start: number;
  body: number;
  end: number;
}

/**
 * The children of a container the reader walks (moov, trak, mdia, minf, stbl,
 * edts): each must be a box inside its parent, or the moov is corrupt. Fewer than 8
 * bytes left at the end are padding some muxers leave.
 */
function* strictChildren(m: Moov, start: number, end: number, where: string): Generator<Box> {
  let pos = start;
  while (end - pos >= 8) {
    const h = boxHeaderAt(m.b, pos, end - pos, m.base, m.base + end);
    const boxEnd = h.end - m.base;
    if (boxEnd > end) {
      throw new RangeError(`'${h.type}' ${where}at byte ${h.start} declares ${h.end - h.start} bytes, its parent holds ${m.base + end - h.start}`);
    }
    if (WANTED.has(h.type)) yield { type: h.type, start: pos, body: pos + h.headerSize, end: boxEnd };
    pos = boxEnd;
  }
}

/** The only box types any container here keeps (the rest are skipped by size). */
const WANTED = new Set(['mvhd', 'mvex', 'trak', 'tkhd', 'edts', 'elst', 'mdia', 'mdhd', 'hdlr', 'minf', 'stbl', 'stsd']);
for (const t of ['stsz', 'stz2', 'stsc', 'stco', 'co64', 'stts', 'ctts', 'stss']) WANTED.add(t);

/**
 * Children of a sample entry or a wave box, the lenient way mp4box reads them: the
 * first thing that is not a box inside the parent ends the list.
 */
function looseChildren(b: Uint8Array, start: number, end: number): Box[] {
  const out: Box[] = [];
  let pos = start;
  while (end - pos >= 8) {
    if (!isBoxType(b, pos + 4)) break;
    const type = fourcc(b, pos + 4);
    let size = u32(b, pos);
    let header = 8;
    if (size === 1) {
      if (end - pos < 16) break;
      size = u64(b, pos + 8);
      header = 16;
    } else if (size === 0) {
      size = end - pos;
    }
    if (size < header || size > end - pos) break;
    out.push({ type, start: pos, body: pos + header, end: pos + size });
    pos += size;
  }
  return out;
}

function first(boxes: Box[], type: string): Box | undefined {
  for (const box of boxes) if (box.type === type) return box;
  return undefined;
}

// ---------------------------------------------------------------------------
// What the reader gets

export interface AvcConfig {
  lengthSizeMinusOne: number;
  /** Views into the moov buffer. */
  SPS: Uint8Array[];
  PPS: Uint8Array[];
}
export interface Descriptor {
  tag: number;
  /** DecoderConfigDescriptor (tag 4): objectTypeIndication. */
  oti?: number;
  /** Other tags (DecoderSpecificInfo, 5): the payload. */
  data?: Uint8Array;
  descs: Descriptor[];
}
export interface Esds {
  esd: Descriptor;
}
export interface SampleEntry {
  type: string;
  /** Visual sample entry fields (read for avc1/avc3). */
  width?: number;
  height?: number;
  /** Audio sample entry fields (read for every entry: a sound track's entry is one). */
  channel_count?: number;
  samplerate?: number;
  avcC?: AvcConfig;
  esds?: Esds;
  wave?: { esds?: Esds };
}
export interface Stbl {
  stsd?: { entries: SampleEntry[] };
  stsz?: { sample_sizes: Uint32Array };
  stz2?: { sample_sizes: Uint32Array };
  stsc?: { first_chunk: Uint32Array; samples_per_chunk: Uint32Array; sample_description_index: Uint32Array };
  stco?: { chunk_offsets: Uint32Array | Float64Array };
  co64?: { chunk_offsets: Uint32Array | Float64Array };
  stts?: { sample_counts: Uint32Array; sample_deltas: Uint32Array };
  ctts?: { sample_counts: Uint32Array; sample_offsets: Int32Array };
  stss?: { sample_numbers: Uint32Array };
}
/** The edit list, as far as the reader maps it: the leading empty edits and the first media edit. */
export interface Edit {
  /** Sum of the leading empty edits' durations (movie timescale). */
  delay: number;
  /** media_time of the first non-empty edit; undefined when there is none. */
  mediaTime?: number;
}
export interface Trak {
  tkhd?: { track_id?: number; width?: number; height?: number };
  edit?: Edit;
  mdia?: {
    mdhd?: { timescale?: number };
    hdlr?: { handler?: string };
    minf?: { stbl?: Stbl };
  };
}
export interface MoovInfo {
  mvhd?: { timescale?: number };
  /** Present when the moov has an mvex (a fragmented file). */
  mvex?: true;
  traks: Trak[];
}

// ---------------------------------------------------------------------------
// The parse

interface Moov {
  b: Uint8Array;
  /** File position of b[0]. */
  base: number;
  fileSize: number;
  quickTime: boolean;
  /** Samples the size tables declared so far. */
  samples: number;
  /**
   * Sample descriptions, parsed once the tree and its tables are checked (so a
   * broken size anywhere is reported before a broken avcC or esds, as before).
   */
  later: (() => void)[];
}

/**
 * Parses the body of a moov box. `b` holds the body (without the moov header),
 * `base` is the file position of `b[0]`, `fileSize` bounds constant-size samples,
 * and `quickTime` is whether the ftyp's major brand names QuickTime (sound sample
 * entries of version 1 and 2 are longer then).
 */
export function parseMoovBody(b: Uint8Array, base: number, fileSize: number, quickTime: boolean): MoovInfo {
  const m: Moov = { b, base, fileSize, quickTime, samples: 0, later: [] };
  const out: MoovInfo = { traks: [] };
  for (const box of strictChildren(m, 0, b.length, '')) {
    if (box.type === 'mvhd') out.mvhd ??= { timescale: headerTimescale(b, box) };
    else if (box.type === 'mvex') out.mvex = true;
    else if (box.type === 'trak') {
      if (out.traks.length === MAX_TRACKS) throw new RangeError(`more than ${MAX_TRACKS} tracks`);
      out.traks.push(parseTrak(m, box));
    }
  }
  for (const parse of m.later) parse();
  return out;
}

/** mvhd and mdhd: the timescale after the (32- or 64-bit) times. */
function headerTimescale(b: Uint8Array, box: Box): number | undefined {
  const at = box.body + (b[box.body] === 1 ? 20 : 12);
  return at + 4 <= box.end ? u32(b, at) : undefined;
}

/** track_ID from the tkhd inside a trak body, if present (for messages, before the walk). */
function trackIdOf(b: Uint8Array, start: number, end: number): number | undefined {
  let pos = start;
  while (pos + 8 <= end) {
    const size = u32(b, pos);
    if (size < 8 || pos + size > end) return undefined;
    if (fourcc(b, pos + 4) === 'tkhd') {
      const idAt = pos + 8 + (b[pos + 8] === 1 ? 20 : 12);
      return idAt + 4 <= pos + size ? u32(b, idAt) : undefined;
    }
    pos += size;
  }
  return undefined;
}

function parseTrak(m: Moov, trak: Box): Trak {
  const b = m.b;
  const where = `in track ${trackIdOf(b, trak.body, trak.end) ?? '?'} `;
  const out: Trak = {};
  for (const box of strictChildren(m, trak.body, trak.end, where)) {
    if (box.type === 'tkhd' && out.tkhd === undefined) {
      const v1 = b[box.body] === 1;
      const id = box.body + (v1 ? 20 : 12);
      const size = box.body + (v1 ? 88 : 76);
      out.tkhd = {
        track_id: id + 4 <= box.end ? u32(b, id) : undefined,
        width: size + 8 <= box.end ? u32(b, size) : undefined,
        height: size + 8 <= box.end ? u32(b, size + 4) : undefined,
      };
    } else if (box.type === 'edts' && out.edit === undefined) {
      let edit: Edit | undefined;
      for (const c of strictChildren(m, box.body, box.end, where)) if (c.type === 'elst') edit ??= parseElst(b, c, where);
      out.edit = edit ?? { delay: 0 };
    } else if (box.type === 'mdia' && out.mdia === undefined) {
      out.mdia = parseMdia(m, box, where);
    }
  }
  return out;
}

function parseElst(b: Uint8Array, box: Box, where: string): Edit {
  const need = needer('elst', box, where);
  need(8);
  const v1 = b[box.body] === 1;
  const count = u32(b, box.body + 4);
  const entryBytes = v1 ? 20 : 12;
  need(8 + count * entryBytes);
  const edit: Edit = { delay: 0 };
  for (let i = 0, at = box.body + 8; i < count; i++, at += entryBytes) {
    const duration = v1 ? u64(b, at) : u32(b, at);
    const mediaTime = v1 ? i64(b, at + 8) : i32(b, at + 4);
    if (mediaTime !== -1) {
      edit.mediaTime = mediaTime;
      break;
    }
    edit.delay += duration;
  }
  return edit;
}

function parseMdia(m: Moov, mdia: Box, where: string): NonNullable<Trak['mdia']> {
  const b = m.b;
  const out: NonNullable<Trak['mdia']> = {};
  for (const box of strictChildren(m, mdia.body, mdia.end, where)) {
    if (box.type === 'mdhd') out.mdhd ??= { timescale: headerTimescale(b, box) };
    else if (box.type === 'hdlr' && out.hdlr === undefined) {
      // Version 0 only, as mp4box: pre_defined, then the handler type.
      out.hdlr = { handler: b[box.body] === 0 && box.body + 12 <= box.end ? fourcc(b, box.body + 8) : undefined };
    } else if (box.type === 'minf' && out.minf === undefined) {
      let stbl: Stbl | undefined;
      for (const c of strictChildren(m, box.body, box.end, where)) if (c.type === 'stbl') stbl ??= parseStbl(m, c, where);
      out.minf = { stbl };
    }
  }
  return out;
}

function needer(type: string, box: Box, where: string): (n: number) => void {
  const bodyBytes = box.end - box.body;
  return (n) => {
    if (bodyBytes < n) throw new RangeError(`'${type}' ${where}needs ${n} bytes, box holds ${bodyBytes}`);
  };
}

const NONE32 = new Uint32Array(0);

function parseStbl(m: Moov, stbl: Box, where: string): Stbl {
  const b = m.b;
  const out: Stbl = {};
  for (const box of strictChildren(m, stbl.body, stbl.end, where)) {
    const type = box.type;
    if (type === 'stsd' || type in TABLE_ENTRY_BYTES || type === 'stsz' || type === 'stz2') {
      if (out[type as keyof Stbl] !== undefined) continue; // the first one wins
    } else continue;
    const need = needer(type, box, where);
    const body = box.body;
    const version = b[body];
    if (type === 'stsd') {
      const stsd = { entries: [] as SampleEntry[] };
      out.stsd = stsd;
      m.later.push(() => {
        stsd.entries = parseStsd(m, box);
      });
      continue;
    }
    if (type === 'stsz') {
      need(12);
      const sampleSize = u32(b, body + 4);
      const count = u32(b, body + 8);
      if (sampleSize === 0) need(12 + 4 * count);
      else if (sampleSize * count > m.fileSize) {
        throw new RangeError(`'stsz' ${where}declares ${count} samples of ${sampleSize} bytes, file holds ${m.fileSize}`);
      }
      spend(m, type, count, where);
      let sizes = NONE32;
      if (version === 0) {
        sizes = new Uint32Array(count);
        if (sampleSize === 0) for (let i = 0; i < count; i++) sizes[i] = u32(b, body + 12 + 4 * i);
        else sizes.fill(sampleSize);
      }
      out.stsz = { sample_sizes: sizes };
    } else if (type === 'stz2') {
      need(12);
      const fieldBits = b[body + 7]!;
      const count = u32(b, body + 8);
      if (fieldBits !== 4 && fieldBits !== 8 && fieldBits !== 16) throw new RangeError(`'stz2' ${where}has field size ${fieldBits}`);
      need(12 + Math.ceil((count * fieldBits) / 8));
      spend(m, type, count, where);
      let sizes = NONE32;
      if (version === 0) {
        sizes = new Uint32Array(count);
        const at = body + 12;
        for (let i = 0; i < count; i++) {
          if (fieldBits === 16) sizes[i] = u16(b, at + 2 * i);
          else if (fieldBits === 8) sizes[i] = b[at + i]!;
          else sizes[i] = i % 2 === 0 ? b[at + (i >> 1)]! >> 4 : b[at + (i >> 1)]! & 15;
        }
      }
      out.stz2 = { sample_sizes: sizes };
    } else {
      need(8);
      const count = u32(b, body + 4);
      need(8 + count * TABLE_ENTRY_BYTES[type]!);
      // mp4box reads no entries from a version it does not know (ctts: 0 and 1).
      const n = version === 0 || (type === 'ctts' && version === 1) ? count : 0;
      const at = body + 8;
      if (type === 'stsc') {
        const firstChunk = new Uint32Array(n);
        const perChunk = new Uint32Array(n);
        const desc = new Uint32Array(n);
        for (let i = 0; i < n; i++) {
          firstChunk[i] = u32(b, at + 12 * i);
          perChunk[i] = u32(b, at + 12 * i + 4);
          desc[i] = u32(b, at + 12 * i + 8);
        }
        out.stsc = { first_chunk: firstChunk, samples_per_chunk: perChunk, sample_description_index: desc };
      } else if (type === 'stco') {
        const offsets = new Uint32Array(n);
        for (let i = 0; i < n; i++) offsets[i] = u32(b, at + 4 * i);
        out.stco = { chunk_offsets: offsets };
      } else if (type === 'co64') {
        const offsets = new Float64Array(n);
        for (let i = 0; i < n; i++) offsets[i] = u64(b, at + 8 * i);
        out.co64 = { chunk_offsets: offsets };
      } else if (type === 'stts') {
        const counts = new Uint32Array(n);
        const deltas = new Uint32Array(n);
        for (let i = 0; i < n; i++) {
          counts[i] = u32(b, at + 8 * i);
          const delta = i32(b, at + 8 * i + 4);
          deltas[i] = delta < 0 ? 1 : delta; // as mp4box: a negative delta counts as 1
        }
        out.stts = { sample_counts: counts, sample_deltas: deltas };
      } else if (type === 'ctts') {
        const counts = new Uint32Array(n);
        const offsets = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          counts[i] = u32(b, at + 8 * i);
          offsets[i] = i32(b, at + 8 * i + 4);
        }
        out.ctts = { sample_counts: counts, sample_offsets: offsets };
      } else {
        const numbers = new Uint32Array(n);
        for (let i = 0; i < n; i++) numbers[i] = u32(b, at + 4 * i);
        out.stss = { sample_numbers: numbers };
      }
    }
  }
  return out;
}

/** Table boxes with an entry count after the full-box header: bytes per entry. */
const TABLE_ENTRY_BYTES: Record<string, number> = { stco: 4, co64: 8, stsc: 12, stts: 8, ctts: 8, stss: 4 };

function spend(m: Moov, type: string, count: number, where: string): void {
  m.samples += count;
  if (m.samples > MAX_SAMPLES) {
    throw new RangeError(`'${type}' ${where}brings the file to ${m.samples} samples, more than the ${MAX_SAMPLES} offcast reads`);
  }
}

/** The first sample entry (the reader plays one description per track). */
function parseStsd(m: Moov, stsd: Box): SampleEntry[] {
  const b = m.b;
  const entriesAt = stsd.body + 8; // version/flags, entry_count
  if (entriesAt > stsd.end || u32(b, stsd.body + 4) === 0) return [];
  const box = looseChildren(b, entriesAt, stsd.end)[0];
  if (box === undefined) return [];
  const entry: SampleEntry = { type: box.type };
  const body = box.body;
  // SampleEntry: 6 reserved bytes, data_reference_index; then the audio fields
  // (version, revision, vendor, channel_count, sample_size, 2 x 16 bits, samplerate
  // 16.16), or the visual ones (2 + 2 + 12 bytes, width, height, ..., 78 bytes).
  if (body + 28 <= box.end) {
    entry.channel_count = u16(b, body + 16);
    entry.samplerate = u32(b, body + 24) / 65536;
  }
  if (box.type === 'avc1' || box.type === 'avc3') {
    if (body + 28 <= box.end) {
      entry.width = u16(b, body + 24);
      entry.height = u16(b, body + 26);
    }
    const avcC = first(looseChildren(b, body + 78, box.end), 'avcC');
    if (avcC !== undefined) entry.avcC = parseAvcC(b, avcC);
  } else if (box.type === 'mp4a') {
    let fields = 28;
    if (m.quickTime && body + 10 <= box.end) {
      const version = u16(b, body + 8);
      if (version === 1) fields += 16;
      else if (version === 2) fields += 36;
    }
    const children = looseChildren(b, body + fields, box.end);
    const esds = first(children, 'esds');
    if (esds !== undefined) entry.esds = parseEsds(b, esds);
    const wave = first(children, 'wave');
    if (wave !== undefined) {
      const inner = first(looseChildren(b, wave.body, wave.end), 'esds');
      entry.wave = { esds: inner === undefined ? undefined : parseEsds(b, inner) };
    }
  }
  return [entry];
}

function parseAvcC(b: Uint8Array, box: Box): AvcConfig {
  let pos = box.body;
  const take = (n: number): number => {
    if (pos + n > box.end) throw new RangeError(`'avcC' at byte ${pos} runs past its ${box.end - box.start}-byte box`);
    const at = pos;
    pos += n;
    return at;
  };
  const lengthSizeMinusOne = b[take(5) + 4]! & 3;
  const sets = (count: number): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const length = u16(b, take(2));
      out.push(b.subarray(take(length), pos));
    }
    return out;
  };
  const SPS = sets(b[take(1)]! & 31);
  const PPS = sets(b[take(1)]!);
  return { lengthSizeMinusOne, SPS, PPS };
}

/** ES_Descriptor and DecoderConfigDescriptor with their children, as mp4box reads them. */
function parseEsds(b: Uint8Array, box: Box): Esds {
  const end = box.end;
  let pos = box.body + 4; // version/flags
  let count = 0;
  const byte = (): number => {
    if (pos >= end) throw new RangeError(`'esds' descriptor runs past its ${box.end - box.start}-byte box`);
    return b[pos++]!;
  };
  const skip = (n: number): void => {
    if (n < 0 || pos + n > end) throw new RangeError(`'esds' descriptor runs past its ${box.end - box.start}-byte box`);
    pos += n;
  };
  const one = (depth: number): Descriptor => {
    if (++count > MAX_DESCRIPTORS || depth > MAX_DESCRIPTOR_DEPTH) throw new RangeError('esds: descriptors nested or repeated beyond reason');
    const tag = byte();
    let size = 0;
    let v = byte();
    while (v & 0x80) {
      size = (size << 7) + (v & 0x7f);
      v = byte();
    }
    size = (size << 7) + (v & 0x7f);
    const d: Descriptor = { tag, descs: [] };
    if (tag === 3) {
      skip(2); // ES_ID
      const flags = byte();
      size -= 3;
      if (flags & 0x80) {
        skip(2);
        size -= 2;
      }
      if (flags & 0x40) {
        const l = byte();
        skip(l);
        size -= l + 1;
      }
      if (flags & 0x20) {
        skip(2);
        size -= 2;
      }
    } else if (tag === 4) {
      d.oti = byte();
      skip(12);
      size -= 13;
    } else if (tag === 5 || tag === 6) {
      const at = pos;
      skip(size);
      d.data = b.subarray(at, pos);
      return d;
    } else {
      // mp4box's generic descriptor: the size lands in the tag, and the payload is
      // the rest of the esds.
      d.tag = size;
      d.data = b.subarray(pos, end);
      pos = end;
      return d;
    }
    const start = pos;
    while (pos < start + size) d.descs.push(one(depth + 1));
    return d;
  };
  return { esd: one(0) };
}
