/**
 * The offload's file cache: each media file is packetized once into RTP
 * payloads and kept in one SharedArrayBuffer, which every session of every
 * worker reads (workers pass the buffer to each other, never through the
 * control plane). Sending from the cache only stamps a 12-byte header.
 *
 * Layout of one track inside the buffer (all views are made once per entry):
 *   payload bytes, back to back          (the media itself)
 *   len    Uint16 per packet             payload length
 *   ts     Uint32 per packet             RTP timestamp offset (pts, track clock)
 *   send   Uint32 per packet             send time offset, same clock (video only;
 *                                        audio sends at its timestamp)
 *   flags  Uint8 per packet              bit0 marker, bit1 sync (video only)
 *   marks  Float64 per 256 packets       byte offset of packet 256*k, for seeking
 *   syncs  Uint32 per sync point         packet indices of keyframes (video only)
 * The index costs 6 bytes per audio packet and 11 per video packet, plus 8 per
 * 256 packets: under 5% of the payload for 20 ms Opus at 32 kbit/s and up.
 */
import type { CacheLoadResult, CachedTrackInfo } from './channel.js';

export const FLAG_MARKER = 1;
export const FLAG_SYNC = 2;
export const MARK_EVERY = 256;
const MARK_SHIFT = 8;

/** Where one track's arrays sit in the shared buffer (plain numbers: structured-cloneable). */
export interface TrackLayout {
  count: number;
  clockRate: number;
  endTs: number;
  payloadStart: number;
  payloadBytes: number;
  lenAt: number;
  tsAt: number;
  /** -1 when the track sends at its timestamps and every packet is a sync point. */
  sendAt: number;
  flagsAt: number;
  marksAt: number;
  marks: number;
  syncsAt: number;
  syncs: number;
  /** Marker bit of every packet when there are no flags (AAC sets it, the others don't). */
  markerAll: boolean;
}

export interface MediaLayout {
  key: string;
  bytes: number;
  tracks: TrackLayout[];
}

/** One track's packets, as views over the shared buffer. */
export class PacketTrack {
  readonly count: number;
  readonly clockRate: number;
  readonly endTs: number;
  /** Payload bytes of the whole track; packet i spans [offset(i), offset(i) + len[i]). */
  readonly payload: Buffer;
  readonly len: Uint16Array;
  readonly ts: Uint32Array;
  /** Send time offsets; the same array as `ts` for audio. */
  readonly send: Uint32Array;
  readonly flags: Uint8Array | null;
  readonly marks: Float64Array;
  /** Packet indices of sync points; null when every packet is one. */
  readonly syncs: Uint32Array | null;
  readonly markerAll: boolean;
  readonly payloadBytes: number;

  constructor(sab: SharedArrayBuffer, l: TrackLayout) {
    this.count = l.count;
    this.clockRate = l.clockRate;
    this.endTs = l.endTs;
    this.payloadBytes = l.payloadBytes;
    this.payload = Buffer.from(sab, l.payloadStart, l.payloadBytes);
    this.len = new Uint16Array(sab, l.lenAt, l.count);
    this.ts = new Uint32Array(sab, l.tsAt, l.count);
    this.send = l.sendAt < 0 ? this.ts : new Uint32Array(sab, l.sendAt, l.count);
    this.flags = l.flagsAt < 0 ? null : new Uint8Array(sab, l.flagsAt, l.count);
    this.marks = new Float64Array(sab, l.marksAt, l.marks);
    this.syncs = l.syncsAt < 0 ? null : new Uint32Array(sab, l.syncsAt, l.syncs);
    this.markerAll = l.markerAll;
  }

  private maxLenMemo = -1;

  /** The largest payload (sizes each session's packet buffer); computed once per entry. */
  get maxLen(): number {
    if (this.maxLenMemo < 0) {
      let max = 0;
      for (let i = 0; i < this.count; i++) if (this.len[i]! > max) max = this.len[i]!;
      this.maxLenMemo = max;
    }
    return this.maxLenMemo;
  }

  marker(i: number): boolean {
    return this.flags === null ? this.markerAll : (this.flags[i]! & FLAG_MARKER) !== 0;
  }

  /** Byte offset of packet i's payload (from the nearest mark; seeking only). */
  offsetOf(i: number): number {
    const m = i >>> MARK_SHIFT;
    let off = this.marks[m]!;
    for (let j = m << MARK_SHIFT; j < i; j++) off += this.len[j]!;
    return off;
  }

  /**
   * The sync packet to start from for media time `pts` (track clock): the last
   * sync point whose timestamp is <= pts (video snaps back to a keyframe), or for
   * audio the first packet whose timestamp is >= pts.
   */
  seekIndex(pts: number): number {
    if (this.count === 0) return 0;
    if (this.syncs === null) {
      let lo = 0;
      let hi = this.count;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.ts[mid]! < pts) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    let best = this.syncs.length > 0 ? this.syncs[0]! : 0;
    for (let k = 0; k < this.syncs.length; k++) {
      const idx = this.syncs[k]!;
      if (this.ts[idx]! <= pts) best = idx;
      else break;
    }
    return best;
  }
}

/** A packetized media file shared by every session that plays it. */
export class MediaPackets {
  readonly key: string;
  readonly sab: SharedArrayBuffer;
  readonly layout: MediaLayout;
  readonly tracks: PacketTrack[];

  constructor(sab: SharedArrayBuffer, layout: MediaLayout) {
    this.key = layout.key;
    this.sab = sab;
    this.layout = layout;
    this.tracks = layout.tracks.map((t) => new PacketTrack(sab, t));
  }

  get bytes(): number {
    return this.sab.byteLength;
  }

  info(loadMs: number): CacheLoadResult {
    const tracks: CachedTrackInfo[] = this.tracks.map((t) => ({
      packets: t.count,
      payloadBytes: t.payloadBytes,
      endTs: t.endTs,
      clockRate: t.clockRate,
      sync: t.syncs === null ? t.count : t.syncs.length,
    }));
    return {
      key: this.key,
      bytes: this.bytes,
      payloadBytes: tracks.reduce((sum, t) => sum + t.payloadBytes, 0),
      tracks,
      loadMs,
    };
  }
}

/** Collects one track's packets while a file is packetized. */
/**
 * What a packet must satisfy to enter the cache (its index has 16-bit lengths and
 * 32-bit times); RangeError otherwise. Upload validation runs the same check.
 */
export function checkPacket(payload: Uint8Array, rtpTs: number, sendTs: number): void {
  if (payload.length > 0xffff) throw new RangeError(`payload of ${payload.length} bytes is larger than 65535`);
  if (!Number.isInteger(rtpTs) || rtpTs < 0 || rtpTs > 0xffffffff) throw new RangeError(`timestamp ${rtpTs} out of range (media too long?)`);
  if (!Number.isInteger(sendTs) || sendTs < 0 || sendTs > 0xffffffff) throw new RangeError(`send time ${sendTs} out of range`);
}

export class PacketTrackBuilder {
  readonly clockRate: number;
  private chunks: Buffer[] = [];
  private chunk: Buffer;
  private chunkUsed = 0;
  private payloadBytes = 0;
  private count = 0;
  private len = new Uint16Array(1024);
  private ts = new Uint32Array(1024);
  private send = new Uint32Array(1024);
  private flags = new Uint8Array(1024);
  private sendDiffers = false;
  private anySyncMissing = false;
  private markerSeen = false;
  private markerMissing = false;
  private lastSend = 0;
  endTs = 0;

  constructor(clockRate: number) {
    this.clockRate = clockRate;
    this.chunk = Buffer.allocUnsafe(1 << 20);
  }

  /** Bound to the payloader's emit; copies the payload (it may be a scratch view). */
  readonly emit = (payload: Uint8Array, rtpTs: number, marker: boolean, sendTs: number, sync: boolean): void => {
    checkPacket(payload, rtpTs, sendTs);
    // Keep send times monotonic: the scheduler walks packets in order.
    if (sendTs < this.lastSend) sendTs = this.lastSend;
    this.lastSend = sendTs;
    if (this.count === this.len.length) this.grow();
    if (this.chunkUsed + payload.length > this.chunk.length) {
      this.chunks.push(this.chunk.subarray(0, this.chunkUsed));
      this.chunk = Buffer.allocUnsafe(Math.max(1 << 20, payload.length));
      this.chunkUsed = 0;
    }
    this.chunk.set(payload, this.chunkUsed);
    this.chunkUsed += payload.length;
    this.payloadBytes += payload.length;
    const i = this.count++;
    this.len[i] = payload.length;
    this.ts[i] = rtpTs;
    this.send[i] = sendTs;
    this.flags[i] = (marker ? FLAG_MARKER : 0) | (sync ? FLAG_SYNC : 0);
    if (sendTs !== rtpTs) this.sendDiffers = true;
    if (!sync) this.anySyncMissing = true;
    if (marker) this.markerSeen = true;
    else this.markerMissing = true;
  };

  private grow(): void {
    const n = this.len.length * 2;
    const len = new Uint16Array(n);
    len.set(this.len);
    this.len = len;
    const ts = new Uint32Array(n);
    ts.set(this.ts);
    this.ts = ts;
    const send = new Uint32Array(n);
    send.set(this.send);
    this.send = send;
    const flags = new Uint8Array(n);
    flags.set(this.flags);
    this.flags = flags;
  }

  /** Bytes this track needs in the shared buffer, and its layout at `base`. */
  plan(base: number): { layout: TrackLayout; end: number } {
    const n = this.count;
    // Audio (every packet a sync point, sent at its timestamp, one marker value) needs no flags or send array.
    const compact = !this.sendDiffers && !this.anySyncMissing && !(this.markerSeen && this.markerMissing);
    const marks = Math.ceil(n / MARK_EVERY) || 1;
    let at = base;
    const payloadStart = at;
    at += this.payloadBytes;
    at = align(at, 8);
    const marksAt = at;
    at += marks * 8;
    const tsAt = at;
    at += n * 4;
    let sendAt = -1;
    let syncsAt = -1;
    let syncs = 0;
    if (!compact) {
      sendAt = at;
      at += n * 4;
      for (let i = 0; i < n; i++) if (this.flags[i]! & FLAG_SYNC) syncs++;
      syncsAt = at;
      at += syncs * 4;
    }
    const lenAt = at;
    at += n * 2;
    let flagsAt = -1;
    if (!compact) {
      flagsAt = at;
      at += n;
    }
    at = align(at, 8);
    return {
      layout: {
        count: n,
        clockRate: this.clockRate,
        endTs: this.endTs,
        payloadStart,
        payloadBytes: this.payloadBytes,
        lenAt,
        tsAt,
        sendAt,
        flagsAt,
        marksAt,
        marks,
        syncsAt,
        syncs,
        markerAll: compact && this.markerSeen,
      },
      end: at,
    };
  }

  /** Copies everything into the shared buffer at the planned places. */
  write(sab: SharedArrayBuffer, l: TrackLayout): void {
    const n = this.count;
    const out = new Uint8Array(sab, l.payloadStart, l.payloadBytes);
    let off = 0;
    for (const c of [...this.chunks, this.chunk.subarray(0, this.chunkUsed)]) {
      out.set(c, off);
      off += c.length;
    }
    new Uint16Array(sab, l.lenAt, n).set(this.len.subarray(0, n));
    new Uint32Array(sab, l.tsAt, n).set(this.ts.subarray(0, n));
    const marks = new Float64Array(sab, l.marksAt, l.marks);
    let byte = 0;
    for (let i = 0; i < n; i++) {
      if ((i & (MARK_EVERY - 1)) === 0) marks[i >>> MARK_SHIFT] = byte;
      byte += this.len[i]!;
    }
    if (l.sendAt >= 0) new Uint32Array(sab, l.sendAt, n).set(this.send.subarray(0, n));
    if (l.flagsAt >= 0) new Uint8Array(sab, l.flagsAt, n).set(this.flags.subarray(0, n));
    if (l.syncsAt >= 0) {
      const syncs = new Uint32Array(sab, l.syncsAt, l.syncs);
      let k = 0;
      for (let i = 0; i < n; i++) if (this.flags[i]! & FLAG_SYNC) syncs[k++] = i;
    }
    this.chunks = [];
  }
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Puts the builders' packets into one shared buffer. */
export function finishMedia(key: string, builders: PacketTrackBuilder[]): MediaPackets {
  const layouts: TrackLayout[] = [];
  let at = 0;
  for (const b of builders) {
    const { layout, end } = b.plan(at);
    layouts.push(layout);
    at = end;
  }
  const sab = new SharedArrayBuffer(Math.max(at, 8));
  builders.forEach((b, i) => b.write(sab, layouts[i]!));
  return new MediaPackets(sab, { key, bytes: sab.byteLength, tracks: layouts });
}

/** The entries this worker can read, by key. Eviction is decided by the control plane. */
export class PacketCache {
  private readonly entries = new Map<string, MediaPackets>();

  get(key: string): MediaPackets | undefined {
    return this.entries.get(key);
  }

  set(entry: MediaPackets): void {
    this.entries.set(entry.key, entry);
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    return total;
  }
}
