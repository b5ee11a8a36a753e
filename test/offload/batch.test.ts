// The native batched sender: what it sends arrives byte for byte; failures are reported per packet.
import t from 'tap';
import dgram from 'node:dgram';
import v8 from 'node:v8';
import vm from 'node:vm';
import { nativeSender, nativeLoadError } from '../../offload/native/index.js';
import { BatchSender } from '../../offload/batch.js';
import { socketFd } from '../../offload/sockets.js';
import { RtpSink } from '../helpers/rtp.js';
import { skipFile } from '../helpers/tools.js';

const native = nativeSender();
if (native === null) {
  skipFile(`native sender not built (${nativeLoadError()}): npm install builds it with node-gyp; skipping`);
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
    const b = new BatchSender(native.sendBatch, native.copyBytes);
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
      t.ok(
        got.every((p, i) => p.seq === sent[k]![i]!.readUInt16BE(2) && p.payload.equals(sent[k]![i]!.subarray(12))),
        `socket ${k}: bytes and order`,
      );
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
    const b = new BatchSender(native.sendBatch, native.copyBytes);
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
    t.throws(
      () => native.sendBatch(new Int32Array(1), new Uint8Array(4), new Uint32Array([0]), new Uint32Array([8]), new Int32Array(1), 1),
      TypeError,
      'a packet outside the buffer is refused',
    );
    t.throws(
      () => native.sendBatch(new Int32Array(1), new Uint8Array(4), new Uint32Array(1), new Uint32Array(1), new Int32Array(1), 2),
      TypeError,
      'a count beyond the arrays is refused',
    );
  });

  t.test('write stages the header template and a payload range, bytes exact', async (t) => {
    const b = new BatchSender(native.sendBatch, native.copyBytes);
    const header = Uint8Array.from([0x80, 96, 0, 1, 0, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff]);
    // The cache's payloads live in a SharedArrayBuffer: the same kind of source here.
    const payload = Buffer.from(new SharedArrayBuffer(4000));
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
    const cases: [number, number][] = [
      [0, 0],
      [0, 1],
      [1, 1200],
      [2799, 1201],
      [3999, 1],
    ];
    for (const [from, len] of cases) {
      const off = b.reserve(3, 12 + len, { sendFailed: () => undefined });
      b.write(off, header, payload, from, len);
      t.same([...b.stage.subarray(off, off + 12)], [...header.subarray(0, 12)], `header at ${off}`);
      t.ok(b.stage.subarray(off + 12, off + 12 + len).equals(payload.subarray(from, from + len)), `payload ${from}+${len}`);
    }
    t.throws(() => native.copyBytes(b.stage, 0, payload, 3999, 2), TypeError, 'a source range past the end is refused');
    t.throws(() => native.copyBytes(b.stage, b.stage.length - 1, payload, 0, 2), TypeError, 'a target range past the end is refused');
  });

  t.test('staging a packet allocates nothing', async (t) => {
    let gc: (() => void) | null = null;
    try {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
    if (typeof gc !== 'function') {
      t.skip('cannot expose gc() at run time', () => undefined);
      return;
    }
    const b = new BatchSender(native.sendBatch, native.copyBytes);
    const header = new Uint8Array(1212);
    header[0] = 0x80;
    const payload = Buffer.from(new SharedArrayBuffer(1 << 20));
    const owner = { sendFailed: () => undefined };
    const ROUND = 100_000;
    const sink: Uint8Array[] = [];
    const run = (allocate: boolean): void => {
      for (let i = 0; i < ROUND; i++) {
        // Reset instead of flushing: nothing is sent, only staged.
        if ((i & 511) === 0) (b as unknown as { count: number; used: number }).count = (b as unknown as { used: number }).used = 0;
        const off = b.reserve(3, 1212, owner);
        b.write(off, header, payload, (i * 1200) & 0xfffff & ~0xfff, 1200);
        if (allocate) sink[i & 3] = payload.subarray(i & 0xff, 1200);
      }
    };
    const measure = (allocate: boolean): number => {
      gc!();
      const before = process.memoryUsage().heapUsed;
      run(allocate);
      return process.memoryUsage().heapUsed - before;
    };
    run(false);
    run(false); // warm-up: the JIT settles
    const rounds = [measure(false), measure(false), measure(false)];
    t.ok(Math.min(...rounds) < 64 * 1024, `${ROUND} packets staged with under 64 KiB of heap growth: ${rounds.join(', ')} bytes`);
    const control = measure(true);
    t.ok(control > 1_000_000 || control < 0, `the measurement sees a view per packet (Buffer#copy's cost): ${control} bytes`);
  });
}
