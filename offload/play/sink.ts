/**
 * Where a play track's packets go: the seam between a track's session logic
 * and its transport. The UDP sink is the track's connected RTP socket and its
 * RTCP socket on port+1 (offload/play/track.ts); other transports (RTSP's
 * interleaved TCP) implement the same interface and are paced by the
 * JavaScript pacer. Only a sink with a socket descriptor (`fd` ≥ 0) can be
 * handed to the native sender or the native pacing engine.
 */
import type { PlayTrackParams, TrackStats } from '../channel.js';
import { closePortPair, socketFd } from '../sockets.js';
import { openSendSockets, sendRtcp, type SendSockets } from './track.js';

export interface PacketSink {
  /** The connected UDP socket's descriptor for the native paths; -1 for a sink without one. */
  readonly fd: number;
  /**
   * False while the sink still holds the last packet given to `send` (its
   * buffer may not be rewritten yet): the pacer tries again later.
   */
  ready(): boolean;
  /** Sends `pkt[0, len)` (header and payload); never throws per packet (failures are counted). */
  send(pkt: Buffer, len: number): void;
  /** Sends an RTCP packet towards the destination; false (and counted) when it could not. */
  sendRtcp(msg: Buffer): boolean;
  /** Releases the transport; idempotent. */
  close(): void;
}

/** The UDP sink: the track's port pair, RTP connected to the destination. */
export class UdpSink implements PacketSink {
  readonly sockets: SendSockets;
  readonly fd: number;
  private readonly params: PlayTrackParams;
  private readonly stats: TrackStats;

  constructor(sockets: SendSockets, params: PlayTrackParams, stats: TrackStats) {
    this.sockets = sockets;
    this.params = params;
    this.stats = stats;
    this.fd = socketFd(sockets.rtp);
  }

  ready(): boolean {
    return this.sockets.rtp.getSendQueueCount() === 0;
  }

  send(pkt: Buffer, len: number): void {
    this.sockets.rtp.send(pkt, 0, len);
  }

  sendRtcp(msg: Buffer): boolean {
    return sendRtcp(this.sockets.rtcp, msg, this.params, this.stats);
  }

  close(): void {
    closePortPair(this.sockets);
  }
}

/** Binds and connects a track's port pair (see openSendSockets) as a sink. */
export async function openUdpSink(params: PlayTrackParams, bindHost: string, stats: TrackStats): Promise<UdpSink> {
  return new UdpSink(await openSendSockets(params, bindHost, stats), params, stats);
}
