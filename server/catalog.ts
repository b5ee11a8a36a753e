/**
 * The media library as the control plane sees it: names, files and probes
 * (track descriptions, cached by file identity). Uploads stream to a temporary
 * file, are probed, and only then take the name — unusable files never land.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { isValidMediaName, listMedia, probeMedia, resolveExistingMediaPath, resolveMediaPath } from '../storage/library.js';
import { MediaError } from '../storage/errors.js';
import type { Probe } from '../storage/types.js';
import { MANIFEST, readManifest } from '../storage/recording/manifest.js';
import { recordingProbe } from '../storage/recording/probe.js';
import { HttpError, invalidName, mediaNotFound, tooLarge } from './errors.js';

export interface MediaItem {
  name: string;
  path: string;
  bytes: number;
  mtimeMs: number;
  probe: Probe;
  /** Identity of this version of the file: part of cache keys. */
  version: string;
}

/** How long a looked-up media item is reused without another stat. */
const RECENT_MS = 1000;

export class Catalog {
  readonly root: string;
  /** Finished recordings are media too (format 'recording'); set by the server. */
  recordingsRoot: string | null = null;
  private readonly probes = new Map<string, { version: string; probe: Probe }>();
  /** Real paths of names, checked by inode: realpath costs more than the rest of a lookup. */
  private readonly real = new Map<string, { path: string; ino: number }>();
  /** Items looked up in the last second: a burst of session creates stats the file once. */
  private readonly recent = new Map<string, { item: MediaItem; until: number }>();

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  checkName(name: string): void {
    if (!isValidMediaName(name)) throw invalidName('media', name);
  }

  /** Media files, then finished recordings (which are media too). */
  async list(): Promise<{ name: string; bytes: number; mtimeMs: number; recording?: boolean }[]> {
    const files: { name: string; bytes: number; mtimeMs: number; recording?: boolean }[] = await listMedia(this.root);
    if (this.recordingsRoot === null) return files;
    const taken = new Set(files.map((f) => f.name));
    let names: string[] = [];
    try {
      names = await readdir(this.recordingsRoot);
    } catch {
      return files;
    }
    for (const name of names.sort()) {
      if (taken.has(name) || !isValidMediaName(name)) continue;
      const item = await this.recording(name).catch(() => null);
      if (item !== null) files.push({ name, bytes: item.bytes, mtimeMs: item.mtimeMs, recording: true });
    }
    return files;
  }

  /**
   * The media item with its probe; 404 when missing, 415/422 when unusable.
   * `recent` allows an answer up to a second old (session creation:
   * a burst stats the file once; a file deleted meanwhile fails when it is loaded).
   */
  async get(name: string, opts: { frameRate?: number; recent?: boolean } = {}): Promise<MediaItem> {
    this.checkName(name);
    const recentKey = `${name}|${opts.frameRate ?? ''}`;
    const hit = this.recent.get(recentKey);
    const now = performance.now();
    if (opts.recent === true && hit !== undefined && hit.until > now) return hit.item;
    const item = await this.lookup(name, opts);
    this.recent.set(recentKey, { item, until: now + RECENT_MS });
    if (this.recent.size > 1000) this.recent.delete(this.recent.keys().next().value!);
    return item;
  }

  /** Drops everything remembered about `name` (its file changed or is gone). */
  private forget(name: string): void {
    this.real.delete(name);
    for (const map of [this.recent, this.probes]) {
      for (const key of [...map.keys()]) if (key.startsWith(name + '|')) map.delete(key);
    }
  }

  private async lookup(name: string, opts: { frameRate?: number; recent?: boolean }): Promise<MediaItem> {
    let file: string;
    let st;
    try {
      const known = this.real.get(name);
      st = known === undefined ? undefined : await stat(known.path).catch(() => undefined);
      if (known !== undefined && st !== undefined && st.ino === known.ino) file = known.path;
      else {
        // The real path: a symlink leading out of the library is not media (as listMedia says).
        file = await resolveExistingMediaPath(this.root, name);
        st = await stat(file);
        this.real.set(name, { path: file, ino: st.ino });
        if (this.real.size > 10000) this.real.delete(this.real.keys().next().value!);
      }
    } catch {
      const rec = await this.recording(name);
      if (rec !== null) return rec;
      throw mediaNotFound(name);
    }
    if (!st.isFile()) throw mediaNotFound(name);
    const version = `${st.size}-${Math.floor(st.mtimeMs)}-${st.ino}`;
    const cacheKey = `${name}|${opts.frameRate ?? ''}`;
    const cached = this.probes.get(cacheKey);
    let probe: Probe;
    if (cached !== undefined && cached.version === version) probe = cached.probe;
    else {
      probe = await probeFile(file, opts.frameRate === undefined ? {} : { frameRate: opts.frameRate });
      this.probes.set(cacheKey, { version, probe });
      if (this.probes.size > 10000) this.probes.delete(this.probes.keys().next().value!);
    }
    return { name, path: file, bytes: st.size, mtimeMs: st.mtimeMs, probe, version };
  }

  /** A finished recording as a media item (its probe from the manifest), or null. */
  private async recording(name: string): Promise<MediaItem | null> {
    if (this.recordingsRoot === null) return null;
    const dir = resolveMediaPath(this.recordingsRoot, name);
    let m;
    try {
      m = await readManifest(dir);
    } catch {
      return null;
    }
    if (m.state !== 'finished') return null;
    const st = await stat(path.join(dir, MANIFEST));
    let bytes = 0;
    for (const t of m.tracks) bytes += await stat(path.join(dir, t.rtpdump)).then((s) => s.size, () => 0);
    const probe = recordingProbe(m, bytes);
    if (!probe.tracks.some((t) => t.supported)) return null;
    return { name, path: dir, bytes, mtimeMs: st.mtimeMs, probe, version: `rec-${Math.floor(st.mtimeMs)}-${st.ino}` };
  }

  /**
   * Stores an upload under `name`. The body streams to a temporary file and is
   * counted; over `limit` bytes it stops with 413. The file must probe as
   * playable media (else 415/422) before it replaces anything.
   */
  async put(name: string, body: Readable, limit: number): Promise<MediaItem & { created: boolean }> {
    this.checkName(name);
    const final = resolveMediaPath(this.root, name);
    const temp = path.join(this.root, `.upload-${randomBytes(6).toString('hex')}`);
    let received = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (received > limit) cb(tooLarge(limit));
        else cb(null, chunk);
      },
    });
    try {
      // The request stays out of the pipeline: destroying it on 413 would abort
      // the socket before the answer goes out. Unpipe it and let it drain instead.
      const written = pipeline(counter, createWriteStream(temp, { flags: 'wx' }));
      const aborted = (): void => void counter.destroy(new HttpError(400, 'OFFCAST_UPLOAD_ABORTED', 'the upload ended before the body was complete'));
      body.once('aborted', aborted);
      body.pipe(counter);
      try {
        await written;
      } finally {
        body.off('aborted', aborted);
        body.unpipe(counter);
        if (!body.readableEnded) body.resume();
      }
      await probeFile(temp, {});
      const existed = await stat(final).then(
        () => true,
        () => false,
      );
      await rename(temp, final);
      this.forget(name);
      const item = await this.get(name);
      return { ...item, created: !existed };
    } catch (err) {
      await rm(temp, { force: true });
      if (err instanceof HttpError || err instanceof MediaError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
        throw new HttpError(400, 'OFFCAST_UPLOAD_ABORTED', 'the upload ended before the body was complete');
      }
      throw err;
    }
  }

  async delete(name: string): Promise<void> {
    this.checkName(name);
    const file = resolveMediaPath(this.root, name);
    try {
      const st = await stat(file);
      if (!st.isFile()) throw mediaNotFound(name);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw mediaNotFound(name);
    }
    await rm(file);
    this.forget(name);
  }
}

async function probeFile(file: string, opts: { frameRate?: number }): Promise<Probe> {
  try {
    return await probeMedia(file, opts);
  } catch (err) {
    if (err instanceof MediaError) throw err;
    if (err instanceof RangeError || err instanceof TypeError) throw new MediaError(422, 'OFFCAST_CORRUPT_MEDIA', err.message);
    throw err;
  }
}
