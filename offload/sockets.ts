/**
 * The UDP port pair of a track: RTP on an even port, RTCP on the next one.
 * Bound exclusively; a port taken by another program is a 503 the control
 * plane retries with other ports.
 */
import type dgram from 'node:dgram';
import DgramAsPromised from 'dgram-as-promised';
import { OffloadError } from './channel.js';

export interface PortPair {
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
}

export async function bindPortPair(localPort: number, bindHost: string, family: 4 | 6 = 4): Promise<PortPair> {
  const type = family === 6 ? 'udp6' : 'udp4';
  const host = family === 6 && bindHost === '0.0.0.0' ? '::' : bindHost;
  const rtpP = DgramAsPromised.createSocket({ type, reuseAddr: false });
  const rtcpP = DgramAsPromised.createSocket({ type, reuseAddr: false });
  const pair = { rtp: rtpP.socket, rtcp: rtcpP.socket };
  try {
    await rtpP.bind({ port: localPort, address: host, exclusive: true });
    await rtcpP.bind({ port: localPort + 1, address: host, exclusive: true });
  } catch (err) {
    closePortPair(pair);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      throw new OffloadError('OFFCAST_PORT_IN_USE', `local port ${localPort} or ${localPort + 1} is in use`, 503);
    }
    throw err;
  }
  return pair;
}

/** Connects the RTP socket to its destination (faster sends; only that peer's packets come back). */
export function connect(sock: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.connect(port, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

export function closePortPair(pair: Partial<PortPair>): void {
  for (const s of [pair.rtp, pair.rtcp]) {
    if (s === undefined) continue;
    try {
      s.close();
    } catch {
      // already closed
    }
  }
}

/**
 * The descriptor of a bound dgram socket, for the native sender; -1 if Node
 * doesn't expose it. (Read through the socket's internal state: the public
 * `_handle` accessor is deprecated and warns.)
 */
export function socketFd(sock: dgram.Socket): number {
  const sym = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  const state = sym === undefined ? undefined : (sock as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym];
  const fd = state?.handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}
