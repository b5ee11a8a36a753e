/**
 * RTP/AVP/TCP egress (RFC 2326 10.12): packets of the tracks that send on one
 * RTSP connection are written as `$ channel length` frames into a chunk owned
 * by the connection and flushed once per timing-wheel tick — one socket write
 * per tick, not per packet. A chunk handed to the socket is reused only after
 * the socket says it was written. When the connection's backlog (chunks in
 * flight plus the socket's own buffer) is over its bound, whole packets are
 * dropped and counted: never part of a frame, which would desynchronize the
 * stream for good.
 *
 * While the control plane decides a request of the connection, output is
 * held (`hold()`): the answer goes out first, then what was staged meanwhile.
 * A PLAY's answer thus precedes its first packets — clients (ffmpeg) skip
 * interleaved data that comes ahead of the answer they wait for.
 */
import type { Socket } from 'node:net';

/** Bytes per chunk: a few ticks of a video stream. */
const CHUNK_BYTES = 64 * 1024;
/** Chunks per connection at most (in the socket's hands plus the one being filled): the backlog bound. */
const MAX_CHUNKS = 16;

class Chunk {
  readonly buf = Buffer.allocUnsafe(CHUNK_BYTES);
  used = 0;
  /** The socket's write callback, made once per chunk: the chunk is free again. */
  readonly done: () => void;
  constructor(writer: InterleavedWriter) {
    this.done = () => writer.release(this);
  }
}

/** Something that flushes interleaved writers at the end of a tick. */
export interface FlushList {
  dirty(writer: InterleavedWriter): void;
}

export class InterleavedWriter {
  private readonly socket: Socket;
  private readonly flushes: FlushList;
  private readonly free: Chunk[] = [];
  private chunks = 0;
  private cur: Chunk | null = null;
  private closed = false;
  private held = false;
  /** Chunks filled while held, in order. */
  private readonly waiting: Chunk[] = [];
  /** Queued on the flush list for this tick. */
  queued = false;
  packets = 0;
  dropped = 0;

  constructor(socket: Socket, flushes: FlushList) {
    this.socket = socket;
    this.flushes = flushes;
  }

  /** The buffer `reserve()` returned an offset into (valid until the next flush). */
  get stage(): Buffer {
    return this.cur!.buf;
  }

  /**
   * Room for a packet of `len` bytes on `channel`: writes the 4-byte frame
   * header and returns the offset in `stage` where the packet goes, or -1 when
   * the backlog is full (the packet is dropped and counted).
   */
  reserve(channel: number, len: number): number {
    if (this.closed || len > 0xffff) {
      this.dropped++;
      return -1;
    }
    let c = this.cur;
    if (c !== null && c.used + 4 + len > CHUNK_BYTES) {
      this.flush();
      c = null;
    }
    if (c === null) {
      c = this.take();
      if (c === null) {
        this.dropped++;
        return -1;
      }
      this.cur = c;
    }
    if (!this.queued) {
      this.queued = true;
      this.flushes.dirty(this);
    }
    const off = c.used;
    const b = c.buf;
    b[off] = 0x24;
    b[off + 1] = channel;
    b[off + 2] = len >>> 8;
    b[off + 3] = len & 0xff;
    c.used = off + 4 + len;
    this.packets++;
    return off + 4;
  }

  /** Copies a whole packet (RTCP) into a frame; false when dropped. */
  writePacket(channel: number, packet: Buffer): boolean {
    const off = this.reserve(channel, packet.length);
    if (off < 0) return false;
    packet.copy(this.stage, off);
    return true;
  }

  private take(): Chunk | null {
    // The socket's own buffer counts too (responses, a slow reader): over the bound, drop.
    if (this.socket.writableLength > CHUNK_BYTES * MAX_CHUNKS) return null;
    const c = this.free.pop();
    if (c !== undefined) return c;
    if (this.chunks >= MAX_CHUNKS) return null;
    this.chunks++;
    return new Chunk(this);
  }

  /** Hands the chunk being filled to the socket. */
  flush(): void {
    this.queued = false;
    const c = this.cur;
    if (c === null) return;
    this.cur = null;
    if (c.used === 0 || this.closed) {
      this.release(c);
      return;
    }
    if (this.held) this.waiting.push(c);
    else this.socket.write(c.buf.subarray(0, c.used), c.done);
  }

  /** Holds output back (a request is being decided). */
  hold(): void {
    this.held = true;
  }

  /** Writes what was held, after the answer (which the caller wrote first). */
  unhold(): void {
    this.held = false;
    if (this.closed) return;
    for (const c of this.waiting) this.socket.write(c.buf.subarray(0, c.used), c.done);
    this.waiting.length = 0;
  }

  release(c: Chunk): void {
    c.used = 0;
    this.free.push(c);
  }

  close(): void {
    this.closed = true;
    this.cur = null;
    this.free.length = 0;
    this.waiting.length = 0;
  }
}
