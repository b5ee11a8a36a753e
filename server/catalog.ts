/**
 * The media library as the control plane sees it: names, files and probes
 * (track descriptions, cached by file identity). The control plane never opens
 * a media file: the offload probes it (`media.probe`) off this thread. Uploads
 * stream to a temporary file, the offload reads it through as a play would, and
 * only then does it take the name — unusable files never land.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { isTempMediaName, isValidMediaName, listMedia, resolveExistingMediaPath, resolveMediaPath } from '../storage/library.js';
import type { Probe } from '../storage/types.js';
import { MANIFEST, readManifest } from '../storage/recording/manifest.js';
import { recordingProbe } from '../storage/recording/probe.js';
import type { MediaProbeParams } from '../offload/channel.js';
import type { OffloadClient } from './offload.js';
import { conflict, HttpError, invalidName, mediaNotFound, tooLarge, unavailable } from './errors.js';

export interface MediaItem {
  name: string;
  path: string;
  bytes: number;
  mtimeMs: number;
  probe: Probe;
  /** Identity of this version of the file: part of cache keys. */
  version: string;
  /** Set when this lookup probed the file: the worker that kept the opened reader, and its key (CacheLoadParams.probed). */
  probedBy?: { worker: number; key: string };
}

/** Uploaded bodies are written under this prefix first; what a crash leaves is removed at start. */
const UPLOAD_PREFIX = '.upload-';
/** A probe may read a whole upload (up to limits.uploadBytes) through. */
const PROBE_TIMEOUT_MS = 10 * 60 * 1000;

/** What one upload may take (config `limits.*`). */
export interface UploadLimits {
  /** Largest body (limits.uploadBytes): 413 beyond. */
  bytes: number;
  /** Uploads in progress at once (limits.uploads): 503 beyond. */
  concurrent: number;
  /** Longest the body may take to arrive, and longest pause in it (limits.uploadTimeoutMs, limits.uploadIdleMs): 408. */
  timeoutMs: number;
  idleMs: number;
}

export interface LookupOptions {
  /** Frame rate for raw H.264 without VUI timing (part of the probe's key). */
  frameRate?: number;
  /** Accept an answer up to a second old (session creation bursts). */
  recent?: boolean;
  /** A play follows: a probe made now keeps its reader in the worker for the load. */
  forLoad?: boolean;
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

  private readonly offload: OffloadClient;
  /** Uploads in progress (body arriving or being probed). */
  private uploads = 0;
  /** Names uploads in progress will take. */
  private readonly uploadingNames = new Map<string, number>();
  /**
   * Why `name` belongs to a recording (in progress, or a folder on disk), or null.
   * Media and recordings share one namespace: an upload never shadows a recording.
   * Set by the server from the record sessions and the recording store.
   */
  recordingName: (name: string) => Promise<string | null> = async () => null;

  constructor(root: string, offload: OffloadClient) {
    this.root = path.resolve(root);
    this.offload = offload;
  }

  /** Creates the library folder and removes upload temp files a crash (kill -9) left behind. */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    for (const name of await readdir(this.root)) {
      if (name.startsWith(UPLOAD_PREFIX)) await rm(path.join(this.root, name), { force: true });
    }
  }

  checkName(name: string): void {
    if (!isValidMediaName(name)) throw invalidName('media', name);
  }

  /** Media files, then finished recordings (which are media too). */
  async list(): Promise<{ name: string; bytes: number; mtimeMs: number; recording?: boolean }[]> {
    const files: { name: string; bytes: number; mtimeMs: number; recording?: boolean }[] = await listMedia(this.root);
    if (this.recordingsRoot === null) return files;
    const taken = new Set(files.map((f) => f.name));
    let names: string[];
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
  async get(name: string, opts: LookupOptions = {}): Promise<MediaItem> {
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

  private async lookup(name: string, opts: LookupOptions): Promise<MediaItem> {
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
    if (cached !== undefined && cached.version === version) {
      return { name, path: file, bytes: st.size, mtimeMs: st.mtimeMs, probe: cached.probe, version };
    }
    const params: MediaProbeParams = { path: file, validate: false };
    if (opts.frameRate !== undefined) params.frameRate = opts.frameRate;
    // For a play, the worker keeps the parsed file for the load that follows.
    const keep = opts.forLoad === true ? `${file}|${version}|${opts.frameRate ?? ''}` : undefined;
    if (keep !== undefined) params.keep = keep;
    const { probe, worker } = await this.probe(params);
    this.remember(cacheKey, version, probe);
    const item: MediaItem = { name, path: file, bytes: st.size, mtimeMs: st.mtimeMs, probe, version };
    if (keep !== undefined) item.probedBy = { worker, key: keep };
    return item;
  }

  /**
   * Probes a file in the offload (never on this thread), on the worker with the
   * fewest sessions: the one a play placed next would run (and load) on.
   */
  private async probe(params: MediaProbeParams): Promise<{ probe: Probe; worker: number }> {
    const load = this.offload.load;
    let worker = 0;
    for (let i = 1; i < load.length; i++) if (load[i]! < load[worker]!) worker = i;
    const probe = await this.offload.request(worker, 'media.probe', params, PROBE_TIMEOUT_MS);
    return { probe, worker };
  }

  private remember(cacheKey: string, version: string, probe: Probe): void {
    this.probes.set(cacheKey, { version, probe });
    if (this.probes.size > 10000) this.probes.delete(this.probes.keys().next().value!);
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
    for (const t of m.tracks)
      bytes += await stat(path.join(dir, t.rtpdump)).then(
        (s) => s.size,
        () => 0,
      );
    const probe = recordingProbe(m, bytes);
    if (!probe.tracks.some((t) => t.supported)) return null;
    return { name, path: dir, bytes, mtimeMs: st.mtimeMs, probe, version: `rec-${Math.floor(st.mtimeMs)}-${st.ino}` };
  }

  /**
   * Stores an upload under `name`. The body streams to a temporary file and is
   * counted; over `limit` bytes it stops with 413. The offload reads the file
   * through as a play would (else 415/422) before it replaces anything; the
   * answer is this upload's own probe, whatever other uploads of the name do.
   */
  async put(name: string, body: Readable, limits: UploadLimits): Promise<MediaItem & { created: boolean }> {
    this.checkName(name);
    if (isTempMediaName(name)) {
      throw new HttpError(
        400,
        'OFFCAST_RESERVED_NAME',
        `media names ending in .part, .tmp or .temp, or holding .tmp. or .tmp-, are reserved for files being written`,
      );
    }
    const taken = await this.recordingName(name);
    if (taken !== null) throw conflict(`${taken}: a recording is also media, so an upload may not take its name`);
    // Checked and counted with no await between, so concurrent uploads cannot pass together.
    if (this.uploads >= limits.concurrent) {
      throw unavailable('OFFCAST_UPLOADS_BUSY', `limits.uploads (${limits.concurrent}) uploads are in progress; try again later`);
    }
    this.uploads++;
    this.uploadingNames.set(name, (this.uploadingNames.get(name) ?? 0) + 1);
    try {
      return await this.store(name, body, limits);
    } finally {
      this.uploads--;
      const n = this.uploadingNames.get(name)! - 1;
      if (n === 0) this.uploadingNames.delete(name);
      else this.uploadingNames.set(name, n);
    }
  }

  /** An upload of `name` is in progress (a record session may not take the name meanwhile). */
  isUploading(name: string): boolean {
    return this.uploadingNames.has(name);
  }

  private async store(name: string, body: Readable, limits: UploadLimits): Promise<MediaItem & { created: boolean }> {
    const final = resolveMediaPath(this.root, name);
    const temp = path.join(this.root, `${UPLOAD_PREFIX}${randomBytes(6).toString('hex')}`);
    let received = 0;
    // A body that stalls or trickles is cut off: it would hold a socket and a temp file forever.
    const timeout = (message: string) => (): void => void counter.destroy(new HttpError(408, 'OFFCAST_UPLOAD_TIMEOUT', message));
    const total = setTimeout(timeout(`the upload's body did not arrive within limits.uploadTimeoutMs (${limits.timeoutMs} ms)`), limits.timeoutMs);
    const idle = setTimeout(timeout(`the upload's body paused longer than limits.uploadIdleMs (${limits.idleMs} ms)`), limits.idleMs);
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        idle.refresh();
        received += chunk.length;
        if (received > limits.bytes) cb(tooLarge(limits.bytes));
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
        clearTimeout(total);
        clearTimeout(idle);
        body.off('aborted', aborted);
        body.unpipe(counter);
        if (!body.readableEnded) body.resume();
      }
      const { probe } = await this.probe({ path: temp, validate: true });
      // A record session may have taken the name while the body arrived.
      const taken = await this.recordingName(name);
      if (taken !== null) throw conflict(`${taken}: a recording is also media, so an upload may not take its name`);
      // rename keeps the inode, size and mtime: the version is the stored file's.
      const st = await stat(temp);
      const existed = await stat(final).then(
        () => true,
        () => false,
      );
      await rename(temp, final);
      this.forget(name);
      const version = `${st.size}-${Math.floor(st.mtimeMs)}-${st.ino}`;
      this.remember(`${name}|`, version, probe);
      return { name, path: final, bytes: st.size, mtimeMs: st.mtimeMs, probe, version, created: !existed };
    } catch (err) {
      await rm(temp, { force: true });
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
