/** Test-side RTP/RTCP peers on 127.0.0.1: receive and record every packet with its arrival time. */
import dgram from 'node:dgram';
import { packets } from 'rtp.js';

export interface ReceivedRtp {
  at: number;
  version: number;
  marker: boolean;
  payloadType: number;
  seq: number;
  ts: number;
  ssrc: number;
  payload: Buffer;
  size: number;
}

export function parseRtp(msg: Buffer, at: number): ReceivedRtp | null {
  if (msg.length < 12 || msg[0]! >> 6 !== 2) return null;
  const cc = msg[0]! & 0x0f;
  const hasExt = (msg[0]! & 0x10) !== 0;
  let off = 12 + cc * 4;
  if (hasExt) off += 4 + msg.readUInt16BE(off + 2) * 4;
  let end = msg.length;
  if (msg[0]! & 0x20) end -= msg[msg.length - 1]!;
  return {
    at,
    version: 2,
    marker: (msg[1]! & 0x80) !== 0,
    payloadType: msg[1]! & 0x7f,
    seq: msg.readUInt16BE(2),
    ts: msg.readUInt32BE(4),
    ssrc: msg.readUInt32BE(8),
    payload: Buffer.from(msg.subarray(off, end)),
    size: msg.length,
  };
}

/** Binds an even port (and optionally port+1 for RTCP) on 127.0.0.1. */
export class RtpSink {
  readonly rtp: dgram.Socket;
  readonly rtcp: dgram.Socket;
  readonly port: number;
  readonly packets: ReceivedRtp[] = [];
  readonly rtcpPackets: { at: number; msg: Buffer; from: { address: string; port: number } }[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];

  private constructor(rtp: dgram.Socket, rtcp: dgram.Socket, port: number) {
    this.rtp = rtp;
    this.rtcp = rtcp;
    this.port = port;
    rtp.on('message', (msg) => {
      const p = parseRtp(msg, performance.now());
      if (p !== null) {
        this.packets.push(p);
        this.waiters = this.waiters.filter((w) => {
          if (this.packets.length >= w.n) {
            w.resolve();
            return false;
          }
          return true;
        });
      }
    });
    rtcp.on('message', (msg, rinfo) =>
      this.rtcpPackets.push({ at: performance.now(), msg: Buffer.from(msg), from: { address: rinfo.address, port: rinfo.port } }),
    );
  }

  /** A sink on 127.0.0.1, or on ::1 with `family` 6 (or on `host`, another loopback address). */
  static async open(family: 4 | 6 = 4, host = family === 6 ? '::1' : '127.0.0.1'): Promise<RtpSink> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = 40000 + 2 * Math.floor(Math.random() * 9000);
      const rtp = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      const rtcp = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      try {
        await bind(rtp, port, host);
        await bind(rtcp, port + 1, host);
        rtp.setRecvBufferSize(8 * 1024 * 1024);
        return new RtpSink(rtp, rtcp, port);
      } catch {
        rtp.close();
        try {
          rtcp.close();
        } catch {
          /* not bound */
        }
      }
    }
    throw new Error('no free port pair');
  }

  /** Resolves when `n` RTP packets have arrived, or rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 10000): Promise<void> {
    if (this.packets.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${this.packets.length}/${n} packets`)), timeoutMs);
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Sends an RTCP packet from our RTCP port to `port` on 127.0.0.1. */
  sendRtcp(msg: Uint8Array, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.rtcp.send(msg, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** Sends from the RTP socket (RTCP multiplexed on the RTP port, RFC 5761). */
  sendFromRtp(msg: Uint8Array, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.rtp.send(msg, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** Resolves true once an RTCP packet has arrived (false after `timeoutMs`). */
  async waitForRtcp(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.rtcpPackets.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.rtcpPackets.length > 0;
  }

  close(): void {
    this.rtp.close();
    this.rtcp.close();
  }
}

function bind(s: dgram.Socket, port: number, host = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, host, () => {
      s.off('error', reject);
      resolve();
    });
  });
}

/** An RR from SSRC 0x12345678 with one report block about `ssrc` (built with rtp.js). */
export function receiverReport(ssrc: number): Uint8Array {
  const rr = new packets.ReceiverReportPacket();
  rr.setSsrc(0x12345678);
  const block = new packets.ReceptionReport();
  block.setSsrc(ssrc);
  block.setFractionLost(16);
  block.setHighestSeqNumber(1);
  rr.addReport(block);
  const buf = new ArrayBuffer(rr.getByteLength());
  rr.serialize(buf, 0);
  return new Uint8Array(buf);
}

/** Parsed RTCP compound packets (rtp.js). */
export function parseRtcp(msg: Buffer): packets.RtcpPacket[] {
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (!packets.isRtcp(view)) return [];
  return new packets.CompoundPacket(view).getPackets();
}

/** Unwraps 16-bit sequence numbers into a monotonically extended series. */
export function extendSeq(seqs: number[]): number[] {
  const out: number[] = [];
  let cycles = 0;
  let prev = -1;
  for (const s of seqs) {
    if (prev >= 0 && s < prev && prev - s > 0x8000) cycles += 0x10000;
    out.push(cycles + s);
    prev = s;
  }
  return out;
}

/**
 * Binds `count` consecutive UDP ports on 127.0.0.1 (from an even base in
 * 40000–57999, retried while taken); `rcvbuf(k)` sizes socket k's receive
 * buffer (0: the default).
 */
export async function bindPortBlock(count: number, rcvbuf: (k: number) => number): Promise<{ base: number; sockets: dgram.Socket[] }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 40000 + 2 * Math.floor(Math.random() * 9000);
    const sockets: dgram.Socket[] = [];
    try {
      for (let k = 0; k < count; k++) {
        const s = dgram.createSocket('udp4');
        sockets.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.bind(base + k, '127.0.0.1', () => {
            s.off('error', reject);
            resolve();
          });
        });
        const size = rcvbuf(k);
        if (size > 0) s.setRecvBufferSize(size);
      }
      return { base, sockets };
    } catch {
      for (const s of sockets) s.close();
    }
  }
  throw new Error('no free port block');
}
