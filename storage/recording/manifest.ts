/**
 * The manifest of a recording folder (recording.json): what was recorded, in
 * which files, and whether it finished. Written atomically (temp file, fsync,
 * rename) at the start and at the end, so start-up recovery can tell an
 * unfinished recording from a finished one.
 */
import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import type { RecordedTrack, TrackSpec } from '../types.js';

export const MANIFEST = 'recording.json';

/** A track in the manifest: its result and, but for the encoding's name (`codec`), its spec. */
export interface ManifestTrack extends RecordedTrack, Omit<TrackSpec, 'encoding' | 'kind'> {}

/** The spec a manifest track was recorded with. */
export function trackSpecOf(t: ManifestTrack): TrackSpec {
  const s: TrackSpec = { kind: t.kind, encoding: t.codec, payloadType: t.payloadType, clockRate: t.clockRate, fmtp: t.fmtp };
  if (t.channels !== undefined) s.channels = t.channels;
  return s;
}

/** A manifest track without its spec: the result a record session answers with. */
export function recordedTrackOf(t: ManifestTrack): RecordedTrack {
  const r: RecordedTrack = {
    index: t.index,
    kind: t.kind,
    codec: t.codec,
    file: t.file,
    rtpdump: t.rtpdump,
    contentType: t.contentType,
    packets: t.packets,
    bytes: t.bytes,
    lost: t.lost,
    duplicates: t.duplicates,
    reordered: t.reordered,
    late: t.late,
    durationMs: t.durationMs,
  };
  if (t.playable !== undefined) r.playable = t.playable;
  if (t.unplayableReason !== undefined) r.unplayableReason = t.unplayableReason;
  return r;
}

export interface Manifest {
  version: 1;
  name: string;
  state: 'recording' | 'finished' | 'failed';
  createdAt: string;
  finishedAt?: string;
  /** Why it ended: stopped, idle, max-duration, failed, recovered. */
  reason?: string;
  error?: string;
  recovered?: boolean;
  durationMs: number;
  tracks: ManifestTrack[];
}

export async function writeManifest(dir: string, m: Manifest): Promise<void> {
  const file = path.join(dir, MANIFEST);
  const temp = `${file}.tmp`;
  const h = await open(temp, 'w');
  try {
    await h.writeFile(JSON.stringify(m, null, 2) + '\n');
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(temp, file);
  await syncDir(dir);
}

/**
 * Reads and checks a manifest. A manifest is read back after a crash, so it may
 * be torn or damaged: TypeError (naming the bad field) for anything that is not
 * an offcast manifest, rather than a value that fails later where it is used.
 */
export async function readManifest(dir: string): Promise<Manifest> {
  const text = await readFile(path.join(dir, MANIFEST), 'utf8');
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (err) {
    throw new TypeError(`${dir}: not an offcast recording manifest (not JSON: ${(err as Error).message.slice(0, 80)})`, { cause: err });
  }
  const bad = manifestProblem(m);
  if (bad !== null) throw new TypeError(`${dir}: not an offcast recording manifest (${bad})`);
  return m as Manifest;
}

const STATES = new Set(['recording', 'finished', 'failed']);
const CODECS = new Set(['H264', 'opus', 'PCMU', 'PCMA', 'L16', 'MPEG4-GENERIC']);
/** File names in the folder: plain names, nothing that leaves it. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);

/** The first field that does not hold what the code reading a manifest relies on, or null. */
function manifestProblem(m: unknown): string | null {
  if (!isObject(m)) return 'not an object';
  if (m.version !== 1) return 'version';
  if (typeof m.name !== 'string') return 'name';
  if (typeof m.state !== 'string' || !STATES.has(m.state)) return 'state';
  if (typeof m.createdAt !== 'string') return 'createdAt';
  if (!isCount(m.durationMs)) return 'durationMs';
  if (!Array.isArray(m.tracks)) return 'tracks';
  for (const [i, t] of m.tracks.entries()) {
    const bad = trackProblem(t);
    if (bad !== null) return `tracks[${i}]${bad}`;
  }
  return null;
}

function trackProblem(t: unknown): string | null {
  if (!isObject(t)) return ' is not an object';
  if (!Number.isInteger(t.index) || (t.index as number) < 0) return '.index';
  if (t.kind !== 'audio' && t.kind !== 'video') return '.kind';
  if (typeof t.codec !== 'string' || !CODECS.has(t.codec)) return '.codec';
  if (!Number.isInteger(t.payloadType) || (t.payloadType as number) < 0 || (t.payloadType as number) > 127) return '.payloadType';
  if (!Number.isInteger(t.clockRate) || (t.clockRate as number) < 1) return '.clockRate';
  if (t.channels !== undefined && (!Number.isInteger(t.channels) || (t.channels as number) < 1)) return '.channels';
  if (!isObject(t.fmtp) || Object.values(t.fmtp).some((v) => typeof v !== 'string')) return '.fmtp';
  for (const k of ['file', 'rtpdump'] as const) {
    if (typeof t[k] !== 'string' || !FILE_NAME.test(t[k])) return `.${k}`;
  }
  if (typeof t.contentType !== 'string') return '.contentType';
  for (const k of ['packets', 'bytes', 'lost', 'duplicates', 'reordered', 'late', 'durationMs'] as const) {
    if (!isCount(t[k])) return `.${k}`;
  }
  return null;
}

export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
