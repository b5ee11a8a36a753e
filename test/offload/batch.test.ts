// The native batched sender: what it sends arrives byte for byte; failures are reported per packet.
import t from 'tap';
import dgram from 'node:dgram';
import { nativeSender, nativeLoadError } from '../../offload/native/index.js';
import { BatchSender } from '../../offload/batch.js';
import { socketFd } from '../../offload/sockets.js';
import { RtpSink } from '../helpers/rtp.js';

const native = nativeSender();
if (native === null) {
  t.comment(`native sender not built (${nativeLoadError()}): npm install builds it with node-gyp; skipping`);
  t.skip('native sender not built');
} else {
  const connected = async (port: number): Promise<dgram.Socket> => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => s.connect(port, '127.0.0.1', () => r()));
    return s;
  };
  const fdOf = (s: dgram.Socket): number => socketFd(s);

  t.test('batches across sockets arrive intact and in order', async (t) => {
    const sinks = [await RtpSink.open(), await RtpSink.open()];
    const socks = [await connected(sinks[0]!.port), await connected(sinks[1]!.port)];
    t.teardown(() => {
      sinks.forEach((s) => s.close());
      socks.forEach((s) => s.close());
    });
    const failed: number[] = [];
    const owner = { sendFailed: (e: number) => failed.push(e) };
    const b = new BatchSender(native.sendBatch);
    const sent: Buffer[][] = [[], []];
    for (let i = 0; i < 300; i++) {
      const k = i % 7 < 5 ? 0 : 1; // runs of the same socket and switches
      const len = 12 + ((i * 37) % 1200);
      const pkt = Buffer.alloc(len, i & 0xff);
      pkt[0] = 0x80;
      pkt[1] = 96;
      pkt.writeUInt16BE(i, 2);
      const off = b.reserve(fdOf(socks[k]!), len, owner);
      pkt.copy(b.stage, off);
      sent[k]!.push(pkt);
    }
    b.flush();
    await sinks[0]!.waitFor(sent[0]!.length);
    await sinks[1]!.waitFor(sent[1]!.length);
    for (const k of [0, 1]) {
      const got = sinks[k]!.packets;
      t.equal(got.length, sent[k]!.length, `socket ${k}: every packet`);
      t.ok(got.every((p, i) => p.seq === sent[k]![i]!.readUInt16BE(2) && p.payload.equals(sent[k]![i]!.subarray(12))), `socket ${k}: bytes and order`);
    }
    t.same(failed, [], 'no failures');
    t.equal(b.packets, 300);
    t.ok(b.batches >= 1);
  });

  t.test('a failing packet is reported and the rest still go', async (t) => {
    const sink = await RtpSink.open();
    const ok = await connected(sink.port);
    t.teardown(() => {
      sink.close();
      ok.close();
    });
    const b = new BatchSender(native.sendBatch);
    const failed: number[] = [];
    const owner = { sendFailed: (e: number) => failed.push(e) };
    const pkt = Buffer.from([0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9]);
    pkt.copy(b.stage, b.reserve(fdOf(ok), pkt.length, owner));
    pkt.copy(b.stage, b.reserve(-1, pkt.length, owner)); // not a descriptor: EBADF
    pkt.copy(b.stage, b.reserve(fdOf(ok), pkt.length, owner));
    b.flush();
    t.same(failed, [9], 'EBADF reported for the packet that failed, and only for it');
    await sink.waitFor(2);
    t.equal(sink.packets.length, 2, 'the packets before and after it were sent');
    t.throws(() => native.sendBatch(new Int32Array(1), new Uint8Array(4), new Uint32Array([0]), new Uint32Array([8]), new Int32Array(1), 1), TypeError, 'a packet outside the buffer is refused');
    t.throws(() => native.sendBatch(new Int32Array(1), new Uint8Array(4), new Uint32Array(1), new Uint32Array(1), new Int32Array(1), 2), TypeError, 'a count beyond the arrays is refused');
  });
}
