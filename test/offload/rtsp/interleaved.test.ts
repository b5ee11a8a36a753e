/**
 * The interleaved writer on a real TCP connection whose reader stops reading:
 * once the backlog bound is reached, whole packets are dropped and counted;
 * when the reader reads again, every frame it gets is whole and the packets
 * it gets are exactly those not dropped, in order.
 */
import t from 'tap';
import net from 'node:net';
import { InterleavedWriter, type FlushList } from '../../../offload/rtsp/interleaved.js';

const PACKET = 60000;

t.test('a reader that stops: whole packets dropped and counted, never part of a frame', async (t) => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  const sock = await accepted;
  t.teardown(() => {
    client.destroy();
    sock.destroy();
  });
  client.pause();
  const flushes: FlushList = { dirty: () => undefined };
  const w = new InterleavedWriter(sock, flushes);

  // Write packet after packet (index in the first 4 bytes) until the writer drops, then a few more.
  let written = 0;
  const kept: number[] = [];
  for (let i = 0; w.dropped < 10 && i < 100000; i++) {
    const off = w.reserve(2, PACKET);
    written++;
    if (off < 0) continue;
    const stage = w.stage;
    stage.fill(i & 0xff, off, off + PACKET);
    stage.writeUInt32BE(i, off);
    kept.push(i);
    w.flush();
    // Let the socket hand what it can to the kernel (its write callbacks free chunks).
    if (i % 8 === 0) await new Promise((r) => setImmediate(r));
  }
  t.ok(w.dropped >= 10, `dropped ${w.dropped} of ${written} once the backlog was full`);
  t.equal(w.packets + w.dropped, written, 'every packet is written or dropped, and counted');

  // The reader reads again: parse every frame.
  let buf = Buffer.alloc(0);
  const got: number[] = [];
  let bad = 0;
  client.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt16BE(2)) {
      const len = buf.readUInt16BE(2);
      if (buf[0] !== 0x24 || buf[1] !== 2 || len !== PACKET) bad++;
      const i = buf.readUInt32BE(4);
      if (buf[4 + len - 1] !== (i & 0xff)) bad++;
      got.push(i);
      buf = buf.subarray(4 + len);
    }
  });
  client.resume();
  const deadline = Date.now() + 20000;
  while (got.length < kept.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(bad, 0, 'every frame whole: `$`, channel, length, and its own bytes');
  t.same(got, kept, `the ${kept.length} packets not dropped arrive, in order, nothing else`);
});

t.test('held output goes out after what was written while holding', async (t) => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  const sock = await accepted;
  t.teardown(() => {
    client.destroy();
    sock.destroy();
  });
  const w = new InterleavedWriter(sock, { dirty: () => undefined });
  let received = Buffer.alloc(0);
  client.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  w.hold();
  t.ok(w.writePacket(0, Buffer.from('rtp')));
  w.flush();
  sock.write('ANSWER');
  w.unhold();
  const deadline = Date.now() + 5000;
  while (received.length < 13 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.equal(received.toString('latin1'), 'ANSWER$\x00\x00\x03rtp', 'the answer first, then the held frame');
});
