/**
 * The durable file of a recording. Container writers hand it bytes at packet
 * rate; it keeps them in memory and writes them in one positional write per
 * flush (the recorder flushes at least once a second), so a crash loses at most
 * the last unflushed second. The file is `<final>.part` until finalize(), which
 * applies the header patches, fsyncs, renames it to its final name and fsyncs the
 * directory: a file under its final name is always complete.
 *
 * Errors never throw from write(): a disk error (ENOSPC, EIO, EBADF, ...) or a
 * disk too slow to keep the buffer under its bound puts the file in a failed
 * state (`error`); later writes are ignored and flush/finalize reject with it.
 * The .part stays for recovery unless discard() removes it.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { FilePatch } from '../writers/types.js';

export const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Buffered bytes are copied into blocks of this size. */
const BLOCK_BYTES = 64 * 1024;
/** Free blocks kept for reuse. */
const SPARE_BLOCKS = 2;

export interface DurableFileOptions {
  /** Bound on bytes held in memory (buffered and being written). Default 16 MiB. */
  maxBufferedBytes?: number;
}

/** The disk does not take the bytes as fast as they arrive. */
export class DiskTooSlowError extends Error {
  readonly code = 'OFFCAST_DISK_TOO_SLOW';
  readonly pendingBytes: number;
  constructor(pendingBytes: number) {
    super(`disk too slow: ${pendingBytes} bytes pending`);
    this.name = 'DiskTooSlowError';
    this.pendingBytes = pendingBytes;
  }
}

function invalidState(message: string): Error {
  const err = new Error(message);
  err.name = 'InvalidStateError';
  return err;
}

type State = 'open' | 'finalizing' | 'finalized' | 'aborted' | 'discarded';

export class DurableFile {
  /** The name the file gets when finalized. */
  readonly finalPath: string;
  /** The name while recording (and after abort). */
  readonly partPath: string;

  private handle: FileHandle | null;
  private readonly maxBufferedBytes: number;
  private state: State = 'open';
  private failure: Error | null = null;
  /** Bytes on disk (positional end of the file). */
  private written = 0;
  /** Bytes of the write in flight not yet on disk. */
  private inFlightBytes = 0;
  /** Bytes in `blocks`, waiting for the next write. */
  private buffered = 0;
  /** Full blocks and the block being filled; `fill` bytes of the last one are used. */
  private blocks: Uint8Array[] = [];
  private fill = 0;
  private spare: Uint8Array[] = [];
  private inFlight: Promise<void> | null = null;
  private closing: Promise<void> | null = null;

  private constructor(finalPath: string, partPath: string, handle: FileHandle, maxBufferedBytes: number) {
    this.finalPath = finalPath;
    this.partPath = partPath;
    this.handle = handle;
    this.maxBufferedBytes = maxBufferedBytes;
  }

  /**
   * Creates `finalPath + '.part'`; fails (EEXIST) when it exists, so two recordings
   * never share a file and a crashed one's .part is left for recovery.
   */
  static async create(finalPath: string, opts?: DurableFileOptions): Promise<DurableFile> {
    const maxBufferedBytes = opts?.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    if (!Number.isSafeInteger(maxBufferedBytes) || maxBufferedBytes < 1) {
      throw new RangeError(`DurableFile: maxBufferedBytes ${maxBufferedBytes} is not a positive integer`);
    }
    const partPath = `${finalPath}.part`;
    const handle = await open(partPath, 'wx');
    return new DurableFile(finalPath, partPath, handle, maxBufferedBytes);
  }

  /** Bytes on disk (flushed). */
  get bytesWritten(): number {
    return this.written;
  }

  /** Bytes in memory: buffered, or being written. */
  get bytesBuffered(): number {
    return this.inFlightBytes + this.buffered;
  }

  /** The error that failed the file, or null. */
  get error(): Error | null {
    return this.failure;
  }

  /**
   * Copies the chunks into the buffer. Returns false (and keeps nothing) when the
   * file has failed or is closed, or when the bytes would pass maxBufferedBytes:
   * that fails the file with DiskTooSlowError rather than growing memory.
   */
  write(chunks: Uint8Array[]): boolean {
    if (this.failure !== null || this.state !== 'open') return false;
    let total = 0;
    for (let i = 0; i < chunks.length; i++) total += chunks[i]!.length;
    const pending = this.inFlightBytes + this.buffered + total;
    if (pending > this.maxBufferedBytes) {
      this.fail(new DiskTooSlowError(pending));
      return false;
    }
    for (let i = 0; i < chunks.length; i++) this.copyIn(chunks[i]!);
    this.buffered += total;
    return true;
  }

  private copyIn(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      let block = this.blocks.length > 0 ? this.blocks[this.blocks.length - 1]! : undefined;
      if (block === undefined || this.fill === block.length) {
        block = this.spare.pop() ?? new Uint8Array(BLOCK_BYTES);
        this.blocks.push(block);
        this.fill = 0;
      }
      const n = Math.min(block.length - this.fill, chunk.length - at);
      block.set(chunk.subarray(at, at + n), this.fill);
      this.fill += n;
      at += n;
    }
  }

  /**
   * Writes everything buffered at the time of the call to the end of the file.
   * One write is in flight at a time; concurrent calls wait for it and for the
   * writes after it that cover their bytes. Rejects with the file's error.
   */
  async flush(): Promise<void> {
    this.throwIfFailed();
    const target = this.written + this.inFlightBytes + this.buffered;
    while (this.written < target) {
      this.throwIfFailed();
      if (this.state !== 'open' && this.state !== 'finalizing') throw invalidState(`DurableFile ${this.partPath} was ${this.state}`);
      if (this.inFlight === null) this.inFlight = this.writeBuffered();
      await this.inFlight;
    }
    this.throwIfFailed();
    if (this.state !== 'open' && this.state !== 'finalizing') throw invalidState(`DurableFile ${this.partPath} was ${this.state}`);
  }

  /** Writes the buffered blocks at the end position; never rejects (failures go to `error`). */
  private async writeBuffered(): Promise<void> {
    const blocks = this.blocks;
    const lastFill = this.fill;
    this.blocks = [];
    this.fill = 0;
    this.inFlightBytes = this.buffered;
    this.buffered = 0;
    try {
      const handle = this.handle;
      if (handle === null) throw invalidState(`DurableFile ${this.partPath} is closed`);
      const views = blocks.map((b, i) => (i === blocks.length - 1 ? b.subarray(0, lastFill) : b));
      let bytes = 0;
      for (const v of views) bytes += v.length;
      let done = 0;
      while (done < bytes) {
        // writev may write less than asked (a full disk part-way); go on from there.
        const { bytesWritten } = await handle.writev(remainingViews(views, done), this.written);
        if (bytesWritten === 0) throw new Error(`DurableFile ${this.partPath}: write made no progress`);
        done += bytesWritten;
        this.written += bytesWritten;
        this.inFlightBytes -= bytesWritten;
      }
      for (const b of blocks) if (this.spare.length < SPARE_BLOCKS && b.length === BLOCK_BYTES) this.spare.push(b);
    } catch (err) {
      this.fail(err);
    } finally {
      this.inFlightBytes = 0;
      this.inFlight = null;
    }
  }

  /**
   * Ends the recording: flushes, writes the patches (header sizes) at their
   * offsets, fsyncs, closes, renames `.part` to the final name and fsyncs the
   * directory. Rejects with the error that failed the file (the .part stays; call
   * abort() or discard()). Calling it again returns the same outcome.
   */
  finalize(patches: FilePatch[]): Promise<void> {
    if (this.closing !== null) {
      if (this.state === 'finalizing' || this.state === 'finalized') return this.closing;
      return Promise.reject(invalidState(`DurableFile ${this.partPath} was ${this.state}`));
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    this.state = 'finalizing';
    this.closing = this.doFinalize(patches);
    return this.closing;
  }

  private async doFinalize(patches: FilePatch[]): Promise<void> {
    try {
      await this.flush();
      const handle = this.handle!;
      for (const patch of patches) {
        if (!Number.isSafeInteger(patch.offset) || patch.offset < 0 || patch.offset + patch.bytes.length > this.written) {
          throw new RangeError(`DurableFile: patch of ${patch.bytes.length} bytes at offset ${patch.offset} is outside the ${this.written} bytes written`);
        }
        let done = 0;
        while (done < patch.bytes.length) {
          const { bytesWritten } = await handle.write(patch.bytes, done, patch.bytes.length - done, patch.offset + done);
          if (bytesWritten === 0) throw new Error(`DurableFile ${this.partPath}: patch write made no progress`);
          done += bytesWritten;
        }
      }
      await handle.sync();
      this.handle = null;
      await handle.close();
      await rename(this.partPath, this.finalPath);
      await syncDirectory(path.dirname(this.finalPath));
      this.state = 'finalized';
    } catch (err) {
      this.fail(err);
      // Closed and left as .part (if the rename did not happen): recovery's business.
      await this.closeHandle();
      this.state = 'aborted';
      throw this.failure!; // fail() has just set it
    }
  }

  /**
   * Stops without finalizing: waits for a write in flight, drops what is still
   * buffered and closes, leaving the .part (what a crash would leave) for recovery.
   * Idempotent; after finalize() it does nothing.
   */
  abort(): Promise<void> {
    if (this.closing !== null) return this.closing.catch(() => undefined);
    this.state = 'aborted';
    this.closing = this.closeHandle();
    return this.closing;
  }

  /** Like abort(), then removes the .part. After finalize() it does nothing (the final file stays). */
  async discard(): Promise<void> {
    if (this.state === 'discarded') return;
    await this.abort();
    if (this.state === 'finalized') return;
    this.state = 'discarded';
    try {
      await unlink(this.partPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** A method rather than an inline check: the compiler would assume `failure` unchanged across an await. */
  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private fail(err: unknown): void {
    if (this.failure === null) this.failure = err instanceof Error ? err : new Error(String(err));
    // Nothing more will be written: release the memory.
    this.blocks = [];
    this.fill = 0;
    this.spare = [];
    this.buffered = 0;
  }

  private async closeHandle(): Promise<void> {
    if (this.inFlight !== null) await this.inFlight;
    this.blocks = [];
    this.fill = 0;
    this.buffered = 0;
    const handle = this.handle;
    this.handle = null;
    if (handle === null) return;
    try {
      await handle.close();
    } catch (err) {
      // The bytes written are what they are; a failing close only matters for the record.
      if (this.failure === null) this.failure = err instanceof Error ? err : new Error(String(err));
    }
  }
}

/** The views after the first `skip` bytes, for continuing a short write. */
function remainingViews(views: Uint8Array[], skip: number): Uint8Array[] {
  if (skip === 0) return views;
  const out: Uint8Array[] = [];
  let left = skip;
  for (const v of views) {
    if (left >= v.length) {
      left -= v.length;
      continue;
    }
    out.push(left > 0 ? v.subarray(left) : v);
    left = 0;
  }
  return out;
}

/** fsync of a directory, so a rename in it survives a power loss. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
