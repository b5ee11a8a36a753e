/**
 * Bounded reads over an fs.FileHandle: readers never load a whole file, they read
 * headers, tails and fixed-size blocks at explicit positions.
 */
import type { FileHandle } from 'node:fs/promises';

/**
 * Reads up to `length` bytes at `position` into a new array; returns fewer bytes only
 * at end of file (the returned array is then shorter).
 */
export async function readAt(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  const filled = await readInto(handle, out, 0, length, position);
  return filled === length ? out : out.subarray(0, filled);
}

/**
 * Fills `buf[offset, offset + length)` from the file at `position`, looping over short
 * reads; returns the number of bytes read (less than `length` only at end of file).
 */
export async function readInto(handle: FileHandle, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buf, offset + filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

/**
 * A forward-only window over [start, end) of a file, for parsers that consume
 * variable-length records (Ogg pages). Memory is the window capacity, whatever the
 * file size. Views returned by `bytes` are valid until the next `ensure`.
 */
export class SequentialFileReader {
  private readonly handle: FileHandle;
  private readonly end: number;
  private buf: Uint8Array;
  /** File position of buf[0]. */
  private bufPosition: number;
  /** Valid bytes in buf. */
  private bufLength = 0;
  /** Read cursor, as a file position. */
  private cursor: number;

  constructor(handle: FileHandle, start: number, end: number, capacity: number) {
    this.handle = handle;
    this.end = end;
    // No bigger than the window: reading a small file costs memory for its size only.
    this.buf = new Uint8Array(Math.max(0, Math.min(capacity, end - start)));
    this.bufPosition = start;
    this.cursor = start;
  }

  /** File position of the read cursor. */
  get position(): number {
    return this.cursor;
  }

  /** Bytes between the cursor and the end of the window. */
  get remaining(): number {
    return this.end - this.cursor;
  }

  /**
   * Makes `length` bytes from the cursor available in `bytes`/`offset`; returns how
   * many are available (less than `length` only at the end of the window).
   */
  async ensure(length: number): Promise<number> {
    const want = Math.max(0, Math.min(length, this.end - this.cursor));
    const start = this.cursor - this.bufPosition;
    if (this.bufLength - start >= want) return want;
    // Keep the unread tail (none if the cursor skipped past the buffered bytes).
    const keep = start < this.bufLength ? this.bufLength - start : 0;
    if (want > this.buf.length) {
      // Only if a caller asks for more than the capacity; grows to that size.
      const bigger = new Uint8Array(want);
      if (keep > 0) bigger.set(this.buf.subarray(start, start + keep));
      this.buf = bigger;
    } else if (keep > 0) {
      this.buf.copyWithin(0, start, start + keep);
    }
    this.bufLength = keep;
    this.bufPosition = this.cursor;
    const toRead = Math.min(this.buf.length - this.bufLength, this.end - (this.bufPosition + this.bufLength));
    const got = await readInto(this.handle, this.buf, this.bufLength, toRead, this.bufPosition + this.bufLength);
    this.bufLength += got;
    return Math.min(want, this.bufLength);
  }

  /** The window buffer; the cursor is at `offset`. */
  get bytes(): Uint8Array {
    return this.buf;
  }

  /** Index of the cursor in `bytes`. */
  get offset(): number {
    return this.cursor - this.bufPosition;
  }

  /** Number of valid bytes in `bytes`. */
  get length(): number {
    return this.bufLength;
  }

  skip(length: number): void {
    this.cursor += length;
  }
}
