/**
 * RTP/AVP/TCP as a play track's sink (offload/play/sink.ts): packets go into
 * the RTSP connection's interleaved writer on the track's RTP channel, sender
 * reports on the next channel, and the client's receiver reports that come
 * back on that channel are read into the track's stats. The JavaScript pacer
 * drives it (no descriptor: never the native paths).
 */
import type { PlayTrackParams, TrackStats } from '../channel.js';
import type { PacketSink } from '../play/sink.js';
import { openInterleaved, readInterleavedReport } from '../play/track.js';
import type { InterleavedReceiver, RtspConnection, RtspListener } from './listener.js';

export class InterleavedSink implements PacketSink, InterleavedReceiver {
  readonly fd = -1;
  private conn: RtspConnection | null;
  private readonly channel: number;
  private readonly params: PlayTrackParams;
  private readonly stats: TrackStats;

  constructor(params: PlayTrackParams, rtsp: RtspListener | null, stats: TrackStats) {
    this.params = params;
    this.stats = stats;
    this.channel = params.interleaved!.channel;
    this.conn = openInterleaved(params, rtsp, this);
  }

  /** The writer copies the packet at once: our buffer is always free again. */
  ready(): boolean {
    return true;
  }

  send(pkt: Buffer, len: number): void {
    const w = this.conn?.writer;
    if (w === undefined) return;
    const off = w.reserve(this.channel, len);
    // A full backlog drops the whole packet (counted by the writer and here); the stream goes on.
    if (off < 0) this.stats.dropped++;
    else pkt.copy(w.stage, off, 0, len);
  }

  sendRtcp(msg: Buffer): boolean {
    return this.conn?.writer.writePacket(this.channel + 1, msg) ?? false;
  }

  receive(buf: Buffer, off: number, len: number): void {
    readInterleavedReport(buf, off, len, this.params, this.stats);
  }

  close(): void {
    this.conn?.unbind(this.channel + 1, this);
    this.conn = null;
  }
}
