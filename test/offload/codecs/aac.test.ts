import t from 'tap';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AacParams, Sample } from '../../../storage/types.js';
import type { DepacketizedFrame } from '../../../offload/codecs/types.js';
import { AacPayloader, aacMaxAusPerPacket, MAX_AU_BYTES } from '../../../offload/codecs/aac/payloader.js';
import { AacDepacketizer } from '../../../offload/codecs/aac/depacketizer.js';
import { openMp4 } from '../../../storage/mp4.js';
import { udpBound, waitFor } from '../../helpers/ready.js';
import { hasFfmpeg as hasFfmpegTool, skipUnless } from '../../helpers/tools.js';

const hasFfmpeg = hasFfmpegTool();

const LC_44K_STEREO: AacParams = { audioSpecificConfig: Uint8Array.of(0x12, 0x10), objectType: 2, sampleRate: 44100, channels: 2 };
const LC_48K_MONO: AacParams = { audioSpecificConfig: Uint8Array.of(0x11, 0x88), objectType: 2, sampleRate: 48000, channels: 1 };

interface Packet {
  payload: Uint8Array;
  rtpTs: number;
  marker: boolean;
  sendTs: number;
  sync: boolean;
}

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function au(size: number, seed: number): Uint8Array {
  const next = xorshift(seed);
  return Uint8Array.from({ length: size }, () => next() & 0xff);
}

/** Audio samples with consecutive timestamps (frameLength apart), starting at `start`. */
function samples(sizes: number[], start = 0, frameLength = 1024): Sample[] {
  return sizes.map((size, i) => ({
    track: 0,
    data: au(size, i + 1),
    pts: start + i * frameLength,
    dts: start + i * frameLength,
    duration: frameLength,
    keyframe: true,
  }));
}

function packetize(p: AacPayloader, input: Sample[]): Packet[] {
  const out: Packet[] = [];
  const emit = (payload: Uint8Array, rtpTs: number, marker: boolean, sendTs: number, sync: boolean): void => {
    out.push({ payload: payload.slice(), rtpTs, marker, sendTs, sync });
  };
  for (const s of input) p.push(s, emit);
  p.flush(emit);
  return out;
}

function depacketize(d: AacDepacketizer, packets: Packet[]): DepacketizedFrame[] {
  const frames: DepacketizedFrame[] = [];
  for (const p of packets) frames.push(...d.push(p.payload, p.rtpTs, p.marker, 0));
  frames.push(...d.flush());
  return frames;
}

t.test('AU header section: byte layout', async (t) => {
  const p = new AacPayloader(LC_44K_STEREO, { payloadBytes: 1400, spread: 0 });
  const input = samples([3, 2]);
  input[0]!.data = Uint8Array.of(1, 2, 3);
  input[1]!.data = Uint8Array.of(4, 5);
  const [pkt, ...rest] = packetize(p, input);
  t.equal(rest.length, 0);
  // 32 header bits | size 3 << 3 | size 2 << 3 | AUs.
  t.same([...pkt!.payload], [0x00, 0x20, 0x00, 0x18, 0x00, 0x10, 1, 2, 3, 4, 5]);
  t.match(pkt, { rtpTs: 0, marker: true, sendTs: 0, sync: true });

  // 1000 = 0x3e8 -> 0x3e8 << 3 = 0x1f40; the largest AU-size 8191 -> 0xfff8.
  const big = new AacPayloader(LC_44K_STEREO, { payloadBytes: 9000, spread: 0 });
  const [one] = packetize(big, samples([1000], 512));
  t.same([...one!.payload.subarray(0, 4)], [0x00, 0x10, 0x1f, 0x40]);
  t.match(one, { rtpTs: 512, sendTs: 512 });
  const [max] = packetize(big, samples([MAX_AU_BYTES]));
  t.same([...max!.payload.subarray(0, 4)], [0x00, 0x10, 0xff, 0xf8]);
});

t.test('AUs per packet: 100 ms of audio, at most 5', async (t) => {
  t.equal(aacMaxAusPerPacket(44100, 1024), 4);
  t.equal(aacMaxAusPerPacket(48000, 1024), 4);
  t.equal(aacMaxAusPerPacket(96000, 1024), 5);
  t.equal(aacMaxAusPerPacket(8000, 1024), 1);
  t.equal(aacMaxAusPerPacket(48000, 480), 5);
  const p = new AacPayloader(LC_48K_MONO, { payloadBytes: 1400, spread: 0 });
  const packets = packetize(p, samples(Array(10).fill(100)));
  t.same(
    packets.map((x) => ((x.payload[0]! << 8) | x.payload[1]!) / 16),
    [4, 4, 2],
  );
  t.same(
    packets.map((x) => x.rtpTs),
    [0, 4096, 8192],
  );
  const ld = new AacPayloader({ ...LC_48K_MONO, audioSpecificConfig: Uint8Array.of(0xb9, 0x8c) }, { payloadBytes: 1400, spread: 0 });
  t.equal(ld.frameLength, 480, 'frame length from the AudioSpecificConfig');
  const garbage = new AacPayloader({ ...LC_48K_MONO, audioSpecificConfig: new Uint8Array(0) }, { payloadBytes: 1400, spread: 0 });
  t.equal(garbage.frameLength, 1024, 'unparsable config: 1024');
});

t.test('payloader: budget, gaps, fragmentation, drops', async (t) => {
  const p = new AacPayloader(LC_44K_STEREO, { payloadBytes: 500, spread: 0 });
  // 2 + 2*2 + 240 + 250 = 496 fits; a third AU does not.
  let packets = packetize(p, samples([240, 250, 10]));
  t.same(
    packets.map((x) => x.payload.length),
    [496, 2 + 2 + 10],
  );
  // A pts jump starts a new packet.
  const gap = samples([10, 10, 10]);
  gap[2]!.pts = gap[2]!.dts = 5000;
  packets = packetize(p, gap);
  t.same(
    packets.map((x) => [x.rtpTs, x.payload.length]),
    [
      [0, 2 + 4 + 20],
      [5000, 2 + 2 + 10],
    ],
  );
  // 1200 bytes over a 500-byte budget: 3 fragments of 496 + 496 + 208, each with the full size.
  packets = packetize(p, samples([20, 1200, 20]));
  t.same(
    packets.map((x) => [x.payload.length, x.marker, x.rtpTs, x.sendTs]),
    [
      [2 + 2 + 20, true, 0, 0],
      [500, false, 1024, 1024],
      [500, false, 1024, 1024],
      [4 + 208, true, 1024, 1024],
      [2 + 2 + 20, true, 2048, 2048],
    ],
  );
  for (const x of packets.slice(1, 4)) t.same([...x.payload.subarray(0, 4)], [0x00, 0x10, (1200 << 3) >> 8, (1200 << 3) & 0xff]);
  t.ok(packets.every((x) => x.sync));
  // Oversized and empty AUs are dropped and counted.
  const drops = new AacPayloader(LC_44K_STEREO, { payloadBytes: 1400, spread: 0 });
  packets = packetize(drops, samples([MAX_AU_BYTES + 1, 0, 5]));
  t.equal(drops.dropped, 2);
  t.equal(packets.length, 1);
  t.throws(() => new AacPayloader(LC_44K_STEREO, { payloadBytes: 4, spread: 0 }), RangeError);
  t.throws(() => new AacPayloader({ ...LC_44K_STEREO, sampleRate: 0 }, { payloadBytes: 1400, spread: 0 }), RangeError);
});

t.test('round trips payloader -> depacketizer', async (t) => {
  const next = xorshift(99);
  const tables: [string, number[]][] = [
    ['small AUs', Array(23).fill(7)],
    ['typical AUs', Array.from({ length: 60 }, () => 150 + (next() % 400))],
    ['large AUs', Array.from({ length: 20 }, () => 400 + (next() % 3000))],
    ['mixed with huge', [5, 6000, 300, MAX_AU_BYTES, 1, 1399, 1400, 1401, 496, 497, 498]],
  ];
  for (const budget of [500, 1400]) {
    for (const [name, sizes] of tables) {
      for (const start of [0, 2 ** 32 - 3000]) {
        const input = samples(sizes, start);
        const p = new AacPayloader(LC_44K_STEREO, { payloadBytes: budget, spread: 0 });
        const packets = packetize(p, input);
        t.ok(
          packets.every((x) => x.payload.length <= budget),
          `${name}/${budget}: within budget`,
        );
        let lastSend = -1;
        t.ok(
          packets.every((x) => {
            const ok = x.sendTs >= lastSend;
            lastSend = x.sendTs;
            return ok;
          }),
          `${name}/${budget}: sendTs never decreases`,
        );
        const d = new AacDepacketizer({ sizeLength: 13, indexLength: 3, indexDeltaLength: 3 });
        const frames = depacketize(
          d,
          packets.map((x) => ({ ...x, rtpTs: x.rtpTs >>> 0 })),
        );
        t.same(d.stats, { malformed: 0, dropped: 0 }, `${name}/${budget}/${start}: clean`);
        t.equal(frames.length, input.length, `${name}/${budget}/${start}: every AU`);
        t.ok(
          frames.every((f, i) => f.rtpTs === input[i]!.pts >>> 0 && f.keyframe && Buffer.compare(f.data, input[i]!.data) === 0),
          `${name}/${budget}/${start}: bytes and timestamps`,
        );
      }
    }
  }
});

t.test('depacketizer: frames are copies', async (t) => {
  const d = new AacDepacketizer();
  const payload = Uint8Array.of(0x00, 0x10, 0x00, 0x10, 7, 8);
  const [f] = d.push(payload, 100, true, 0);
  payload[4] = 0;
  t.same([...f!.data], [7, 8]);
});

t.test('depacketizer: index deltas and AAC-lbr', async (t) => {
  // Two AUs, the second with AU-Index-delta 1 (one AU interleaved elsewhere).
  const d = new AacDepacketizer();
  const frames = d.push(Uint8Array.of(0x00, 0x20, 0x00, 0x08, 0x00, 0x09, 0xaa, 0xbb), 1000, true, 0);
  t.same(
    frames.map((f) => [f.rtpTs, [...f.data]]),
    [
      [1000, [0xaa]],
      [1000 + 2 * 1024, [0xbb]],
    ],
  );
  // AAC-lbr: 8-bit headers (6-bit size, 2-bit index), frame length 960.
  const lbr = new AacDepacketizer({ sizeLength: 6, indexLength: 2, indexDeltaLength: 2, frameLength: 960 });
  const two = lbr.push(Uint8Array.of(0x00, 0x10, 2 << 2, 1 << 2, 1, 2, 3), 0xffffffff, true, 0);
  t.same(
    two.map((f) => [f.rtpTs, [...f.data]]),
    [
      [0xffffffff, [1, 2]],
      [959, [3]],
    ],
    'wraps at 2^32',
  );
  t.same(lbr.stats, { malformed: 0, dropped: 0 });
  t.throws(() => new AacDepacketizer({ sizeLength: 0 }), RangeError);
  t.throws(() => new AacDepacketizer({ indexLength: 17 }), RangeError);
  t.throws(() => new AacDepacketizer({ frameLength: 0 }), RangeError);
});

t.test('depacketizer: malformed payloads and gaps', async (t) => {
  const cases: [string, number[], { malformed: number; dropped: number }][] = [
    ['empty', [], { malformed: 1, dropped: 0 }],
    ['one byte', [0x00], { malformed: 1, dropped: 0 }],
    ['no AU headers', [0x00, 0x00, 1, 2], { malformed: 1, dropped: 0 }],
    ['headers beyond payload', [0x00, 0x30, 0x00, 0x08], { malformed: 1, dropped: 0 }],
    ['partial header bits', [0x00, 0x18, 0x00, 0x08, 0x00, 1], { malformed: 1, dropped: 0 }],
    ['two AUs larger than the payload', [0x00, 0x20, 0x00, 0x10, 0x00, 0x10, 1, 2, 3], { malformed: 1, dropped: 0 }],
  ];
  for (const [name, bytes, stats] of cases) {
    const d = new AacDepacketizer();
    t.same(d.push(Uint8Array.from(bytes), 0, true, 0), [], name);
    t.same(d.stats, stats, name);
  }

  const frag = (size: number, chunk: number[]): Uint8Array => Uint8Array.from([0x00, 0x10, size >> 5, (size & 0x1f) << 3, ...chunk]);
  // A gap inside a fragmented AU: the partial AU is dropped; the next AU is fine.
  let d = new AacDepacketizer();
  t.same(d.push(frag(4, [1, 2]), 10, false, 0), []);
  t.same(d.push(frag(4, [3, 4]), 10, true, 1), [], 'gap before the last fragment');
  t.same(d.stats, { malformed: 0, dropped: 1 });
  t.same(
    d.push(frag(2, [5, 6]), 11, true, 0).map((f) => [...f.data]),
    [[5, 6]],
  );

  // The last fragment is lost without a gap flag: the next AU (new timestamp) drops it.
  d = new AacDepacketizer();
  d.push(frag(4, [1, 2]), 10, false, 0);
  t.same(
    d.push(frag(2, [5, 6]), 11, true, 0).map((f) => [f.rtpTs, [...f.data]]),
    [[11, [5, 6]]],
  );
  t.same(d.stats, { malformed: 0, dropped: 1 });

  // A multi-AU packet while reassembling drops the partial AU.
  d = new AacDepacketizer();
  d.push(frag(4, [1, 2]), 10, false, 0);
  t.equal(d.push(Uint8Array.of(0x00, 0x20, 0x00, 0x08, 0x00, 0x08, 7, 8), 11, true, 0).length, 2);
  t.same(d.stats, { malformed: 0, dropped: 1 });

  // Fragments adding up to more than the AU size.
  d = new AacDepacketizer();
  d.push(frag(4, [1, 2, 3]), 10, false, 0);
  t.same(d.push(frag(4, [4, 5]), 10, true, 0), []);
  t.same(d.stats, { malformed: 1, dropped: 1 });

  // Starting mid-AU (first fragment lost): the marked last fragment leaves it short.
  d = new AacDepacketizer();
  d.push(frag(6, [3, 4]), 10, false, 1);
  t.same(d.push(frag(6, [5, 6]), 10, true, 0), []);
  t.same(d.stats, { malformed: 0, dropped: 1 });

  // A marker on the first fragment is tolerated.
  d = new AacDepacketizer();
  t.same(d.push(frag(4, [1, 2]), 10, true, 0), []);
  t.same(
    d.push(frag(4, [3, 4]), 10, true, 0).map((f) => [...f.data]),
    [[1, 2, 3, 4]],
  );

  // flush with a partial AU counts it.
  d = new AacDepacketizer();
  d.push(frag(4, [1, 2]), 10, false, 0);
  t.same(d.flush(), []);
  t.same(d.stats, { malformed: 0, dropped: 1 });
});

t.test('depacketizer fuzz: never throws, bounded output', async (t) => {
  const next = xorshift(20240601);
  const valid = packetize(new AacPayloader(LC_44K_STEREO, { payloadBytes: 300, spread: 0 }), samples([50, 700, 20, 20, 1000, 3]));
  let frames = 0;
  for (let round = 0; round < 20000; round++) {
    const d = new AacDepacketizer({ sizeLength: 1 + (next() % 16), indexLength: next() % 4, indexDeltaLength: next() % 4 });
    const count = 1 + (next() % 6);
    for (let k = 0; k < count; k++) {
      let payload: Uint8Array;
      if (next() % 2 === 0) {
        payload = Uint8Array.from({ length: next() % 40 }, () => next() & 0xff);
      } else {
        payload = valid[next() % valid.length]!.payload.slice();
        for (let m = next() % 4; m > 0 && payload.length > 0; m--) payload[next() % payload.length] = next() & 0xff;
        if (next() % 4 === 0) payload = payload.subarray(0, next() % (payload.length + 1));
      }
      const out = d.push(payload, next(), next() % 2 === 0, next() % 3 === 0 ? 1 : 0);
      for (const f of out) {
        if (f.data.length > 8191 || f.rtpTs < 0 || f.rtpTs > 0xffffffff) t.fail(`round ${round}: bad frame`);
      }
      frames += out.length;
    }
    d.flush();
  }
  t.pass(`20000 rounds, ${frames} frames, no throw`);
});

t.test("depacketizes ffmpeg's RTP (AAC-hbr, several AUs per packet)", { skip: skipUnless(hasFfmpeg, 'ffmpeg not installed') }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'offcast-aacrtp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mp4 = join(dir, 'a.mp4');
  execFileSync('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000:duration=2',
    '-c:a',
    'aac',
    '-ac',
    '2',
    mp4,
  ]);
  const reader = await openMp4(mp4);
  t.teardown(() => reader.close());
  const source: Sample[] = [];
  for await (const s of reader.samples()) source.push(s);

  const socket = createSocket('udp4');
  t.teardown(() => socket.close());
  const frames: DepacketizedFrame[] = [];
  const d = new AacDepacketizer({ sizeLength: 13, indexLength: 3, indexDeltaLength: 3, frameLength: 1024 });
  let lastSeq = -1;
  let packets = 0;
  let sentinelSeen: () => void = () => {};
  const sentinel = new Promise<void>((resolve) => {
    sentinelSeen = resolve;
  });
  socket.on('message', (msg: Buffer) => {
    if (msg.length === 1) return sentinelSeen();
    // Fixed 12-byte RTP header (ffmpeg sends no CSRC or extension).
    const marker = (msg[1]! & 0x80) !== 0;
    const seq = msg.readUInt16BE(2);
    const ts = msg.readUInt32BE(4);
    const lost = lastSeq < 0 ? 0 : (seq - lastSeq - 1) & 0xffff;
    lastSeq = seq;
    packets++;
    frames.push(...d.push(new Uint8Array(msg.subarray(12)), ts, marker, lost));
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve, reject) => {
    execFile(
      'ffmpeg',
      ['-hide_banner', '-loglevel', 'error', '-i', mp4, '-map', '0:a', '-c', 'copy', '-f', 'rtp', `rtp://127.0.0.1:${port}`],
      { timeout: 30000 },
      (err) => (err ? reject(err) : resolve()),
    );
  });
  // ffmpeg has exited: its datagrams are already queued on our socket, ahead of this one.
  const poke = createSocket('udp4');
  poke.send(Uint8Array.of(0), port, '127.0.0.1', () => poke.close());
  await sentinel;
  d.flush();
  // ffmpeg's muxer does not send the AUs still held for its last packet (up to 4).
  t.ok(frames.length <= source.length && frames.length >= source.length - 4, `${frames.length} of ${source.length} AUs arrived`);
  t.ok(packets < source.length, `several AUs per packet (${packets} packets for ${source.length} AUs)`);
  t.same(d.stats, { malformed: 0, dropped: 0 });
  t.ok(
    frames.every((f, i) => Buffer.compare(f.data, source[i]!.data) === 0),
    'bytes equal the MP4 samples',
  );
  t.ok(
    frames.every((f, i) => (f.rtpTs - frames[0]!.rtpTs) >>> 0 === source[i]!.pts - source[0]!.pts),
    'timestamps 1024 apart',
  );
});

async function freeEvenPort(): Promise<number> {
  for (;;) {
    const s = createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    const port = s.address().port;
    s.close();
    if (port % 2 === 0 && port < 65534) return port;
  }
}

t.test(
  'ffmpeg demuxes our packets (aggregated and fragmented) back to the source AUs',
  {
    skip: skipUnless(hasFfmpeg, 'ffmpeg not installed') || skipUnless(existsSync('/proc/net/udp'), 'needs /proc/net/udp to see when ffmpeg listens'),
  },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'offcast-aacff-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const mp4 = join(dir, 'a.mp4');
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=48000:duration=2',
      '-c:a',
      'aac',
      '-b:a',
      '256k',
      '-ac',
      '2',
      mp4,
    ]);
    const reader = await openMp4(mp4);
    t.teardown(() => reader.close());
    const track = reader.probe.tracks[0]!;
    const source: Sample[] = [];
    for await (const s of reader.samples()) source.push(s);
    const sourceMd5 = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', mp4, '-c', 'copy', '-f', 'framemd5', '-'])
      .toString()
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.split(',')[5]!.trim());
    t.equal(sourceMd5.length, source.length);

    for (const budget of [200, 1400]) {
      const port = await freeEvenPort();
      // RFC 3640 AAC-hbr as ffmpeg writes it (the product's own fmtp is tested in test/server/sdp.test.ts).
      const fmtp = `streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=${Buffer.from(track.aac!.audioSpecificConfig).toString('hex')}`;
      const sdp = join(dir, `in-${budget}.sdp`);
      writeFileSync(
        sdp,
        `v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=aac\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n` +
          `m=audio ${port} RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/${track.clockRate}/${track.channels}\r\na=fmtp:96 ${fmtp}\r\n`,
      );
      const out = join(dir, `out-${budget}.md5`);
      const ff = spawn(
        'ffmpeg',
        [
          '-hide_banner',
          '-loglevel',
          'error',
          '-y',
          '-protocol_whitelist',
          'file,udp,rtp',
          '-analyzeduration',
          '0',
          '-i',
          sdp,
          '-c',
          'copy',
          '-f',
          'framemd5',
          '-flush_packets',
          '1',
          out,
        ],
        { stdio: 'ignore' },
      );
      const exited = new Promise((resolve) => ff.on('exit', resolve));
      if (!(await waitFor(() => udpBound(port), 15000))) t.fail(`ffmpeg does not listen on ${port}: ${readFileSync('/proc/net/udp', 'utf8')}`);

      const packets = packetize(new AacPayloader(track.aac!, { payloadBytes: budget, spread: 0 }), source);
      const socket = createSocket('udp4');
      for (let i = 0; i < packets.length; i++) {
        const p = packets[i]!;
        const rtp = new Uint8Array(12 + p.payload.length);
        const v = new DataView(rtp.buffer);
        v.setUint8(0, 0x80);
        v.setUint8(1, (p.marker ? 0x80 : 0) | 96);
        v.setUint16(2, i);
        v.setUint32(4, (p.rtpTs + 90000) >>> 0);
        v.setUint32(8, 0x0ffca57);
        rtp.set(p.payload, 12);
        await new Promise<void>((resolve) => socket.send(rtp, port, '127.0.0.1', () => resolve()));
        // Small bursts keep ffmpeg's socket buffer from overflowing.
        if (i % 16 === 15) await new Promise((r) => setImmediate(r));
      }
      socket.close();
      const lines = (): string[] =>
        existsSync(out)
          ? readFileSync(out, 'utf8')
              .split('\n')
              .filter((l) => l !== '' && !l.startsWith('#'))
          : [];
      // ffmpeg may hold the last packets in its reorder queue: allow a few missing.
      await waitFor(() => lines().length >= source.length - 5, 15000);
      // framemd5 flushes every packet (-flush_packets 1): what is in the file is final.
      // (SIGINT would leave ffmpeg waiting ~10 s in its UDP read.)
      const got = lines().map((l) => l.split(',')[5]!.trim());
      ff.kill('SIGKILL');
      await exited;
      t.ok(
        got.length >= source.length - 5 && got.length <= source.length,
        `budget ${budget}: ffmpeg got ${got.length} of ${source.length} AUs (${packets.length} packets)`,
      );
      t.same(got, sourceMd5.slice(0, got.length), `budget ${budget}: every AU ffmpeg demuxed equals the source`);
    }
  },
);
