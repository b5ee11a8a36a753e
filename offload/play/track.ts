/**
 * What a play track and a live track share: the sockets towards one
 * destination and the receiver reports that come back from it.
 *
 * The RTP socket is bound in the destination's family (IPv4 or IPv6) and
 * connected to it. Receiver reports count only when they come from the
 * destination itself: its address and its RTCP port (destination port + 1) on
 * our RTCP socket, or its RTP port on our RTP socket (RTCP multiplexed,
 * RFC 5761; the connected socket lets nothing else in). Anything else on
 * those ports, and malformed RTCP from the destination, is counted as
 * `rtcpRejected`, never read into the stats.
 */
import type dgram from 'node:dgram';
import type { PlayTrackParams, TrackStats } from '../channel.js';
import { bindPortPair, closePortPair, connect, type PortPair } from '../sockets.js';
import { isWellFormedRtcp, readReceptionReport } from '../rtcp.js';
import { OffloadError } from '../channel.js';
import type { InterleavedReceiver, RtspConnection, RtspListener } from '../rtsp/listener.js';

/** A sending track's sockets and the destination as the kernel writes it (for comparing with senders). */
export interface SendSockets extends PortPair {
  /** The destination address as `rinfo.address` reports it (e.g. '::1', '::ffff:127.0.0.1'). */
  destAddress: string;
}

/**
 * Binds the track's port pair in the destination's family, connects RTP to
 * the destination, and counts socket errors and the destination's receiver
 * reports into `stats`. Closes what it opened when anything fails.
 */
export async function openSendSockets(params: PlayTrackParams, bindHost: string, stats: TrackStats): Promise<SendSockets> {
  const pair = await bindPortPair(params.localPort, bindHost, params.family);
  try {
    await connect(pair.rtp, params.destPort, params.destHost);
  } catch (err) {
    closePortPair(pair);
    throw err;
  }
  const destAddress = pair.rtp.remoteAddress().address;
  // Errors of fire-and-forget sends surface here: count them, never crash.
  pair.rtp.on('error', () => stats.sendErrors++);
  pair.rtcp.on('error', () => stats.sendErrors++);
  const rtcpPort = params.destPort + 1;
  pair.rtcp.on('message', (msg, rinfo) => {
    if (rinfo.port !== rtcpPort || rinfo.address !== destAddress) stats.rtcpRejected++;
    else readReport(msg, params, stats);
  });
  pair.rtp.on('message', (msg, rinfo) => {
    if (rinfo.port !== params.destPort || rinfo.address !== destAddress) stats.rtcpRejected++;
    else readReport(msg, params, stats);
  });
  return { rtp: pair.rtp, rtcp: pair.rtcp, destAddress };
}

/**
 * The RTSP connection an interleaved track sends on (RTP/AVP/TCP): its RTCP
 * channel (channel + 1) is bound to `receiver`, which gets the client's
 * receiver reports. Fails when the connection closed meanwhile.
 */
export function openInterleaved(params: PlayTrackParams, rtsp: RtspListener | null, receiver: InterleavedReceiver): RtspConnection {
  const il = params.interleaved!;
  const conn = rtsp?.get(il.conn);
  if (conn === undefined || conn.closed) throw new OffloadError('OFFCAST_RTSP_CONNECTION_GONE', `RTSP connection ${il.conn} is closed`, 410);
  conn.bind(il.channel + 1, receiver);
  return conn;
}

/** A receiver report that came interleaved on the RTSP connection (the connection is the client's, so its source is). */
export function readInterleavedReport(buf: Buffer, off: number, len: number, params: PlayTrackParams, stats: TrackStats): void {
  readReport(buf.subarray(off, off + len), params, stats);
}

function readReport(msg: Buffer, params: PlayTrackParams, stats: TrackStats): void {
  // Malformed RTCP from the destination is refused and counted like RTCP from elsewhere.
  if (!isWellFormedRtcp(msg)) {
    stats.rtcpRejected++;
    return;
  }
  const rr = readReceptionReport(msg, params.ssrc, params.clockRate, performance.now());
  if (rr === null) return;
  stats.rr = rr;
  stats.rrCount++;
}

/** Sends an RTCP packet to the destination's RTCP port; counts a failure. */
export function sendRtcp(rtcp: dgram.Socket, msg: Buffer, params: PlayTrackParams, stats: TrackStats): boolean {
  try {
    rtcp.send(msg, params.destPort + 1, params.destHost);
    return true;
  } catch {
    stats.sendErrors++;
    return false;
  }
}
