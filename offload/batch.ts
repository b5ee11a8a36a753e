/**
 * Batched egress through the native sender: packets of every track due in one
 * timing-wheel tick are written (header + payload) into one staging buffer and
 * sent with sendmmsg when the tick ends — one call into C per tick instead of
 * one libuv send per packet. The kernel copies them synchronously, so the
 * staging buffer is free again right after the flush (no in-flight buffers to
 * guard, unlike the dgram path).
 */
import type { CopyBytes, SendBatch } from './native/index.js';

/** Whatever owns a staged packet: told when its send failed. */
export interface BatchOwner {
  sendFailed(errno: number): void;
}

const STAGE_BYTES = 1 << 20;
const MAX_PACKETS = 2048;

export class BatchSender {
  readonly stage = Buffer.allocUnsafe(STAGE_BYTES);
  private readonly fds = new Int32Array(MAX_PACKETS);
  private readonly offsets = new Uint32Array(MAX_PACKETS);
  private readonly lengths = new Uint32Array(MAX_PACKETS);
  private readonly status = new Int32Array(MAX_PACKETS);
  private readonly owners: (BatchOwner | null)[] = new Array<BatchOwner | null>(MAX_PACKETS).fill(null);
  private readonly send: SendBatch;
  private readonly copyBytes: CopyBytes;
  private count = 0;
  private used = 0;
  /** Totals, for metrics. */
  batches = 0;
  packets = 0;
  failures = 0;

  constructor(send: SendBatch, copyBytes: CopyBytes) {
    this.send = send;
    this.copyBytes = copyBytes;
  }

  /**
   * Writes a packet into its reserved place: the 12-byte header template, then
   * `len` payload bytes from `payload` at `payloadOff` — without allocating
   * (Buffer#copy of a range makes a view of the source per call). The caller
   * patches the header fields afterwards.
   */
  write(off: number, header: Uint8Array, payload: Uint8Array, payloadOff: number, len: number): void {
    const stage = this.stage;
    for (let k = 0; k < 12; k++) stage[off + k] = header[k]!;
    this.copyBytes(stage, off + 12, payload, payloadOff, len);
  }

  /** Reserves `len` bytes for a packet to `fd`; returns the offset in `stage` to write it at. */
  reserve(fd: number, len: number, owner: BatchOwner): number {
    if (this.count === MAX_PACKETS || this.used + len > STAGE_BYTES) this.flush();
    const i = this.count++;
    const off = this.used;
    this.fds[i] = fd;
    this.offsets[i] = off;
    this.lengths[i] = len;
    this.owners[i] = owner;
    this.used = off + len;
    return off;
  }

  flush(): void {
    const n = this.count;
    if (n === 0) return;
    const sent = this.send(this.fds, this.stage, this.offsets, this.lengths, this.status, n);
    this.batches++;
    this.packets += n;
    if (sent !== n) {
      for (let i = 0; i < n; i++) {
        const e = this.status[i]!;
        if (e !== 0) {
          this.failures++;
          this.owners[i]!.sendFailed(e);
        }
      }
    }
    for (let i = 0; i < n; i++) this.owners[i] = null;
    this.count = 0;
    this.used = 0;
  }
}
