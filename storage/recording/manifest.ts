/**
 * The manifest of a recording folder (recording.json): what was recorded, in
 * which files, and whether it finished. Written atomically (temp file, fsync,
 * rename) at the start and at the end, so start-up recovery can tell an
 * unfinished recording from a finished one.
 */
import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Encoding } from '../../offload/channel.js';

export const MANIFEST = 'recording.json';

export interface ManifestTrack {
  index: number;
  kind: 'audio' | 'video';
  codec: Encoding;
  payloadType: number;
  clockRate: number;
  channels?: number;
  fmtp: Record<string, string>;
  /** Playable file name in the folder (e.g. track0.h264). */
  file: string;
  contentType: string;
  rtpdump: string;
  packets: number;
  bytes: number;
  lost: number;
  duplicates: number;
  reordered: number;
  late: number;
  /** Media time covered by the track's timestamps, ms. */
  durationMs: number;
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

export async function readManifest(dir: string): Promise<Manifest> {
  const text = await readFile(path.join(dir, MANIFEST), 'utf8');
  const m = JSON.parse(text) as Manifest;
  if (m === null || typeof m !== 'object' || m.version !== 1 || !Array.isArray(m.tracks)) throw new TypeError(`${dir}: not an offcast recording manifest`);
  return m;
}

export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
