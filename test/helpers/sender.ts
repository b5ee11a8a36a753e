/** A test-side RTP sender on 127.0.0.1 that can inject loss, reordering, duplicates and garbage. */
import dgram from 'node:dgram';

export interface SentPacket {
  seq: number;
  ts: number;
  marker: boolean;
  payload: Buffer;
}

export function rtpPacket(pt: number, seq: number, ts: number, ssrc: number, payload: Uint8Array, marker = false): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  b.set(payload, 12);
  return b;
}

/** Deterministic payload bytes for a sequence number. */
export function payloadFor(seq: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seq * 7 + i * 13 + (seq >> 8)) & 0xff;
  return b;
}

export class TestSender {
  readonly sock: dgram.Socket;
  readonly port: number;

  private constructor(sock: dgram.Socket, port: number) {
    this.sock = sock;
    this.port = port;
  }

  static async open(address = '127.0.0.1'): Promise<TestSender> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, address, () => resolve());
    });
    return new TestSender(sock, sock.address().port);
  }

  send(buf: Uint8Array, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.sock.send(buf, port, host, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.sock.close();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
