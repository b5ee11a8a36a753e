/**
 * The native pacer: a play track paced and sent by the worker's C pacing
 * thread (offload/native/engine.c) straight from the packet cache. JavaScript
 * hands over the track's position on start and takes it back on stop; while
 * it runs, the counters the thread writes are read into the track's stats.
 */
import { C, C_STRIDE, type NativeEngine, type EngineTrackOwner } from '../native/engine.js';
import type { PlayTrack } from './session.js';
import type { PacketSink } from './sink.js';
import type { TrackPacer } from './pacer.js';

export class NativePacer implements TrackPacer, EngineTrackOwner {
  readonly kind = 'native';
  private readonly track: PlayTrack;
  private readonly sink: PacketSink;
  private readonly engine: NativeEngine;
  private readonly slot: number;
  private running = false;
  private runId = 0;
  private closed = false;
  /** The close was acknowledged and the counters read for the last time (the slot may serve another track). */
  private final = false;
  /** Send errors the thread counted, already added to the track's stats (socket errors add there too). */
  private errorsSeen = 0;

  /** A native pacer for `track`, or null when the engine has no free slot. */
  static create(track: PlayTrack, sink: PacketSink, engine: NativeEngine): NativePacer | null {
    const p = new NativePacer(track, sink, engine);
    return p.slot < 0 ? null : p;
  }

  private constructor(track: PlayTrack, sink: PacketSink, engine: NativeEngine) {
    this.track = track;
    this.sink = sink;
    this.engine = engine;
    const s = track.session;
    this.slot = engine.create(this, {
      fd: sink.fd,
      packets: track.packets,
      payloadType: track.params.payloadType,
      ssrc: track.params.ssrc,
      clockRate: track.clockRate,
      loopMs: s.loopMs,
      speed: s.max ? 0 : s.speed,
      loop: s.loop,
      tsBase: track.params.tsBase,
      loopTicks: track.loopTicks,
    });
  }

  start(_now: number): void {
    const t = this.track;
    if (this.closed) return;
    this.runId = this.engine.run(this.slot, t.idx, t.byteOff, t.seq, t.loops, t.rtpEpoch, t.session.zeroWall, t.midFrame);
    this.running = true;
  }

  stop(finishFrame: boolean): void {
    if (!this.running || this.closed) return;
    this.running = false;
    this.engine.stop(this.slot, finishFrame);
    this.takePosition();
    // The thread finished the track just before the stop: as the JavaScript pacer would have, end it.
    if (this.engine.at(this.slot, C.done) === 1) {
      this.track.done = true;
      setImmediate(() => this.track.session.trackDone());
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.running = false;
    this.engine.close(this.slot, () => {
      this.takePosition();
      this.final = true;
      this.sink.close();
    });
  }

  refresh(): void {
    if (this.final) return;
    const e = this.engine;
    const t = this.track;
    const s = t.stats;
    s.packets = e.at(this.slot, C.packets);
    s.octets = e.at(this.slot, C.octets);
    const errors = e.at(this.slot, C.errors);
    s.sendErrors += errors - this.errorsSeen;
    this.errorsSeen = errors;
    t.lateness.load(e.counters, this.slot * C_STRIDE + C.lateSum);
    t.session.noteLoop(e.at(this.slot, C.loops));
  }

  /** The thread sent the last packet of a run (EngineTrackOwner). */
  engineDone(runId: number): void {
    if (!this.running || runId !== this.runId || this.closed) return;
    this.running = false;
    this.takePosition();
    this.markDone();
  }

  private markDone(): void {
    const t = this.track;
    t.done = true;
    t.session.trackDone();
  }

  /** The thread's position of the track, after it acknowledged a stop or close. */
  private takePosition(): void {
    const e = this.engine;
    const t = this.track;
    t.idx = e.at(this.slot, C.idx);
    t.byteOff = e.at(this.slot, C.byteOff);
    t.seq = e.at(this.slot, C.seq);
    t.loops = e.at(this.slot, C.loops);
    t.midFrame = e.at(this.slot, C.midFrame) === 1;
    t.lastTs = e.at(this.slot, C.lastTs);
    this.refresh();
  }
}
