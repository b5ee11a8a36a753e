/**
 * How a play track's packets are paced and sent: the JavaScript pacer (the
 * worker's timing wheel, any PacketSink) or the native pacing engine
 * (offload/play/nativePacer.ts, UDP sinks only). The session logic — seek
 * snapping, loops, the timeline (`zeroWall`), RTCP timing — stays in
 * PlaySession/PlayTrack and drives a pacer through this interface.
 *
 * Between `start` and `stop` the pacer owns the track's send position (idx,
 * byteOff, seq, loops, lastTs, midFrame); once `stop` returns they are
 * current on the track again.
 */
import type { BatchOwner, BatchSender } from '../batch.js';
import type { TimingWheel, WheelItem } from '../scheduler.js';
import { RTP_HEADER_BYTES, patchRtpHeader, patchRtpHeaderAt, writeRtpHeaderTemplate } from '../rtp.js';
import type { PlayTrack } from './session.js';
import type { PacketSink } from './sink.js';

export interface TrackPacer {
  /** Starts sending from the track's position (the session is playing; `zeroWall` and the RTP epoch are set). */
  start(now: number): void;
  /**
   * Stops sending; with `finishFrame`, first sends the rest of the frame in
   * flight (a receiver cannot use part of a frame). The track's position is
   * current when this returns.
   */
  stop(finishFrame: boolean): void;
  /**
   * Stops for good and closes the sink (the native pacer only once its thread
   * acknowledged: it never sends on a closed descriptor); idempotent.
   */
  close(): void;
  /** Brings the track's counters (stats, lateness, loops) up to date before they are read. */
  refresh(): void;
  /** Which engine sends: for the worker's stats. */
  readonly kind: 'js' | 'native';
}

/** Most packets one track sends per wheel visit (after a stall, catch up gradually). */
const BURST = 64;
/** Packets per turn of the event loop for "speed": "max". */
const MAX_BURST = 256;

export interface JsPacerHooks {
  wheel: TimingWheel;
  /** The native batched sender, when built (else packets go through the sink one by one). */
  batch: BatchSender | null;
  /** A packet went out `lateMs` after its ideal send time. */
  onSent(lateMs: number, bytes: number): void;
}

/**
 * The JavaScript pacer: the worker's timing wheel calls `run` when the next
 * packet is due; each packet is a 12-byte header patched in place with the
 * payload copied behind it, staged for the tick's sendmmsg (batch sender, UDP
 * sinks) or handed to the sink. "speed": "max" sends bursts between turns of
 * the event loop.
 */
export class JsPacer implements TrackPacer, WheelItem, BatchOwner {
  readonly kind = 'js';
  due = 0;
  wheelNext: WheelItem | null = null;
  wheelPrev: WheelItem | null = null;
  wheelSlot = -1;

  private readonly track: PlayTrack;
  private readonly sink: PacketSink;
  private readonly hooks: JsPacerHooks;
  /** Header template at [0, 12), payload copied behind it (sink path). */
  private readonly pkt: Buffer;
  /** The socket for the batch sender (-1: the sink sends). */
  private readonly fd: number;
  private maxTimer: NodeJS.Immediate | null = null;
  private readonly pump = (): void => this.pumpMax();

  constructor(track: PlayTrack, sink: PacketSink, hooks: JsPacerHooks) {
    this.track = track;
    this.sink = sink;
    this.hooks = hooks;
    this.fd = hooks.batch !== null ? sink.fd : -1;
    this.pkt = Buffer.alloc(RTP_HEADER_BYTES + track.packets.maxLen);
    writeRtpHeaderTemplate(this.pkt, track.params.payloadType, track.params.ssrc);
  }

  start(now: number): void {
    const t = this.track;
    if (t.session.max) {
      this.stopMax();
      this.maxTimer = setImmediate(this.pump);
      return;
    }
    this.hooks.wheel.schedule(this, t.idx < t.packets.count ? t.dueOf(t.idx) : now);
  }

  stop(finishFrame: boolean): void {
    if (finishFrame) this.finishFrame();
    this.hooks.batch?.flush();
    this.hooks.wheel.cancel(this);
    this.stopMax();
  }

  close(): void {
    this.stop(false);
    this.sink.close();
  }

  refresh(): void {}

  /** Timing-wheel callback: send everything due by `now`; returns the next due time or -1. */
  run(now: number): number {
    const t = this.track;
    const s = t.session;
    const p = t.packets;
    let burst = 0;
    for (;;) {
      if (t.idx >= p.count) {
        // The end, unless looping over something (an empty track has nothing to loop).
        if (!s.loop || p.count === 0) {
          t.done = true;
          s.trackDone();
          return -1;
        }
        t.idx = 0;
        t.byteOff = 0;
        t.loops++;
        s.noteLoop(t.loops);
      }
      const due = t.dueOf(t.idx);
      if (due > now) return due;
      if (burst === BURST) return now;
      if (!this.sendOne(now - due)) return now + 1;
      burst++;
    }
  }

  /** Sends packet idx; false when the sink still holds the previous one (retry later). */
  private sendOne(lateMs: number): boolean {
    const t = this.track;
    const p = t.packets;
    const i = t.idx;
    const batch = this.hooks.batch;
    const native = batch !== null && this.fd >= 0;
    // Sink path: the kernel took the previous packet synchronously unless the socket
    // queued it; only then may our buffer be rewritten.
    if (!native && !this.sink.ready()) return false;
    // A sender report ahead of the first packet lets receivers line tracks up from the start
    // (ffmpeg times packets that arrive before any SR differently from those after).
    if (t.stats.srSent === 0) t.sendReport(performance.now(), false);
    const len = p.len[i]!;
    const ts = (t.params.tsBase + t.rtpEpoch + t.loops * t.loopTicks + p.ts[i]!) >>> 0;
    if (native) {
      // Staged with every other packet due this tick; sent by sendmmsg when the tick ends.
      const off = batch.reserve(this.fd, RTP_HEADER_BYTES + len, this);
      batch.write(off, this.pkt, p.payload, t.byteOff, len);
      patchRtpHeaderAt(batch.stage, off, t.params.payloadType, p.marker(i), t.seq, ts);
    } else {
      patchRtpHeader(this.pkt, t.params.payloadType, p.marker(i), t.seq, ts);
      p.payload.copy(this.pkt, RTP_HEADER_BYTES, t.byteOff, t.byteOff + len);
      this.sink.send(this.pkt, RTP_HEADER_BYTES + len);
    }
    t.midFrame = !p.marker(i);
    t.seq = (t.seq + 1) & 0xffff;
    t.lastTs = ts;
    t.byteOff += len;
    t.idx = i + 1;
    t.stats.packets++;
    t.stats.octets += len;
    t.lateness.observe(lateMs < 0 ? 0 : lateMs);
    this.hooks.onSent(lateMs, len);
    return true;
  }

  /** Sends the rest of the frame in flight now. */
  private finishFrame(): void {
    const t = this.track;
    while (t.midFrame && t.idx < t.packets.count) {
      if (!this.sendOne(0)) break;
    }
  }

  /** The native sender could not send one of ours (BatchOwner). */
  sendFailed(_errno: number): void {
    this.track.stats.sendErrors++;
  }

  /** "speed": "max": as fast as the sink takes packets, yielding to the event loop between bursts. */
  private pumpMax(): void {
    this.maxTimer = null;
    const t = this.track;
    const s = t.session;
    if (s.state !== 'playing') return;
    for (let n = 0; n < MAX_BURST; n++) {
      if (t.idx >= t.packets.count) {
        if (!s.loop || t.packets.count === 0) {
          t.done = true;
          break;
        }
        t.idx = 0;
        t.byteOff = 0;
        t.loops++;
        s.noteLoop(t.loops);
      }
      if (!this.sendOne(0)) break;
    }
    this.hooks.batch?.flush();
    if (t.done) {
      s.trackDone();
      return;
    }
    this.maxTimer = setImmediate(this.pump);
  }

  private stopMax(): void {
    if (this.maxTimer !== null) clearImmediate(this.maxTimer);
    this.maxTimer = null;
  }
}
