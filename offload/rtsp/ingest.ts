/**
 * RTP/AVP/TCP as a record track's input (RTSP RECORD over interleaved
 * channels, RFC 2326 10.12): the publisher's `$`-frames on the track's RTP
 * channel go into the track's packet ingest, those on the next channel into
 * its RTCP handling, and the track's receiver reports go back on that
 * channel. The frames never leave the offload: the listener that parsed them
 * runs on this worker and calls in directly.
 *
 * No queue: a frame is handled during the call that delivered it, so a
 * publisher faster than the recorder is held back by TCP itself, and the
 * record path's own bounds (reorder buffer, slow-path hold) drop and count.
 */
import type { RecordTrackParams } from '../channel.js';
import { OffloadError } from '../channel.js';
import type { InterleavedReceiver, RtspConnection, RtspListener } from './listener.js';

/** What takes the packets: a record track (as if from a socket whose peer is the RTSP client). */
export interface IngestTarget {
  ingestRtp(msg: Buffer, address: string, port: number): void;
  ingestRtcp(msg: Buffer, address: string, port: number): void;
}

/** A frame's bytes, owned: the parser's buffer is valid only during the call, and the record path keeps packets (reorder, hold). */
function own(buf: Buffer, off: number, len: number): Buffer {
  // As dgram does per datagram; allocUnsafe takes small packets from Node's pool.
  const msg = Buffer.allocUnsafe(len);
  buf.copy(msg, 0, off, off + len);
  return msg;
}

export class InterleavedIngest {
  private conn: RtspConnection | null;
  private readonly channel: number;
  /** The RTSP client as a flow source: its address and TCP port (the slow path judges it like a UDP sender). */
  readonly address: string;
  readonly port: number;
  private readonly rtp: InterleavedReceiver;
  private readonly rtcp: InterleavedReceiver;

  constructor(params: RecordTrackParams, rtsp: RtspListener | null, target: IngestTarget) {
    const il = params.interleaved!;
    const conn = rtsp?.get(il.conn);
    if (conn === undefined || conn.closed) throw new OffloadError('OFFCAST_RTSP_CONNECTION_GONE', `RTSP connection ${il.conn} is closed`, 410);
    this.conn = conn;
    this.channel = il.channel;
    this.address = conn.socket.remoteAddress ?? '';
    this.port = conn.socket.remotePort ?? 0;
    this.rtp = { receive: (buf, off, len) => target.ingestRtp(own(buf, off, len), this.address, this.port) };
    this.rtcp = { receive: (buf, off, len) => target.ingestRtcp(own(buf, off, len), this.address, this.port) };
    conn.bind(il.channel, this.rtp);
    conn.bind(il.channel + 1, this.rtcp);
  }

  /** A receiver report to the publisher, on the RTCP channel; false when dropped (backlog full, connection gone). */
  sendRtcp(msg: Buffer): boolean {
    return this.conn?.writer.writePacket(this.channel + 1, msg) ?? false;
  }

  /** Frames on these channels are unknown from now on (dropped and counted by the listener). */
  close(): void {
    this.conn?.unbind(this.channel, this.rtp);
    this.conn?.unbind(this.channel + 1, this.rtcp);
    this.conn = null;
  }
}
