/**
 * A play session in the offload: one PlayTrack per media track, each with a
 * sink (offload/play/sink.ts: its own RTP socket, connected to the
 * destination, and RTCP socket on port+1) and a pacer (offload/play/pacer.ts)
 * that sends the cached packets at their send times. This file is the session
 * logic both pacers share: the timeline, seek snapping, loops, pause, RTCP.
 *
 * Timeline: `zeroWall` is the wall time (performance.now ms) at which media time
 * 0 plays; a loop adds the media's length to each track's offsets, a seek or a
 * pause moves `zeroWall`. RTP timestamps follow the wall clock (tsBase +
 * elapsed × clock), so sender reports of all tracks share one NTP clock and a
 * seek or pause makes timestamps jump forward consistently, while sequence
 * numbers simply continue.
 */
import type { PlayCreateParams, PlayTrackParams, RtpInfo, SessionStats, TrackStats } from '../channel.js';
import { OffloadError } from '../channel.js';
import type { MediaPackets, PacketTrack } from '../cache.js';
import { buildBye, buildSenderReport, senderInfoAt } from '../rtcp.js';
import { Histogram } from '../histogram.js';
import { JsPacer, type JsPacerHooks, type TrackPacer } from './pacer.js';
import { NativePacer } from './nativePacer.js';
import type { NativeEngine } from '../native/engine.js';
import { openUdpSink, type PacketSink } from './sink.js';
import type { RtspListener } from '../rtsp/listener.js';
import { InterleavedSink } from '../rtsp/sink.js';

/** How long after the last packet of a finished session its BYE goes (see finish()). */
const BYE_AFTER_MS = 200;

export interface PlayHooks extends JsPacerHooks {
  onEnded(session: PlaySession, reason: 'completed' | 'failed', error?: string): void;
  bindHost: string;
  rtcpIntervalMs: number;
  /** The RTSP listener of this worker, for tracks that send interleaved on its connections. */
  rtsp: RtspListener | null;
  /** The worker's native pacing engine (opened at its first use), or null: JavaScript paces. */
  engine(): NativeEngine | null;
}

/**
 * One track of a play session: its place in the cached packets, its RTP
 * numbering and its counters. How its packets are paced and sent is its
 * pacer's (offload/play/pacer.ts); where they go is its sink's.
 */
export class PlayTrack {
  readonly session: PlaySession;
  readonly packets: PacketTrack;
  readonly params: PlayTrackParams;
  sink!: PacketSink;
  pacer!: TrackPacer;
  readonly clockRate: number;
  /** Loop length in this track's clock. */
  readonly loopTicks: number;

  idx = 0;
  byteOff = 0;
  seq: number;
  /** RTP offset (ticks) at the current epoch; packet ts = tsBase + rtpEpoch + loops*loopTicks + ts[idx]. */
  rtpEpoch = 0;
  loops = 0;
  done = false;
  lastTs = 0;
  /** The last packet sent did not end its frame (marker unset). */
  midFrame = false;

  readonly stats: TrackStats = { packets: 0, octets: 0, sendErrors: 0, dropped: 0, srSent: 0, rr: null, rrCount: 0, rtcpRejected: 0 };
  nextSrAt = 0;
  /** This track's send lateness (the worker keeps its own over all sessions): 13 counts, filled without allocation. */
  readonly lateness = new Histogram();

  constructor(session: PlaySession, packets: PacketTrack, params: PlayTrackParams, loopMs: number) {
    this.session = session;
    this.packets = packets;
    this.params = params;
    this.clockRate = params.clockRate;
    this.loopTicks = Math.round((loopMs * this.clockRate) / 1000);
    this.seq = params.seq & 0xffff;
  }

  async open(bindHost: string): Promise<void> {
    const sink =
      this.params.interleaved === undefined
        ? await openUdpSink(this.params, bindHost, this.stats)
        : new InterleavedSink(this.params, this.session.hooks.rtsp, this.stats);
    try {
      this.pacer = this.pacerFor(sink);
    } catch (err) {
      sink.close();
      throw err;
    }
    this.sink = sink;
  }

  /** The native engine for a UDP sink when the worker has it (and a free slot), else the JavaScript pacer. */
  private pacerFor(sink: PacketSink): TrackPacer {
    const engine = sink.fd >= 0 ? this.session.hooks.engine() : null;
    return (engine !== null ? NativePacer.create(this, sink, engine) : null) ?? new JsPacer(this, sink, this.session.hooks);
  }

  /** Wall time at which packet `i` of the current loop is due. */
  dueOf(i: number): number {
    const s = this.session;
    return s.zeroWall + (this.loops * s.loopMs + (this.packets.send[i]! * 1000) / this.clockRate) / s.speed;
  }

  /** RTP timestamp that corresponds to wall time `now` on this track's clock. */
  rtpNow(now: number): number {
    const s = this.session;
    const mediaMs = s.positionUnboundedAt(now);
    return (this.params.tsBase + this.rtpEpoch + Math.round((mediaMs * this.clockRate) / 1000)) >>> 0;
  }

  sendReport(now: number, bye: boolean): void {
    this.pacer.refresh();
    const info = senderInfoAt(now, this.params.ssrc, this.rtpNow(now), this.stats.packets, this.stats.octets);
    const msg = bye ? buildBye(info, this.session.cname, 'end of media') : buildSenderReport(info, this.session.cname);
    if (this.sink.sendRtcp(msg)) this.stats.srSent++;
  }

  /** Stops the pacer and closes the sink (see TrackPacer.close). */
  close(): void {
    this.pacer.close();
  }
}

export class PlaySession {
  readonly id: string;
  readonly hooks: PlayHooks;
  readonly entry: MediaPackets;
  readonly tracks: PlayTrack[];
  readonly loop: boolean;
  readonly speed: number;
  readonly max: boolean;
  readonly loopMs: number;
  /**
   * Media time (ms) of the first presented frame: positionMs 0. Readers put
   * media time 0 at the earliest decode time, which B-frames put before it.
   */
  readonly originMs: number;
  /** How long before its presentation the lead track sends a packet at most (B-frame reorder), ms. */
  readonly leadMs: number;
  readonly cname: string;
  state: 'playing' | 'paused' | 'ended' | 'failed' = 'paused';
  /** Wall time at which media time 0 of loop 0 plays. */
  zeroWall = 0;
  /** Media position (ms, unbounded across loops) held while paused. */
  private pausedPos = 0;
  private pausedAt = 0;
  /** Position reported while the landing keyframe waits for its presentation time. */
  private floorPos = 0;
  /** Media position (ms, unbounded) at the last start or resume: RTSP's Range and RTP-Info. */
  private resumedPos = 0;
  loopsDone = 0;

  constructor(params: PlayCreateParams, entry: MediaPackets, hooks: PlayHooks) {
    this.id = params.sessionId;
    this.hooks = hooks;
    this.entry = entry;
    this.loop = params.loop;
    this.max = params.speed === 0;
    this.speed = this.max ? 1 : params.speed;
    this.cname = params.cname;
    const packets = params.tracks.map((t) => {
      const p = entry.tracks[t.cacheTrack];
      if (p === undefined) throw new OffloadError('OFFCAST_BAD_TRACK', `cache entry has no track ${t.cacheTrack}`, 500);
      return p;
    });
    // A loop spans from the earliest presented sample of any track to the latest end,
    // so the next loop follows the last frame without a hole.
    const starts = packets.map(firstPresentationMs);
    const spanStart = Math.min(...starts);
    this.loopMs = Number.isFinite(spanStart) ? Math.max(1, params.durationMs - spanStart) : params.durationMs;
    const lead = packets.find((p) => p.syncs !== null);
    this.originMs = lead !== undefined && lead.count > 0 ? firstPresentationMs(lead) : Number.isFinite(spanStart) ? spanStart : 0;
    this.leadMs = lead === undefined ? 0 : maxLeadMs(lead);
    this.tracks = params.tracks.map((t, i) => new PlayTrack(this, packets[i]!, t, this.loopMs));
  }

  async open(startMs: number, paused: boolean): Promise<void> {
    const opened: PlayTrack[] = [];
    try {
      for (const t of this.tracks) {
        await t.open(this.hooks.bindHost);
        opened.push(t);
      }
    } catch (err) {
      for (const t of opened) t.close();
      throw err;
    }
    const now = performance.now();
    this.pausedAt = now;
    this.pausedPos = 0;
    this.seekTracks(startMs, now, false);
    if (!paused) this.resume(now);
  }

  /** Media position in ms (unbounded: grows across loops). */
  positionUnboundedAt(now: number): number {
    if (this.state === 'paused') return this.pausedPos;
    if (this.state !== 'playing') return this.pausedPos;
    return (now - this.zeroWall) * this.speed;
  }

  /** Position as the API reports it: ms since the first presented frame, within one loop. */
  positionAt(now: number): number {
    const pos = Math.max(this.positionUnboundedAt(now), this.floorPos) - this.originMs;
    if (this.loopMs <= 0) return 0;
    if (this.loop) return pos - Math.floor(pos / this.loopMs) * this.loopMs;
    return Math.max(0, Math.min(pos, this.loopMs));
  }

  resume(now = performance.now()): void {
    if (this.state === 'playing' || this.state === 'ended' || this.state === 'failed') return;
    // The RTP clock kept running while paused: timestamps jump forward by the pause.
    const pausedFor = now - this.pausedAt;
    for (const t of this.tracks) t.rtpEpoch += Math.round((pausedFor * t.clockRate) / 1000);
    this.zeroWall = now - this.pausedPos / this.speed;
    this.resumedPos = Math.max(this.pausedPos, this.floorPos);
    this.state = 'playing';
    for (const t of this.tracks) {
      t.nextSrAt = now + this.hooks.rtcpIntervalMs * (0.5 + Math.random());
      // Every track announces its NTP/RTP mapping before its first packet.
      if (t.stats.srSent === 0) t.sendReport(now, false);
    }
    this.startTracks(now);
  }

  pause(now = performance.now(), finishFrame = false): void {
    if (this.state !== 'playing') return;
    for (const t of this.tracks) t.pacer.stop(finishFrame);
    this.pausedPos = this.positionUnboundedAt(now);
    this.pausedAt = now;
    this.state = 'paused';
  }

  /**
   * Moves to `positionMs`: video snaps back to the keyframe at or before it, the
   * other tracks align to that keyframe's time. Sequence numbers continue;
   * timestamps continue from the current RTP time.
   */
  seek(positionMs: number, now = performance.now()): void {
    const wasPlaying = this.state === 'playing';
    if (wasPlaying) this.pause(now, true);
    this.seekTracks(positionMs, now, true);
    if (wasPlaying) this.resume(now);
  }

  private seekTracks(positionMs: number, now: number, keepRtp: boolean): void {
    const target = this.originMs + Math.max(0, Math.min(positionMs, Math.max(0, this.loopMs - 1)));
    // The first track with sync points (video) decides the landing time.
    let landMs = target;
    // The landing keyframe is presented this long from now: late enough that its packets
    // go out paced (not all at once), and after every frame already sent, whose
    // presentation B-frame reordering put up to leadMs after its sending.
    let delayMs = 0;
    const lead = this.tracks.find((t) => t.packets.syncs !== null);
    if (lead !== undefined) {
      const p = lead.packets;
      const idx = p.seekIndex(Math.round((target * lead.clockRate) / 1000));
      if (idx < p.count) {
        landMs = (p.ts[idx]! * 1000) / lead.clockRate;
        delayMs = keepRtp ? this.leadMs : ((p.ts[idx]! - p.send[idx]!) * 1000) / lead.clockRate;
      }
    }
    const landPos = landMs - delayMs * this.speed;
    const oldPos = this.pausedPos;
    for (const t of this.tracks) {
      const p = t.packets;
      let idx = t === lead ? p.seekIndex(Math.round((target * t.clockRate) / 1000)) : p.seekIndex(Math.round((landMs * t.clockRate) / 1000));
      // Other tracks start with the packet that holds the landing time (none of it is lost).
      if (t !== lead && idx > 0 && (idx >= p.count || p.ts[idx]! > Math.round((landMs * t.clockRate) / 1000))) idx--;
      // From the very start, the others start with their first packet: audio that begins before the
      // first video frame (a recording whose sender's audio came first) is played, not cut.
      if (t !== lead && lead !== undefined && target <= this.originMs) idx = 0;
      // Keep RTP time continuous: the new packets' timestamps continue from "now".
      if (keepRtp) t.rtpEpoch += t.loops * t.loopTicks + Math.round(((oldPos - t.loops * this.loopMs - landPos) * t.clockRate) / 1000);
      t.loops = 0;
      t.idx = idx;
      t.byteOff = idx < p.count ? p.offsetOf(idx) : p.payloadBytes;
      // A track without packets is over before it starts, loop or not: never spin on it.
      t.done = p.count === 0;
    }
    this.loopsDone = 0;
    this.pausedPos = landPos;
    this.floorPos = landMs;
    this.pausedAt = now;
  }

  private startTracks(now: number): void {
    for (const t of this.tracks) {
      if (t.done) continue;
      if (t.idx >= t.packets.count && !this.loop) {
        t.done = true;
        continue;
      }
      t.pacer.start(now);
    }
    // Nothing left to send: end after the create (or resume) has been answered.
    if (this.tracks.every((t) => t.done)) setImmediate(() => this.trackDone());
  }

  noteLoop(loops: number): void {
    if (loops > this.loopsDone) this.loopsDone = loops;
  }

  trackDone(): void {
    if (this.state === 'ended' || this.state === 'failed') return;
    if (!this.tracks.every((t) => t.done)) return;
    this.finish('completed');
  }

  /** Periodic RTCP: called by the worker about every 250 ms. */
  rtcpTick(now: number, intervalMs: number): void {
    if (this.state !== 'playing' && this.state !== 'paused') return;
    for (const t of this.tracks) {
      if (t.done || now < t.nextSrAt) continue;
      t.nextSrAt = now + intervalMs * (0.5 + Math.random()); // RFC 3550 6.3.1 randomization
      if (t.stats.packets > 0) t.sendReport(now, false);
    }
  }

  finish(reason: 'completed' | 'failed', error?: string): void {
    if (this.state === 'ended' || this.state === 'failed') return;
    this.stopSending(false);
    this.state = reason === 'completed' ? 'ended' : 'failed';
    // The BYE follows the last packets by a moment: a receiver that ends the stream on
    // BYE (ffmpeg) would drop packets it has not read yet. Then the sockets close.
    setTimeout(() => {
      this.sendByes();
      setTimeout(() => this.closeSockets(), 50).unref();
    }, BYE_AFTER_MS).unref();
    this.hooks.onEnded(this, reason, error);
  }

  /** DELETE: stop now (BYE), close sockets. */
  close(): void {
    if (this.state === 'playing' || this.state === 'paused') {
      this.stopSending();
      this.state = 'ended';
    }
    this.closeSockets();
  }

  /** Stops every track's pacer (what is staged goes out), keeps the position and (unless told not to) sends SR + BYE. */
  private stopSending(bye = true): void {
    for (const t of this.tracks) t.pacer.stop(false);
    const now = performance.now();
    this.pausedPos = this.positionUnboundedAt(now);
    if (bye) this.sendByes();
  }

  private sendByes(): void {
    const now = performance.now();
    for (const t of this.tracks) if (t.stats.packets > 0) t.sendReport(now, true);
  }

  private closeSockets(): void {
    for (const t of this.tracks) t.close();
  }

  /**
   * RTSP's RTP-Info: each track's next sequence number and the RTP time of the
   * current position (the landing keyframe's after a seek), on one timeline
   * for all tracks, so a client lines them up from the first packet.
   */
  rtpInfo(now = performance.now()): RtpInfo {
    // Playing: where the last start or resume began (its first packets carry these numbers); else where it stands.
    const mediaMs = this.state === 'playing' ? this.resumedPos : Math.max(this.positionUnboundedAt(now), this.floorPos);
    return {
      positionMs: Math.round(Math.max(0, mediaMs - this.originMs)),
      tracks: this.tracks.map((t) => ({ seq: t.seq, rtptime: (t.params.tsBase + t.rtpEpoch + Math.round((mediaMs * t.clockRate) / 1000)) >>> 0 })),
    };
  }

  stats(now = performance.now()): SessionStats {
    for (const t of this.tracks) t.pacer.refresh();
    return {
      sessionId: this.id,
      state: this.state,
      positionMs: Math.round(this.positionAt(now)),
      loops: !this.loop || this.loopMs <= 0 ? 0 : this.max ? this.loopsDone : Math.floor(this.positionUnboundedAt(now) / this.loopMs),
      tracks: this.tracks.map((t) => ({ ...t.stats, rr: t.stats.rr === null ? null : { ...t.stats.rr }, lateness: t.lateness.snapshot() })),
    };
  }
}

const firstPresentation = new WeakMap<PacketTrack, number>();
const maxLead = new WeakMap<PacketTrack, number>();

/** Media time (ms) of a track's first presented packet (B-frames of the first GOP may precede the keyframe's). */
function firstPresentationMs(p: PacketTrack): number {
  let v = firstPresentation.get(p);
  if (v === undefined) firstPresentation.set(p, (v = computeFirstPresentationMs(p)));
  return v;
}

function computeFirstPresentationMs(p: PacketTrack): number {
  if (p.count === 0) return Infinity;
  const end = p.syncs === null ? 1 : p.syncs.length > 1 ? p.syncs[1]! : p.count;
  let min = p.ts[0]!;
  for (let i = 1; i < end; i++) if (p.ts[i]! < min) min = p.ts[i]!;
  return (min * 1000) / p.clockRate;
}

/** Longest time (ms) a packet is sent before it is presented (computed once per cached track). */
function maxLeadMs(p: PacketTrack): number {
  let v = maxLead.get(p);
  if (v === undefined) maxLead.set(p, (v = computeMaxLeadMs(p)));
  return v;
}

function computeMaxLeadMs(p: PacketTrack): number {
  let max = 0;
  for (let i = 0; i < p.count; i++) {
    const lead = p.ts[i]! - p.send[i]!;
    if (lead > max) max = lead;
  }
  return (max * 1000) / p.clockRate;
}
