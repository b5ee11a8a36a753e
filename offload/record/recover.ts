/**
 * Start-up recovery: a recording whose manifest still says "recording" was cut
 * by a crash. Its rtpdump files hold every packet flushed before the crash
 * (the last second at most is lost); each is cut back to its last complete
 * record, and the playable file is rebuilt from it with the same pipeline the
 * live recording uses. Then the files take their final names and the manifest
 * says finished (recovered).
 */
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { RecordingSummary } from '../channel.js';
import { DurableFile } from '../../storage/recording/file.js';
import { openRtpdump, rtpdumpHeader } from '../../storage/rtpdump.js';
import { readManifest, recordedTrackOf, syncDir, trackSpecOf, writeManifest, type Manifest, type ManifestTrack } from '../../storage/recording/manifest.js';
import { FrameOutput } from './output.js';
import { replayRtpdump } from './replay.js';

export async function recoverRecordings(root: string): Promise<{ recovered: RecordingSummary[]; errors: { name: string; error: string }[] }> {
  const recovered: RecordingSummary[] = [];
  const errors: { name: string; error: string }[] = [];
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return { recovered, errors };
  }
  for (const name of names.sort()) {
    const dir = path.join(root, name);
    let m: Manifest;
    try {
      m = await readManifest(dir);
    } catch {
      continue;
    }
    if (m.state !== 'recording') continue;
    try {
      recovered.push(await recoverOne(dir, m));
    } catch (err) {
      errors.push({ name, error: (err as Error).message });
    }
  }
  return { recovered, errors };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function recoverOne(dir: string, m: Manifest): Promise<RecordingSummary> {
  const tracks: ManifestTrack[] = [];
  for (const t of m.tracks) tracks.push(await recoverTrack(dir, t));
  const durationMs = Math.max(0, ...tracks.map((t) => t.durationMs));
  const done: Manifest = { ...m, state: 'finished', finishedAt: new Date().toISOString(), reason: 'recovered', recovered: true, durationMs, tracks };
  await writeManifest(dir, done);
  return {
    name: m.name,
    state: 'finished',
    reason: 'recovered',
    durationMs,
    tracks: tracks.map(recordedTrackOf),
  };
}

async function recoverTrack(dir: string, t: ManifestTrack): Promise<ManifestTrack> {
  const dumpFinal = path.join(dir, t.rtpdump);
  const dumpPart = `${dumpFinal}.part`;
  const fileFinal = path.join(dir, t.file);
  if (!(await exists(dumpPart))) {
    // Finished before the crash, or never started: nothing to rebuild.
    return t;
  }
  const spec = trackSpecOf(t);
  await rm(`${fileFinal}.part`, { force: true });
  const out = new FrameOutput(spec);
  const playable = await DurableFile.create(fileFinal);
  playable.write(out.begin());
  let packets = 0;
  let bytes = 0;
  let lost = 0;
  let validLength = 0;
  const size = (await stat(dumpPart)).size;
  if (size > 0) {
    let file;
    try {
      file = await openRtpdump(dumpPart);
    } catch {
      file = null; // crashed before its header was flushed
    }
    if (file !== null) {
      try {
        for await (const p of replayRtpdump(file)) {
          if (p.payload.length === 0 && p.data.length === 0) continue;
          const chunks = out.push(p.payload, p.ts, p.marker, p.lostBefore);
          if (chunks.length > 0) playable.write(chunks);
          packets++;
          bytes += p.payload.length;
          lost += p.lostBefore;
          if (playable.bytesBuffered > 4 * 1024 * 1024) await playable.flush();
        }
      } finally {
        validLength = file.validLength;
        await file.close();
      }
    }
  }
  const { tail, patches } = out.end();
  if (tail.length > 0) playable.write(tail);
  await playable.finalize(patches);
  // Cut the rtpdump back to its last complete record (or give it a bare header), then its name.
  const h = await open(dumpPart, 'r+');
  try {
    await h.truncate(validLength);
    if (validLength === 0) await h.write(rtpdumpHeader(Date.now(), '0.0.0.0', 9), 0, undefined, 0);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(dumpPart, dumpFinal);
  await syncDir(dir);
  const recovered: ManifestTrack = { ...t, packets, bytes, lost, durationMs: Math.round(out.durationMs(t.clockRate)) };
  const why = out.unplayable();
  recovered.playable = why === null;
  if (why === null) delete recovered.unplayableReason;
  else recovered.unplayableReason = why;
  return recovered;
}
