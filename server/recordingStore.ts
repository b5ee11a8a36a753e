/**
 * The recordings on disk, as /v1/recordings serves them: one folder per name
 * under `recordingsRoot`, each with its manifest and track files. The store
 * reads manifests and streams files; the offload writes them.
 */
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isValidMediaName, resolveMediaPath } from '../storage/library.js';
import { readManifest, type Manifest } from '../storage/recording/manifest.js';
import { conflict, HttpError, invalidName, recordingNotFound } from './errors.js';

export class RecordingStore {
  readonly root: string;
  /** Whether a record session is writing `name` now (its folder must not be deleted). */
  private readonly inProgress: (name: string) => boolean;

  constructor(root: string, inProgress: (name: string) => boolean) {
    this.root = path.resolve(root);
    this.inProgress = inProgress;
  }

  /** The folder of recording `name` (400 for a name that could not be one). */
  dir(name: string): string {
    if (!isValidMediaName(name)) throw invalidName('recording', name);
    return resolveMediaPath(this.root, name);
  }

  async exists(name: string): Promise<boolean> {
    return exists(this.dir(name));
  }

  async list(): Promise<Manifest[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return [];
    }
    const out: Manifest[] = [];
    for (const n of names.sort()) {
      if (!isValidMediaName(n)) continue;
      try {
        out.push(await readManifest(path.join(this.root, n)));
      } catch {
        // not a recording folder
      }
    }
    return out;
  }

  async manifest(name: string): Promise<Manifest> {
    const dir = this.dir(name);
    try {
      return await readManifest(dir);
    } catch {
      throw recordingNotFound(name);
    }
  }

  async delete(name: string): Promise<void> {
    const m = await this.manifest(name);
    if (this.inProgress(name)) throw conflict(`recording ${name} is in progress: stop its session first`);
    if (m.state === 'recording') throw conflict(`recording ${name} is unfinished (it is recovered at the next start)`);
    await rm(this.dir(name), { recursive: true, force: true });
  }

  /** A finished track file: a stream, its type and size. */
  async trackFile(
    name: string,
    index: number,
    which: 'playable' | 'rtpdump',
  ): Promise<{ stream: NodeJS.ReadableStream; contentType: string; bytes: number; fileName: string }> {
    const m = await this.manifest(name);
    if (m.state !== 'finished') throw new HttpError(409, 'OFFCAST_RECORDING_UNFINISHED', `recording ${name} is ${m.state}`);
    const t = m.tracks.find((x) => x.index === index);
    if (t === undefined) throw new HttpError(404, 'OFFCAST_TRACK_NOT_FOUND', `recording ${name} has no track ${index}`);
    const fileName = which === 'playable' ? t.file : t.rtpdump;
    const file = path.join(this.dir(name), fileName);
    let st;
    try {
      st = await stat(file);
    } catch {
      throw new HttpError(404, 'OFFCAST_TRACK_NOT_FOUND', `recording ${name} has no file for track ${index}`);
    }
    return { stream: createReadStream(file), contentType: which === 'playable' ? t.contentType : 'application/x-rtpdump', bytes: st.size, fileName };
  }
}

export async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
