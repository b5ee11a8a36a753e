// The native pacing engine (offload/native/engine.c) driven directly: exact packets over
// run/stop/seek/loop/"max", UDP GSO byte-exact at the receiver, the full ring, and close.
// Real UDP on 127.0.0.1; the expected bytes are computed here from the test's own packets.
import t from 'tap';
import dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { engineAddon, nativeLoadError } from '../../offload/native/index.js';
import { C, E, NativeEngine, OP_STOP, type EngineTrackOwner } from '../../offload/native/engine.js';
import { PacketTrackBuilder, finishMedia, type PacketTrack } from '../../offload/cache.js';
import { socketFd } from '../../offload/sockets.js';
import { skipFile } from '../helpers/tools.js';

const addon = engineAddon();
if (addon === null) {
  skipFile(`native engine not built (${nativeLoadError()}): npm install builds it with node-gyp; skipping`);
} else {
  const engine = new NativeEngine(addon, 64);

  /** Payload byte k of packet i: independent of the engine, so the receiver can check every byte. */
  const byteOf = (i: number, k: number): number => (i * 31 + k * 7 + 3) & 0xff;

  interface Spec {
    count: number;
    size: (i: number) => number;
    /** Send/timestamp step in clock ticks (clock 1000: ms). */
    step: number;
    marker?: (i: number) => boolean;
  }
  /** A one-track cache entry built the way the offload builds one (clock 1000 Hz: ticks are ms). */
  function track(spec: Spec): PacketTrack {
    const b = new PacketTrackBuilder(1000);
    for (let i = 0; i < spec.count; i++) {
      const p = new Uint8Array(spec.size(i));
      for (let k = 0; k < p.length; k++) p[k] = byteOf(i, k);
      // Video-like (sync only on frame starts) when markers vary, so flags are kept.
      const marker = spec.marker?.(i) ?? false;
      b.emit(p, i * spec.step, marker, i * spec.step, spec.marker === undefined || i === 0 || (spec.marker?.(i - 1) ?? false));
    }
    b.endTs = spec.count * spec.step;
    return finishMedia('test', [b]).tracks[0]!;
  }

  interface Got {
    at: number;
    msg: Buffer;
  }
  async function receiver(): Promise<{ sock: dgram.Socket; got: Got[]; port: number }> {
    const got: Got[] = [];
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    sock.on('message', (msg) => got.push({ at: performance.now(), msg }));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    return { sock, got, port: sock.address().port };
  }
  async function sender(port: number): Promise<dgram.Socket> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => s.connect(port, '127.0.0.1', () => r()));
    return s;
  }
  async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    return cond();
  }

  const PT = 97;
  const SSRC = 0xdeadbeef;
  const TS_BASE = 0xfffff000; // wraps during the tests
  class Owner implements EngineTrackOwner {
    done: number[] = [];
    engineDone(runId: number): void {
      this.done.push(runId);
    }
  }

  /** Checks one datagram against packet i of `p`, sent as seq/ts. */
  function exact(msg: Buffer, p: PacketTrack, i: number, seq: number, ts: number, marker: boolean): string | null {
    const len = p.len[i]!;
    if (msg.length !== 12 + len) return `size ${msg.length} != ${12 + len}`;
    if (msg[0] !== 0x80) return `byte 0 ${msg[0]}`;
    if (msg[1] !== ((marker ? 0x80 : 0) | PT)) return `marker/PT ${msg[1]}`;
    if (msg.readUInt16BE(2) !== (seq & 0xffff)) return `seq ${msg.readUInt16BE(2)} != ${seq & 0xffff}`;
    if (msg.readUInt32BE(4) !== ts >>> 0) return `ts ${msg.readUInt32BE(4)} != ${ts >>> 0}`;
    if (msg.readUInt32BE(8) !== SSRC) return `ssrc`;
    for (let k = 0; k < len; k++) if (msg[12 + k] !== byteOf(i, k)) return `payload byte ${k}`;
    return null;
  }

  function open(p: PacketTrack, fd: number, owner: Owner, opts: { speed?: number; loop?: boolean } = {}): number {
    return engine.create(owner, {
      fd,
      packets: p,
      payloadType: PT,
      ssrc: SSRC,
      clockRate: 1000,
      loopMs: p.endTs,
      speed: opts.speed ?? 1,
      loop: opts.loop ?? false,
      tsBase: TS_BASE,
      loopTicks: p.endTs,
    });
  }
  function closeSlot(slot: number): Promise<void> {
    return new Promise((resolve) => engine.close(slot, resolve));
  }

  t.test('paced: every packet exact, in order, at its time; completion reported once', async (t) => {
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => {
      rx.sock.close();
      tx.close();
    });
    const p = track({ count: 100, size: (i) => 20 + ((i * 53) % 1100), step: 4 });
    const owner = new Owner();
    const slot = open(p, socketFd(tx), owner);
    t.ok(slot >= 0, 'a slot');
    const start = performance.now() + 20;
    const runId = engine.run(slot, 0, 0, 65500, 0, 0, start, false);
    t.ok(await until(() => owner.done.length > 0), 'completion reported');
    t.same(owner.done, [runId], 'once, with the run id');
    t.ok(await until(() => rx.got.length >= 100), 'all arrived');
    t.equal(rx.got.length, 100, 'no more');
    const bad = rx.got.map((g, i) => exact(g.msg, p, i, 65500 + i, TS_BASE + i * 4, false)).filter((x) => x !== null);
    t.same(bad, [], 'bytes, seq (wrapping at 65535), ts (wrapping at 2^32), PT, SSRC');
    t.ok(rx.got[0]!.at >= start - 1, 'nothing before its time');
    const span = rx.got[99]!.at - rx.got[0]!.at;
    t.ok(span > 396 * 0.8 && span < 396 + 300, `paced over ${span.toFixed(0)} ms (396 ms of media)`);
    t.equal(engine.at(slot, C.packets), 100, 'packets counted');
    t.equal(
      engine.at(slot, C.octets),
      Array.from(p.len).reduce((a, b) => a + b, 0),
      'payload octets counted',
    );
    t.equal(engine.at(slot, C.lateCount), 100, 'a lateness sample per packet');
    t.equal(engine.at(slot, C.done), 1, 'done flag');
    t.equal(engine.at(slot, C.idx), 100, 'position at the end');
    await closeSlot(slot);
  });

  t.test('stop and run again: the position, sequence and timestamps continue; nothing is sent while stopped', async (t) => {
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => {
      rx.sock.close();
      tx.close();
    });
    const p = track({ count: 60, size: () => 160, step: 5 });
    const slot = open(p, socketFd(tx), new Owner());
    engine.run(slot, 0, 0, 100, 0, 0, performance.now(), false);
    await until(() => rx.got.length >= 20);
    engine.stop(slot, false);
    const idx = engine.at(slot, C.idx);
    const seq = engine.at(slot, C.seq);
    t.ok(idx >= 20 && idx < 60, `stopped at packet ${idx}`);
    t.equal(seq, (100 + idx) & 0xffff, 'next sequence number');
    t.equal(engine.at(slot, C.byteOff), idx * 160, 'byte offset of the position');
    await until(() => rx.got.length >= idx, 1000);
    await new Promise((r) => setTimeout(r, 100));
    t.equal(rx.got.length, idx, 'nothing after the stop was acknowledged');
    // Resume 1000 RTP ticks later in RTP time (a pause): the epoch moves the timestamps.
    engine.run(slot, idx, idx * 160, seq, 0, 1000, performance.now() - idx * 5, false);
    await until(() => rx.got.length >= 60);
    t.equal(rx.got.length, 60, 'the rest, once');
    const bad = rx.got.map((g, i) => exact(g.msg, p, i, 100 + i, TS_BASE + i * 5 + (i >= idx ? 1000 : 0), false)).filter((x) => x !== null);
    t.same(bad, [], 'exact across the stop');
    await closeSlot(slot);
  });

  t.test('a stop with finishFrame sends the rest of the frame in flight, then a seek runs from a keyframe', async (t) => {
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => {
      rx.sock.close();
      tx.close();
    });
    // Frames of 4 packets, all sent at the frame's time, one frame per 40 ms: the marker ends a frame.
    const b = new PacketTrackBuilder(1000);
    for (let i = 0; i < 100; i++) {
      const pl = new Uint8Array(1000);
      for (let k = 0; k < pl.length; k++) pl[k] = byteOf(i, k);
      const f = Math.floor(i / 4);
      b.emit(pl, f * 40, i % 4 === 3, f * 40, i % 4 === 0);
    }
    b.endTs = 25 * 40;
    const p = finishMedia('frames', [b]).tracks[0]!;
    const slot = open(p, socketFd(tx), new Owner());
    // Start "in the middle of a frame" as a stalled pacer would be: packet 1 of frame 0 next.
    engine.run(slot, 1, 1000, 7, 0, 0, performance.now() + 10000, true);
    engine.stop(slot, true);
    t.equal(engine.at(slot, C.idx), 4, 'the frame in flight was finished');
    t.equal(engine.at(slot, C.midFrame), 0, 'on a frame boundary');
    await until(() => rx.got.length >= 3);
    t.same(
      rx.got.map((g, i) => exact(g.msg, p, i + 1, 7 + i, TS_BASE, i === 2)),
      [null, null, null],
      'packets 1-3 of the frame, the last with the marker',
    );
    // Seek: frame 20 (packet 80), RTP epoch chosen by the caller.
    engine.run(slot, 80, p.offsetOf(80), 10, 0, -500, performance.now() - 20 * 40, false);
    await until(() => rx.got.length >= 3 + 20);
    const bad = rx.got.slice(3).map((g, j) => exact(g.msg, p, 80 + j, 10 + j, TS_BASE - 500 + Math.floor((80 + j) / 4) * 40, (80 + j) % 4 === 3));
    t.same(
      bad.filter((x) => x !== null),
      [],
      'the rest of the media from the keyframe, exact, marker on frame ends',
    );
    const gso = engine.at(slot, C.gso);
    t.ok(gso >= 1, `frames of same-size packets went as GSO sends (${gso}); the receiver saw each datagram alone`);
    await closeSlot(slot);
  });

  t.test('loop: timestamps advance by the loop length, sequence numbers continue', async (t) => {
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => {
      rx.sock.close();
      tx.close();
    });
    const p = track({ count: 10, size: (i) => 50 + i, step: 2 });
    const slot = open(p, socketFd(tx), new Owner(), { loop: true });
    engine.run(slot, 0, 0, 0, 0, 0, performance.now(), false);
    await until(() => rx.got.length >= 35);
    await closeSlot(slot);
    const n = rx.got.length;
    const bad = rx.got.map((g, k) => exact(g.msg, p, k % 10, k, TS_BASE + Math.floor(k / 10) * 20 + (k % 10) * 2, false)).filter((x) => x !== null);
    t.same(bad, [], `${n} packets over ${Math.floor(n / 10)} loops exact`);
    t.ok(engine.at(slot, C.loops) >= 3, 'loops counted');
  });

  t.test('"speed": "max": GSO sends, every datagram byte-exact and in order at the receiver', async (t) => {
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => {
      rx.sock.close();
      tx.close();
    });
    // Runs of one size with shorter packets in between (a shorter one ends a GSO run).
    const p = track({ count: 600, size: (i) => (i % 50 === 49 ? 300 : 1200), step: 20 });
    const owner = new Owner();
    const slot = open(p, socketFd(tx), owner, { speed: 0 });
    const before = engine.totals[E.syscalls]!;
    const t0 = performance.now();
    engine.run(slot, 0, 0, 1, 0, 0, t0, false);
    t.ok(await until(() => owner.done.length > 0), 'completion reported');
    const sendTime = performance.now() - t0;
    await until(() => rx.got.length >= 600);
    t.equal(rx.got.length, 600, 'every datagram, each on its own');
    const bad = rx.got.map((g, i) => exact(g.msg, p, i, 1 + i, TS_BASE + i * 20, false)).filter((x) => x !== null);
    t.same(bad, [], 'byte-exact and in order');
    const calls = engine.totals[E.syscalls]! - before;
    t.ok(engine.at(slot, C.gso) >= 10, `GSO sends: ${engine.at(slot, C.gso)}`);
    t.ok(calls < 60, `${calls} send calls for 600 packets`);
    t.ok(sendTime < 12000 * 0.5, `unpaced: ${sendTime.toFixed(0)} ms for 12 s of media`);
    await closeSlot(slot);
  });

  t.test('a socket whose GSO the kernel refuses falls back to one datagram per packet, exact', async (t) => {
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => {
      rx.sock.close();
      tx.close();
    });
    // SO_NO_CHECK (no UDP checksum) makes the kernel refuse UDP_SEGMENT with EINVAL. Node cannot
    // set it: python3 takes a duplicate of our descriptor (pidfd_getfd) and sets it on the socket.
    const py = [
      'import ctypes,os,socket,sys',
      'libc=ctypes.CDLL(None,use_errno=True)',
      'pidfd=libc.syscall(434,int(sys.argv[1]),0)',
      'fd=libc.syscall(438,pidfd,int(sys.argv[2]),0) if pidfd>=0 else -1',
      'fd<0 and sys.exit("pidfd: "+os.strerror(ctypes.get_errno()))',
      's=socket.socket(fileno=fd)',
      's.setsockopt(socket.SOL_SOCKET,11,1)',
      'print(s.getsockopt(socket.SOL_SOCKET,11))',
    ].join('\n');
    const set = spawnSync('python3', ['-c', py, String(process.pid), String(socketFd(tx))], { encoding: 'utf8' });
    t.equal(set.stdout.trim(), '1', `SO_NO_CHECK set on the sending socket ${set.stderr}`);
    const p = track({ count: 200, size: () => 1000, step: 20 });
    const owner = new Owner();
    const refusedBefore = engine.totals[E.gsoRefused]!;
    const slot = open(p, socketFd(tx), owner, { speed: 0 });
    engine.run(slot, 0, 0, 0, 0, 0, performance.now(), false);
    t.ok(await until(() => owner.done.length > 0), 'completion reported');
    await until(() => rx.got.length >= 200);
    t.equal(engine.totals[E.gsoRefused]! - refusedBefore, 1, 'the refusal was seen once, for this socket');
    t.equal(engine.at(slot, C.gso), 0, 'no GSO send went through');
    t.equal(engine.at(slot, C.errors), 0, 'and no packet was lost to it');
    t.equal(rx.got.length, 200, 'every packet arrived');
    const bad = rx.got.map((g, i) => exact(g.msg, p, i, i, TS_BASE + i * 20, false)).filter((x) => x !== null);
    t.same(bad, [], 'byte-exact and in order');
    await closeSlot(slot);
  });

  t.test('a send that fails is counted and the track goes on', async (t) => {
    // A connected socket whose peer is gone: ICMP port unreachable turns into ECONNREFUSED on a later send.
    const rx = await receiver();
    const tx = await sender(rx.port);
    let socketErrors = 0;
    tx.on('error', () => socketErrors++); // Node reports the ICMP error on its read side too
    rx.sock.close();
    t.teardown(() => tx.close());
    const p = track({ count: 30, size: () => 100, step: 2 });
    const owner = new Owner();
    const slot = open(p, socketFd(tx), owner);
    engine.run(slot, 0, 0, 0, 0, 0, performance.now(), false);
    t.ok(await until(() => owner.done.length > 0), 'the track still ends');
    t.equal(engine.at(slot, C.packets), 30, 'every packet counted as sent');
    t.ok(engine.at(slot, C.errors) + socketErrors > 0, `errors counted (engine ${engine.at(slot, C.errors)}, socket ${socketErrors})`);
    await closeSlot(slot);
  });

  t.test('a full command ring is an error, never a wait for the thread; the engine goes on after', async (t) => {
    const p = track({ count: 5, size: () => 10, step: 10 });
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => {
      rx.sock.close();
      tx.close();
    });
    const slot = open(p, socketFd(tx), new Owner());
    engine.wait(engine.hold(300));
    let pushed = 0;
    let error: (Error & { code?: string }) | null = null;
    for (let i = 0; i < 5000 && error === null; i++) {
      try {
        addon.engineCmd(OP_STOP, slot, 0);
        pushed++;
      } catch (err) {
        error = err as Error & { code?: string };
      }
    }
    t.ok(error !== null, `the push after ${pushed} queued commands failed`);
    t.equal(error?.code, 'OFFCAST_ENGINE_BUSY', 'with a clear code');
    t.match(error?.message, /ring is full/);
    t.ok(pushed >= 4000 && pushed <= 4096, 'at the ring size');
    // The wrapper waits (bounded) for the thread to drain, then succeeds.
    const started = performance.now();
    engine.stop(slot, false);
    t.ok(performance.now() - started < 2000, 'the wrapper waited for the drain, bounded');
    await closeSlot(slot);
  });

  t.test('close: once acknowledged, the thread never sends on the socket again', async (t) => {
    const rx = await receiver();
    const tx = await sender(rx.port);
    t.teardown(() => rx.sock.close());
    const p = track({ count: 50, size: () => 200, step: 1 });
    const slot = open(p, socketFd(tx), new Owner(), { loop: true });
    engine.run(slot, 0, 0, 0, 0, 0, performance.now(), false);
    await until(() => rx.got.length >= 100);
    let sent = -1;
    await new Promise<void>((resolve) =>
      engine.close(slot, () => {
        sent = engine.at(slot, C.packets);
        tx.close(); // what the pacer does: the socket closes only now
        resolve();
      }),
    );
    await until(() => rx.got.length >= sent, 1000);
    await new Promise((r) => setTimeout(r, 150));
    t.equal(rx.got.length, sent, `exactly the ${sent} packets counted before the acknowledgement arrived, none after`);
    const last = rx.got[rx.got.length - 1]!.msg.readUInt16BE(2);
    t.equal(last, (sent - 1) & 0xffff, 'the last one is the last counted');
  });

  t.test('slots are reused after close; a command for a bad slot or op is refused', async (t) => {
    const p = track({ count: 2, size: () => 10, step: 10 });
    const before = engine.tracks;
    const s1 = open(p, -1, new Owner());
    await closeSlot(s1);
    const s2 = open(p, -1, new Owner());
    t.equal(s2, s1, 'the freed slot serves the next track');
    await closeSlot(s2);
    t.equal(engine.tracks, before, 'no slot leaked');
    t.throws(() => addon.engineCmd(OP_STOP, 64), /slot out of range/);
    t.throws(() => addon.engineCmd(99, 0), /unknown op/);
    t.throws(() => addon.engineRelease(-1), /slot out of range/);
  });
}
