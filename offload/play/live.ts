/**
 * Live fan-out: a play session that takes its packets from a record session
 * in the same worker instead of the cache. Each subscriber track rewrites the
 * header (its own SSRC, sequence numbers and timestamp base) and sends the
 * payload as received, in order, as soon as the record track releases it.
 * A video subscriber starts at the next keyframe, with the SPS/PPS first.
 */
import type dgram from 'node:dgram';
import type { LiveCreateParams, PlayTrackParams, SessionStats, TrackStats } from '../channel.js';
import { OffloadError } from '../channel.js';
import { closePortPair } from '../sockets.js';
import { RTP_HEADER_BYTES, patchRtpHeader, patchRtpHeaderAt, writeRtpHeaderTemplate } from '../rtp.js';
import type { PacketSubscriber, RecordSession, RecordTrack } from '../record/session.js';
import { spropParameterSets } from '../../storage/recording/probe.js';
import { buildStapA, startsKeyframe } from '../codecs/h264/keyframe.js';
import { buildBye, buildSenderReport, senderInfoAt } from '../rtcp.js';
import { openInterleaved, openSendSockets, readInterleavedReport, sendRtcp } from './track.js';
import type { InterleavedReceiver, RtspConnection, RtspListener } from '../rtsp/listener.js';
import type { InterleavedWriter } from '../rtsp/interleaved.js';

/** A STAP-A carrying the parameter sets of the SDP, sent ahead of the first keyframe. */
function parameterSetsPacket(fmtp: Record<string, string>): Buffer | null {
  const { sps, pps } = spropParameterSets(fmtp);
  return buildStapA([...sps, ...pps]);
}

export class LiveTrack implements PacketSubscriber, InterleavedReceiver {
  readonly session: LiveSession;
  readonly params: PlayTrackParams;
  readonly source: RecordTrack;
  private pkt: Buffer = Buffer.alloc(RTP_HEADER_BYTES + 1500);
  rtp!: dgram.Socket;
  rtcp!: dgram.Socket;
  /** RTP/AVP/TCP: the RTSP connection and its writer (no sockets of our own then). */
  private conn: RtspConnection | null = null;
  private sink: InterleavedWriter | null = null;
  private readonly video: boolean;
  private readonly paramSets: Buffer | null;
  private started = false;
  private tsOffset = 0;
  private seq: number;
  private lastTs = 0;
  private lastAt = 0;
  skipped = 0;
  nextSrAt = 0;
  readonly stats: TrackStats = { packets: 0, octets: 0, sendErrors: 0, dropped: 0, srSent: 0, rr: null, rrCount: 0, rtcpRejected: 0 };

  constructor(session: LiveSession, params: PlayTrackParams, source: RecordTrack) {
    this.session = session;
    this.params = params;
    this.source = source;
    this.seq = params.seq & 0xffff;
    this.video = source.params.encoding === 'H264';
    this.paramSets = this.video ? parameterSetsPacket(source.params.fmtp) : null;
    writeRtpHeaderTemplate(this.pkt, params.payloadType, params.ssrc);
  }

  async open(bindHost: string, rtsp: RtspListener | null): Promise<void> {
    if (this.params.interleaved !== undefined) {
      this.conn = openInterleaved(this.params, rtsp, this);
      this.sink = this.conn.writer;
      return;
    }
    const sockets = await openSendSockets(this.params, bindHost, this.stats);
    this.rtp = sockets.rtp;
    this.rtcp = sockets.rtcp;
  }

  forward(msg: Buffer, off: number, len: number, ts: number, marker: boolean, now: number): void {
    if (!this.started) {
      if (this.video && !startsKeyframe(msg, off, len)) {
        this.skipped++;
        return;
      }
      this.started = true;
      this.tsOffset = (this.params.tsBase - ts) >>> 0;
      // The first SR maps this packet's time to now: without it, it would announce RTP time 0.
      this.lastTs = this.params.tsBase >>> 0;
      this.lastAt = now;
      this.sendReport(now, false);
      if (this.paramSets !== null) this.send(this.paramSets, 0, this.paramSets.length, ts, false);
    }
    this.send(msg, off, len, ts, marker);
    this.lastAt = now;
  }

  /** RTCP from the client on our interleaved RTCP channel (InterleavedReceiver). */
  receive(buf: Buffer, off: number, len: number): void {
    readInterleavedReport(buf, off, len, this.params, this.stats);
  }

  private send(src: Buffer, off: number, len: number, ts: number, marker: boolean): void {
    const sink = this.sink;
    if (sink !== null) {
      const outTs = (ts + this.tsOffset) >>> 0;
      const at = sink.reserve(this.params.interleaved!.channel, RTP_HEADER_BYTES + len);
      this.seq = (this.seq + 1) & 0xffff;
      this.lastTs = outTs;
      if (at < 0) {
        this.stats.dropped++;
        return;
      }
      const stage = sink.stage;
      this.pkt.copy(stage, at, 0, RTP_HEADER_BYTES);
      src.copy(stage, at + RTP_HEADER_BYTES, off, off + len);
      patchRtpHeaderAt(stage, at, this.params.payloadType, marker, (this.seq - 1) & 0xffff, outTs);
      this.stats.packets++;
      this.stats.octets += len;
      return;
    }
    if (this.rtp.getSendQueueCount() > 0) {
      // The socket still holds our buffer: dropping beats corrupting it.
      this.stats.dropped++;
      return;
    }
    if (RTP_HEADER_BYTES + len > this.pkt.length) {
      const bigger = Buffer.alloc(RTP_HEADER_BYTES + len);
      this.pkt.copy(bigger, 0, 0, RTP_HEADER_BYTES);
      this.pkt = bigger;
    }
    const outTs = (ts + this.tsOffset) >>> 0;
    patchRtpHeader(this.pkt, this.params.payloadType, marker, this.seq, outTs);
    src.copy(this.pkt, RTP_HEADER_BYTES, off, off + len);
    this.rtp.send(this.pkt, 0, RTP_HEADER_BYTES + len);
    this.seq = (this.seq + 1) & 0xffff;
    this.lastTs = outTs;
    this.stats.packets++;
    this.stats.octets += len;
  }

  /** Sender report: RTP time extrapolated from the last packet forwarded, on our wall clock. */
  sendReport(now: number, bye: boolean): void {
    const rtpTs = (this.lastTs + Math.round(((now - this.lastAt) * this.params.clockRate) / 1000)) >>> 0;
    const info = senderInfoAt(now, this.params.ssrc, rtpTs, this.stats.packets, this.stats.octets);
    const msg = bye ? buildBye(info, this.session.cname, 'end of live feed') : buildSenderReport(info, this.session.cname);
    if (this.sink !== null) {
      if (this.sink.writePacket(this.params.interleaved!.channel + 1, msg)) this.stats.srSent++;
    } else if (sendRtcp(this.rtcp, msg, this.params, this.stats)) this.stats.srSent++;
  }

  close(): void {
    if (this.conn !== null) {
      this.conn.unbind(this.params.interleaved!.channel + 1, this);
      this.conn = null;
      this.sink = null;
      return;
    }
    closePortPair(this);
  }
}

export class LiveSession {
  readonly id: string;
  readonly cname: string;
  readonly record: RecordSession;
  readonly tracks: LiveTrack[];
  state: 'playing' | 'ended' | 'failed' = 'playing';
  private readonly startedAt = performance.now();

  constructor(params: LiveCreateParams, record: RecordSession) {
    this.id = params.sessionId;
    this.cname = params.cname;
    this.record = record;
    this.tracks = params.tracks.map((t) => {
      const src = record.tracks[t.recordTrack];
      if (src === undefined) throw new OffloadError('OFFCAST_BAD_TRACK', `record session has no track ${t.recordTrack}`, 400);
      return new LiveTrack(this, t, src);
    });
  }

  async open(bindHost: string, rtsp: RtspListener | null): Promise<void> {
    const opened: LiveTrack[] = [];
    try {
      for (const t of this.tracks) {
        await t.open(bindHost, rtsp);
        opened.push(t);
      }
    } catch (err) {
      for (const t of opened) t.close();
      throw err;
    }
    for (const t of this.tracks) t.source.subscribers.push(t);
    const now = performance.now();
    for (const t of this.tracks) t.nextSrAt = now + 1000;
  }

  rtcpTick(now: number, intervalMs: number): void {
    if (this.state !== 'playing') return;
    for (const t of this.tracks) {
      if (now < t.nextSrAt || t.stats.packets === 0) continue;
      t.nextSrAt = now + intervalMs * (0.5 + Math.random());
      t.sendReport(now, false);
    }
  }

  /** Unsubscribe, BYE, close. */
  close(): void {
    if (this.state === 'playing') {
      const now = performance.now();
      for (const t of this.tracks) {
        const subs = t.source.subscribers;
        const i = subs.indexOf(t);
        if (i >= 0) subs.splice(i, 1);
        if (t.stats.packets > 0) t.sendReport(now, true);
      }
      this.state = 'ended';
    }
    setTimeout(() => {
      for (const t of this.tracks) t.close();
    }, 50).unref();
  }

  stats(): SessionStats {
    return {
      sessionId: this.id,
      state: this.state,
      positionMs: Math.round(performance.now() - this.startedAt),
      loops: 0,
      tracks: this.tracks.map((t) => ({ ...t.stats, rr: t.stats.rr === null ? null : { ...t.stats.rr } })),
    };
  }
}
