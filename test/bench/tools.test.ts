// The benchmark's C measuring tools, checked against each other on loopback:
// counts must match exactly; lateness is only checked to be sane.
import t from 'tap';
import dgram from 'node:dgram';
import { access, constants, stat } from 'node:fs/promises';
import { buildTools } from './tools/build.mjs';
import { expectedPayload, runSender, startReceiver } from './tools/drive.mjs';

type ReceiverOptions = Parameters<typeof startReceiver>[0];
type Receiver = ReturnType<typeof startReceiver>;

const tools = await buildTools();

// Ports are fixed by the tools' arguments, so pick a random base and retry if taken.
async function receiverOnFreePorts(opts: Omit<ReceiverOptions, 'portBase' | 'bin'>): Promise<{ receiver: Receiver; portBase: number }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 8; attempt++) {
    const portBase = 20000 + 2 * Math.floor(Math.random() * 15000);
    const receiver = startReceiver({ ...opts, portBase, bin: tools.rtprecv, maxSeconds: 30 });
    try {
      await receiver.ready;
      return { receiver, portBase };
    } catch (error) {
      lastError = error;
      if (!/Address already in use/.test(String(error))) throw error;
    }
  }
  throw lastError;
}

function sendDatagrams(port: number, datagrams: Buffer[]): Promise<void> {
  const socket = dgram.createSocket('udp4');
  return new Promise<void>((resolve, reject) => {
    let pending = datagrams.length;
    for (const datagram of datagrams) {
      socket.send(datagram, port, '127.0.0.1', (error) => {
        if (error) reject(error);
        else if (--pending === 0) resolve();
      });
    }
  }).finally(() => socket.close());
}

function rtpPacket(ssrc: number, seq: number, ts: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = 96;
  header.writeUInt16BE(seq, 2);
  header.writeUInt32BE(ts, 4);
  header.writeUInt32BE(ssrc, 8);
  return Buffer.concat([header, payload]);
}

t.test('buildTools compiles both tools and reuses the cache', async (t) => {
  for (const bin of [tools.rtprecv, tools.rtpsend]) {
    await access(bin, constants.X_OK);
  }
  const before = await Promise.all([stat(tools.rtprecv), stat(tools.rtpsend)]);
  const again = await buildTools();
  t.same(again, tools);
  const after = await Promise.all([stat(again.rtprecv), stat(again.rtpsend)]);
  t.equal(after[0].mtimeMs, before[0].mtimeMs, 'rtprecv not rebuilt');
  t.equal(after[1].mtimeMs, before[1].mtimeMs, 'rtpsend not rebuilt');
});

t.test('expectedPayload follows the documented formula', async (t) => {
  t.same([...expectedPayload(0x01020304, 1, 8)], [0x0b, 0x0b, 0x0b, 0x0b, 0x0f, 0x0f, 0x0f, 0x0f]);
  // 0xff + 7 * 0xffff = 0x700f8
  t.same([...expectedPayload(0xffffffff, 0xffff, 2)], [0xf8, 0xf9]);
  const long = expectedPayload(0xdeadbeef, 4242, 600);
  t.equal(long.length, 600);
  t.same(long.subarray(256, 512), long.subarray(0, 256), 'repeats every 256 bytes');
  t.same(expectedPayload(5, 6, 0).length, 0);
});

t.test('rtpsend packets carry the documented header and payload', async (t) => {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const received: Buffer[] = [];
  const allReceived = new Promise<void>((resolve) => {
    socket.on('message', (message) => {
      received.push(message);
      if (received.length === 5) resolve();
    });
  });
  const sent = await runSender({
    bin: tools.rtpsend,
    portBase: socket.address().port,
    count: 1,
    pps: 1000,
    packets: 5,
    size: 300,
    pt: 111,
    clock: 8000,
    ssrcBase: 0x01020304,
    seqStart: 65534,
    tsStart: 0xfffffff0,
  });
  await allReceived;
  socket.close();
  t.equal(sent.packets, 5);
  t.equal(sent.sendErrors, 0);
  const seqs = [65534, 65535, 0, 1, 2];
  received.forEach((packet, j) => {
    t.equal(packet.length, 300);
    t.equal(packet[0], 0x80, 'version 2, no padding, extension or CSRC');
    t.equal(packet[1], (j === 0 ? 0x80 : 0) | 111, 'marker on the first packet only');
    t.equal(packet.readUInt16BE(2), seqs[j]);
    // 1000 packets/s at 8 kHz: 8 ticks apart, wrapping past 2^32.
    t.equal(packet.readUInt32BE(4), (0xfffffff0 + 8 * j) >>> 0);
    t.equal(packet.readUInt32BE(8), 0x01020304);
    t.same(packet.subarray(12), expectedPayload(0x01020304, seqs[j], 288));
  });
});

t.test('clean run: every packet counted once, sizes and streams as sent', async (t) => {
  const { receiver, portBase } = await receiverOnFreePorts({ count: 4, rcvbuf: 4 << 20, perStream: true, verifyPayload: true });
  const sent = await runSender({ bin: tools.rtpsend, portBase, count: 4, pps: 2000, duration: 1, size: 200, pt: 97, ssrcBase: 7000 });
  const report = await receiver.stop();
  t.equal(sent.slots, 2000);
  t.equal(sent.packets, 2000);
  t.equal(sent.sendErrors, 0);
  t.equal(report.packets, sent.packets);
  t.equal(report.bytes, 2000 * 200);
  t.equal(report.activeStreams, 4);
  t.equal(report.lost, 0);
  t.equal(report.duplicates, 0);
  t.equal(report.reordered, 0);
  t.equal(report.nonRtp, 0);
  t.equal(report.ssrcChanges, 0);
  t.equal(report.payloadMismatches, 0);
  t.equal(report.sizeMin, 200);
  t.equal(report.sizeMax, 200);
  t.equal(report.markers, 4);
  t.same(
    report.perStream?.map((s) => [s.port, s.packets, s.ssrc, s.payloadType, s.markers, s.lost]),
    [0, 1, 2, 3].map((i) => [portBase + 2 * i, 500, 7000 + i, 97, 1, 0]),
  );
  t.ok(['kernel', 'user'].includes(report.timestampSource));
  const lateness = report.lateness;
  t.ok(lateness !== null && Number.isFinite(lateness.p99) && lateness.p99 >= 0 && lateness.p99 < 1000, 'p99 finite, < 1 s');
  t.ok(lateness !== null && lateness.p50 <= lateness.p99 && lateness.p99 <= lateness.max);
  t.equal(report.latenessSamples, 2000);
  t.equal(report.worstStreams.length, 4);
  t.ok(report.rcvbuf > 0);
});

// Per stream, 101 packets with sequence numbers wrapping past 65535 and
// timestamps past 2^32; injected faults on packet j when (j + 1) % K == 0.
const faultCases = [
  { name: 'skip', flags: { skipEvery: 10 }, perStream: { datagrams: 91, lost: 10, duplicates: 0, reordered: 0 } },
  { name: 'duplicate', flags: { dupEvery: 10 }, perStream: { datagrams: 111, lost: 0, duplicates: 10, reordered: 0 } },
  { name: 'reorder', flags: { reorderEvery: 10 }, perStream: { datagrams: 101, lost: 0, duplicates: 0, reordered: 10 } },
  // skip 7,14..98 (14); dup 11..99 minus 77 (skipped) = 8; hold 13..91 minus 91 (skipped) = 6.
  { name: 'combined', flags: { skipEvery: 7, dupEvery: 11, reorderEvery: 13 }, perStream: { datagrams: 95, lost: 14, duplicates: 8, reordered: 6 } },
  { name: 'none, connected sockets', flags: { connected: true }, perStream: { datagrams: 101, lost: 0, duplicates: 0, reordered: 0 } },
];

for (const c of faultCases) {
  t.test(`injected faults: ${c.name}`, async (t) => {
    const { receiver, portBase } = await receiverOnFreePorts({ count: 4, rcvbuf: 4 << 20, perStream: true, verifyPayload: true });
    const sent = await runSender({
      bin: tools.rtpsend,
      portBase,
      count: 4,
      pps: 4000,
      packets: 404,
      seqStart: 65500,
      tsStart: 0xffffff00,
      ...c.flags,
    });
    const report = await receiver.stop();
    const expected = c.perStream;
    t.equal(sent.slots, 404);
    t.equal(sent.packets, 4 * expected.datagrams);
    t.equal(sent.skipped, 4 * expected.lost);
    t.equal(sent.duplicated, 4 * expected.duplicates);
    t.equal(sent.reordered, 4 * expected.reordered);
    t.equal(report.packets, sent.packets);
    t.equal(report.lost, 4 * expected.lost);
    t.equal(report.duplicates, 4 * expected.duplicates);
    t.equal(report.reordered, 4 * expected.reordered);
    t.equal(report.payloadMismatches, 0);
    t.same(
      report.perStream?.map((s) => [s.packets, s.lost, s.duplicates, s.reordered, s.markers]),
      [0, 1, 2, 3].map(() => [expected.datagrams, expected.lost, expected.duplicates, expected.reordered, 1]),
    );
  });
}

t.test('a new SSRC on a port starts a new sequence space', async (t) => {
  const { receiver, portBase } = await receiverOnFreePorts({ count: 1, perStream: true });
  for (const ssrcBase of [1111, 2222]) {
    const sent = await runSender({ bin: tools.rtpsend, portBase, count: 1, pps: 5000, packets: 50, ssrcBase });
    t.equal(sent.packets, 50);
  }
  const report = await receiver.stop();
  t.equal(report.packets, 100);
  t.equal(report.ssrcChanges, 1);
  t.equal(report.lost, 0);
  t.equal(report.duplicates, 0, 'same sequence numbers, different source: not duplicates');
  t.equal(report.reordered, 0);
  t.equal(report.markers, 2);
  t.equal(report.perStream?.[0]?.ssrc, 2222);
});

t.test('non-RTP datagrams and wrong payloads are counted, not measured', async (t) => {
  const { receiver, portBase } = await receiverOnFreePorts({ count: 1, perStream: true, verifyPayload: true });
  const good = rtpPacket(0xabc, 10, 0, expectedPayload(0xabc, 10, 40));
  const corrupt = rtpPacket(0xabc, 11, 160, expectedPayload(0xabc, 11, 40));
  corrupt[30] ^= 0xff;
  const notRtp = [
    Buffer.from([0x80, 0x60]), // shorter than a header
    Buffer.alloc(12), // version 0
    Buffer.from([0x81, 201, 0, 1, 0, 0, 0x0a, 0xbc]), // RTCP receiver report
    Buffer.from([0x90, 96, 0, 12, 0, 0, 0, 0, 0, 0, 0x0a, 0xbc, 0xbe, 0xde, 0, 9]), // extension longer than the packet
  ];
  await sendDatagrams(portBase, [good, corrupt, ...notRtp]);
  const report = await receiver.stop();
  t.equal(report.packets, 2);
  t.equal(report.payloadMismatches, 1);
  t.equal(report.nonRtp, 4);
  t.equal(report.lost, 0);
  t.equal(report.sizeMin, 52);
  t.equal(report.sizeMax, 52);
});

t.test('ramp: each step sends its rate for its length', async (t) => {
  const { receiver, portBase } = await receiverOnFreePorts({ count: 2 });
  // Binary-exact steps: 0.125 s at 800, 1600, 2400 packets/s.
  const sent = await runSender({ bin: tools.rtpsend, portBase, count: 2, ramp: { start: 800, step: 800, every: 0.125 }, duration: 0.375 });
  const report = await receiver.stop();
  t.equal(sent.mode, 'ramp');
  t.same(
    sent.ramp?.map((s) => [s.rate, s.packets]),
    [
      [800, 100],
      [1600, 200],
      [2400, 300],
    ],
  );
  t.ok(sent.ramp?.every((s) => s.achievedPps > 0));
  t.equal(report.packets, 600);
  t.equal(report.lost, 0);
});

t.test('max mode sends a bounded burst', async (t) => {
  const { receiver, portBase } = await receiverOnFreePorts({ count: 4, rcvbuf: 8 << 20 });
  const sent = await runSender({ bin: tools.rtpsend, portBase, count: 4, max: true, packets: 400, size: 100 });
  const report = await receiver.stop();
  t.equal(sent.mode, 'max');
  t.equal(sent.packets, 400);
  t.equal(report.packets, 400);
  t.equal(report.lost, 0);
});

t.test('receiver ends by itself after --duration', async (t) => {
  const { receiver, portBase } = await receiverOnFreePorts({ count: 1, duration: 0.2 });
  await runSender({ bin: tools.rtpsend, portBase, count: 1, pps: 1000, packets: 10 });
  await receiver.exited;
  const report = await receiver.stop();
  t.equal(report.packets, 10);
});

t.test('the tools refuse anything but loopback and unbounded runs', async (t) => {
  const receiver = startReceiver({ bin: tools.rtprecv, host: '10.1.2.3', portBase: 30000 });
  await t.rejects(receiver.ready, /outside 127\.0\.0\.0\/8/);
  await t.rejects(runSender({ bin: tools.rtpsend, host: '192.168.1.1', portBase: 30000, pps: 10, packets: 1 }), /outside 127\.0\.0\.0\/8/);
  await t.rejects(runSender({ bin: tools.rtpsend, portBase: 30000, pps: 10 }), /must be bounded/);
  await t.rejects(runSender({ bin: tools.rtpsend, portBase: 30000, packets: 1 }), /one of --pps R, --ramp or --max/);
  await t.rejects(runSender({ bin: tools.rtpsend, portBase: 30000, pps: 10, packets: 1, size: 11 }), /--size must be/);
  await t.rejects(runSender({ bin: tools.rtpsend, portBase: 30000, pps: 10, packets: 1, skipEvery: 1 }), /--skip-every must be/);
});
