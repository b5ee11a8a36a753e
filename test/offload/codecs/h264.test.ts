import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { H264Depacketizer, MAX_ACCESS_UNIT_BYTES, MAX_NAL_BYTES, annexBFromNals } from '../../../offload/codecs/h264/depacketizer.js';
import { H264Payloader, fuFragmentCount } from '../../../offload/codecs/h264/payloader.js';
import type { DepacketizedFrame } from '../../../offload/codecs/types.js';
import { openAnnexB } from '../../../storage/h264/annexb.js';
import type { H264Params, Sample } from '../../../storage/types.js';
import { FIXTURES, run, skipNoFfmpeg } from '../../fixtures/h264/ffmpeg.js';

const dir = mkdtempSync(join(tmpdir(), 'offcast-h264rtp-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(1);
/** A NAL unit of `size` bytes: header (F=0, NRI, type), then random bytes. */
function nal(type: number, size: number, nri = 2): Uint8Array {
  const out = new Uint8Array(size);
  out[0] = (nri << 5) | type;
  for (let i = 1; i < size; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

const SPS = Uint8Array.from([0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9]);
const PPS = Uint8Array.from([0x68, 0xeb, 0xe3, 0xcb]);
const PARAMS: H264Params = { sps: [SPS], pps: [PPS], profileLevelId: '64001f', width: 320, height: 240 };

interface Packet {
  payload: Uint8Array;
  rtpTs: number;
  marker: boolean;
  sendTs: number;
  sync: boolean;
}

function sample(nals: Uint8Array[], o: Partial<Sample> = {}): Sample {
  return { track: 0, data: new Uint8Array(0), nals, pts: 0, dts: 0, duration: 3600, keyframe: false, ...o };
}

/** Packetizes samples; each payload copied (the payloader reuses its buffer). */
function packetize(samples: Sample[], payloadBytes: number, spread = 0, params = PARAMS): Packet[][] {
  const p = new H264Payloader(params, { payloadBytes, spread });
  const out: Packet[][] = [];
  for (const s of samples) {
    const aus: Packet[] = [];
    p.push(s, (payload, rtpTs, marker, sendTs, sync) => aus.push({ payload: payload.slice(), rtpTs, marker, sendTs, sync }));
    out.push(aus);
  }
  p.flush(() => t.fail('flush emits nothing'));
  return out;
}

function depacketize(packets: Packet[], d = new H264Depacketizer()): DepacketizedFrame[] {
  const frames: DepacketizedFrame[] = [];
  for (const p of packets) frames.push(...d.push(p.payload, p.rtpTs, p.marker, 0));
  frames.push(...d.flush());
  return frames;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const type = (b: Uint8Array): number => b[0]! & 0x1f;

t.test('round trips: single NAL, STAP-A, FU-A', async (tt) => {
  const cases: { name: string; nals: () => Uint8Array[]; keyframe?: boolean }[] = [
    { name: 'one NAL of 1 byte (header only)', nals: () => [nal(1, 1)] },
    { name: 'one NAL of 1200 bytes', nals: () => [nal(1, 1200)] },
    { name: 'one NAL of 1201 bytes', nals: () => [nal(1, 1201, 0)] },
    { name: 'one NAL of 300000 bytes', nals: () => [nal(1, 300000, 3)] },
    { name: 'small NALs together', nals: () => [nal(6, 30, 0), nal(1, 1), nal(1, 40, 1)] },
    { name: 'mixed sizes', nals: () => [nal(6, 100, 0), nal(1, 1200), nal(1, 1), nal(1, 1201), nal(1, 20), nal(1, 30), nal(1, 300000)] },
    { name: 'IDR with its parameter sets', nals: () => [SPS, PPS, nal(6, 300, 0), nal(5, 1201, 3)], keyframe: true },
  ];
  for (const budget of [500, 1400]) {
    for (const c of cases) {
      const nals = c.nals();
      const name = `${c.name}, budget ${budget}`;
      const [packets] = packetize([sample(nals, { pts: 1234, dts: 1000, keyframe: c.keyframe ?? false })], budget);
      const ps = packets!;
      tt.ok(
        ps.every((p) => p.payload.length <= budget && p.payload.length > 0),
        `${name}: every payload within the budget`,
      );
      tt.same(
        ps.map((p) => p.marker),
        ps.map((_, i) => i === ps.length - 1),
        `${name}: marker on the last packet only`,
      );
      tt.ok(
        ps.every((p) => p.rtpTs === 1234),
        `${name}: rtpTs = pts`,
      );
      tt.same(
        ps.map((p) => p.sync),
        ps.map((_, i) => (c.keyframe ?? false) && i === 0),
        `${name}: sync`,
      );
      // Structure, NAL by NAL: what each packet must be.
      let k = 0;
      let i = 0;
      while (i < nals.length) {
        const n = nals[i]!;
        if (n.length > budget) {
          const count = fuFragmentCount(n.length, budget);
          const frags = ps.slice(k, k + count);
          const sizes = frags.map((f) => f.payload.length - 2);
          const ok =
            frags.every((f) => type(f.payload) === 28 && (f.payload[0]! & 0xe0) === (n[0]! & 0xe0) && (f.payload[1]! & 0x1f) === type(n)) &&
            frags.every((f, j) => (f.payload[1]! & 0xe0) === ((j === 0 ? 0x80 : 0) | (j === count - 1 ? 0x40 : 0))) &&
            Math.max(...sizes) - Math.min(...sizes) <= 1 &&
            sizes.reduce((a, b) => a + b, 0) === n.length - 1;
          tt.ok(ok, `${name}: NAL ${i} (${n.length} bytes) as ${count} FU-A fragments: F/NRI, S/E/R, type, near-equal sizes`);
          k += count;
          i++;
          continue;
        }
        const p = ps[k]!.payload;
        if (type(p) === 24) {
          // STAP-A: F = OR, NRI = max of the aggregated NAL units.
          let o = 1;
          let f = 0;
          let nri = 0;
          let count = 0;
          while (o < p.length) {
            const size = (p[o]! << 8) | p[o + 1]!;
            const inner = p.subarray(o + 2, o + 2 + size);
            tt.equal(hex(inner), hex(nals[i + count]!), `${name}: STAP-A NAL ${count}`);
            f |= inner[0]! & 0x80;
            nri = Math.max(nri, inner[0]! & 0x60);
            o += 2 + size;
            count++;
          }
          tt.ok(count >= 2, `${name}: a STAP-A aggregates at least 2 NAL units`);
          tt.equal(p[0], f | nri | 24, `${name}: STAP-A header`);
          i += count;
        } else {
          tt.equal(hex(p), hex(n), `${name}: NAL ${i} as a single NAL unit packet`);
          i++;
        }
        k++;
      }
      tt.equal(k, ps.length, `${name}: no extra packets`);
      const frames = depacketize(ps);
      tt.equal(frames.length, 1, `${name}: one access unit`);
      tt.same(frames[0]!.nals!.map(hex), nals.map(hex), `${name}: NAL units reassembled byte-exact`);
      tt.equal(frames[0]!.rtpTs, 1234);
      tt.equal(frames[0]!.keyframe, c.keyframe ?? false, `${name}: keyframe`);
      tt.equal(frames[0]!.data.length, 0);
    }
  }
});

t.test('aggregation stays inside an access unit and packs greedily', async (tt) => {
  const a = [nal(6, 10), nal(1, 10)];
  const b = [nal(1, 10), nal(1, 10)];
  const aus = packetize([sample(a, { pts: 0 }), sample(b, { pts: 3600 })], 1400);
  tt.same(
    aus.map((au) => au.length),
    [1, 1],
    'one STAP-A per AU, never across',
  );
  tt.ok(aus.every((au) => type(au[0]!.payload) === 24 && au[0]!.marker));
  // Exactly full: 1 + (2 + 100) * 3 = 307 bytes fits a 307 budget; 306 splits 2 + 1.
  const three = [nal(1, 100), nal(1, 100), nal(1, 100)];
  tt.same(
    packetize([sample(three)], 307)[0]!.map((p) => p.payload.length),
    [307],
  );
  tt.same(
    packetize([sample(three)], 306)[0]!.map((p) => p.payload.length),
    [205, 100],
  );
});

t.test('SPS/PPS insertion before IDR, AUD and filler dropped', async (tt) => {
  const idr = nal(5, 3000, 3);
  const sei = nal(6, 20, 0);
  const cases: { name: string; nals: Uint8Array[]; keyframe: boolean; sent: Uint8Array[] }[] = [
    { name: 'IDR without parameter sets', nals: [idr], keyframe: true, sent: [SPS, PPS, idr] },
    { name: 'IDR after AUD and SEI', nals: [Uint8Array.from([0x09, 0xf0]), sei, idr], keyframe: true, sent: [SPS, PPS, sei, idr] },
    { name: 'IDR with both', nals: [SPS, PPS, idr], keyframe: true, sent: [SPS, PPS, idr] },
    { name: 'IDR with SPS only: PPS after it', nals: [SPS, idr], keyframe: true, sent: [SPS, PPS, idr] },
    { name: 'IDR with PPS only: SPS before it', nals: [PPS, idr], keyframe: true, sent: [SPS, PPS, idr] },
    { name: 'IDR slice though keyframe is false', nals: [idr], keyframe: false, sent: [SPS, PPS, idr] },
    { name: 'non-IDR: nothing inserted', nals: [nal(1, 50)], keyframe: false, sent: [] },
    { name: 'filler dropped', nals: [nal(1, 50), nal(12, 30, 0)], keyframe: false, sent: [] },
  ];
  for (const c of cases) {
    const sent = c.sent.length > 0 ? c.sent : c.nals.filter((n) => type(n) !== 12);
    const [ps] = packetize([sample(c.nals, { keyframe: c.keyframe })], 1400);
    const frames = depacketize(ps!);
    tt.same(frames[0]!.nals!.map(hex), sent.map(hex), c.name);
    tt.equal(
      frames[0]!.keyframe,
      sent.some((n) => type(n) === 5),
      `${c.name}: keyframe`,
    );
    tt.equal(
      ps![0]!.sync,
      sent.some((n) => type(n) === 5),
      `${c.name}: sync on the first packet`,
    );
  }
  const [ps] = packetize([sample([idr], { keyframe: true })], 1400);
  tt.equal(type(ps![0]!.payload), 24, 'the parameter sets go out together in one STAP-A');
  tt.same(
    ps!.map((p) => p.sync),
    [true, false, false, false],
    'sync only on that first packet',
  );
  // Several parameter sets in the stream's params: all inserted, in order.
  const sps2 = Uint8Array.from([0x67, 0x42, 0xc0, 0x1e, 0x01]);
  const pps2 = Uint8Array.from([0x68, 0xce, 0x01]);
  const [more] = packetize([sample([idr], { keyframe: true })], 1400, 0, { ...PARAMS, sps: [SPS, sps2], pps: [PPS, pps2] });
  tt.same(depacketize(more!)[0]!.nals!.map(hex), [SPS, sps2, PPS, pps2, idr].map(hex));
  // An AU of only an AUD sends nothing.
  tt.same(packetize([sample([Uint8Array.from([0x09, 0x10])])], 1400)[0], []);
});

t.test('send times spread over the frame interval, never decreasing', async (tt) => {
  const big = nal(5, 14000, 3); // 11 FU-A fragments at 1400 with the STAP-A of SPS/PPS: 12 packets
  for (const spread of [0, 0.5, 1]) {
    const [ps] = packetize([sample([big], { dts: 9000, pts: 9000, duration: 3600, keyframe: true })], 1400, spread);
    const n = ps!.length;
    tt.equal(n, 1 + fuFragmentCount(14000, 1400));
    tt.same(
      ps!.map((p) => p.sendTs),
      ps!.map((_, k) => 9000 + Math.floor((k * 3600 * spread) / n)),
      `spread ${spread}`,
    );
  }
  // A frame whose spread runs past the next frame's dts: the next frame waits.
  const aus = packetize([sample([nal(1, 5000)], { dts: 0, duration: 10000 }), sample([nal(1, 10)], { dts: 3000, duration: 3000 })], 1400, 1);
  const times = aus.flat().map((p) => p.sendTs);
  tt.same(times, [0, 2500, 5000, 7500, 7500], 'clamped to the last send time');
  tt.ok(
    times.every((ts, i) => i === 0 || ts >= times[i - 1]!),
    'never decreasing',
  );
});

t.test('B-frames: rtpTs follows pts, order preserved through the depacketizer', async (tt) => {
  const pts = [7200, 18000, 10800, 14400];
  const samples = pts.map((p, i) => sample([nal(i === 0 ? 5 : 1, 2000)], { pts: p, dts: i * 3600, keyframe: i === 0 }));
  const aus = packetize(samples, 1400);
  tt.same(
    aus.map((au) => au.map((p) => p.rtpTs)),
    pts.map((p, i) => Array<number>(aus[i]!.length).fill(p)),
  );
  const frames = depacketize(aus.flat());
  tt.same(
    frames.map((f) => f.rtpTs),
    pts,
    'one frame per AU, in decode order, with its pts',
  );
  tt.same(
    frames.map((f) => f.nals!.at(-1)!.length),
    [2000, 2000, 2000, 2000],
  );
});

t.test('payloader options', async (tt) => {
  for (const payloadBytes of [0, 2, 2.5, Number.NaN]) {
    tt.throws(() => new H264Payloader(PARAMS, { payloadBytes, spread: 0 }), RangeError, `payloadBytes ${payloadBytes}`);
  }
  for (const spread of [-0.1, 1.5, Number.NaN]) {
    tt.throws(() => new H264Payloader(PARAMS, { payloadBytes: 1400, spread }), RangeError, `spread ${spread}`);
  }
  // The smallest budget still works: 1 data byte per FU-A.
  const n = nal(1, 10);
  const [ps] = packetize([sample([n])], 3);
  tt.equal(ps!.length, 9);
  tt.same(depacketize(ps!)[0]!.nals!.map(hex), [hex(n)]);
  const p = new H264Payloader(PARAMS, { payloadBytes: 1400, spread: 0 });
  let emitted = 0;
  p.push(sample([new Uint8Array(0), nal(1, 5)]), () => emitted++);
  p.push({ ...sample([]), nals: undefined }, () => emitted++);
  tt.equal(emitted, 1, 'empty NAL units and samples without nals send nothing');
  tt.equal(p.emptySkipped, 1);
  tt.equal(p.clockRate, 90000);
});

// ---------------------------------------------------------------------------
// Depacketizer: loss and malformed input

function fuA(n: Uint8Array, budget: number): Uint8Array[] {
  const [ps] = packetize([sample([n])], budget);
  return ps!.map((p) => p.payload);
}

t.test('depacketizer: loss, duplicates, bad structures', async (tt) => {
  const a = nal(1, 3000);
  const b = nal(1, 100);
  const fa = fuA(a, 1000); // 4 fragments
  tt.equal(fa.length, 4);

  {
    // Loss in the middle of an FU-A: that NAL is dropped, the rest of the AU kept.
    const d = new H264Depacketizer();
    const out = [...d.push(fa[0]!, 1, false, 0), ...d.push(fa[1]!, 1, false, 0), ...d.push(fa[3]!, 1, false, 1), ...d.push(b, 1, true, 0)];
    tt.same(
      out.map((f) => f.nals!.map(hex)),
      [[hex(b)]],
      'loss mid FU-A',
    );
    tt.same(d.stats, { malformed: 0, dropped: 1 });
  }
  {
    // Duplicate start: the first (incomplete) one is dropped; the second completes.
    const d = new H264Depacketizer();
    const out = [fa[0]!, fa[1]!, fa[0]!, fa[1]!, fa[2]!, fa[3]!].flatMap((p, i) => d.push(p, 1, i === 5, 0));
    tt.same(
      out.map((f) => f.nals!.map(hex)),
      [[hex(a)]],
      'duplicate start',
    );
    tt.same(d.stats, { malformed: 0, dropped: 1 });
  }
  {
    // FU-A without its start: counted once, skipped to its end; the next NAL is fine.
    const d = new H264Depacketizer();
    const out = [fa[1]!, fa[2]!, fa[3]!, b].flatMap((p, i) => d.push(p, 1, i === 3, i === 0 ? 1 : 0));
    tt.same(
      out.map((f) => f.nals!.map(hex)),
      [[hex(b)]],
      'FU-A without start',
    );
    tt.same(d.stats, { malformed: 0, dropped: 1 });
  }
  {
    // Type change while a fragment is open.
    const other = fuA(nal(5, 3000, 3), 1000);
    const d = new H264Depacketizer();
    const out = [fa[0]!, fa[1]!, other[1]!, other[2]!, other[3]!].flatMap((p, i) => d.push(p, 1, i === 4, 0));
    tt.same(out, [], 'nothing complete');
    tt.same(d.stats, { malformed: 0, dropped: 2 }, 'the open NAL and the headless one');
  }
  {
    // A single NAL packet while an FU is open: the FU lost its end.
    const d = new H264Depacketizer();
    const out = [fa[0]!, b].flatMap((p, i) => d.push(p, 1, i === 1, 0));
    tt.same(
      out.map((f) => f.nals!.map(hex)),
      [[hex(b)]],
    );
    tt.same(d.stats, { malformed: 0, dropped: 1 });
  }
  {
    // Timestamp change without a marker: the AU is output; an open FU in it is dropped.
    const d = new H264Depacketizer();
    const first = [...d.push(b, 1, false, 0), ...d.push(fa[0]!, 1, false, 0)];
    tt.same(first, []);
    const second = d.push(b, 2, false, 0);
    tt.same(
      second.map((f) => [f.rtpTs, f.nals!.map(hex)]),
      [[1, [hex(b)]]],
      'AU at the timestamp change',
    );
    tt.same(
      d.flush().map((f) => [f.rtpTs, f.nals!.map(hex)]),
      [[2, [hex(b)]]],
      'flush outputs the rest',
    );
    tt.same(d.flush(), [], 'second flush: nothing');
    tt.same(d.stats, { malformed: 0, dropped: 1 });
  }
  {
    // Malformed payloads: counted, dropped, nothing else disturbed.
    const stap = (parts: number[]): Uint8Array => Uint8Array.from([0x78, ...parts]);
    const bad: { name: string; payload: Uint8Array }[] = [
      { name: 'empty', payload: new Uint8Array(0) },
      { name: 'STAP-A size overruns', payload: stap([0, 5, 0x61, 1]) },
      { name: 'STAP-A size cut', payload: stap([0, 2, 0x61, 1, 0]) },
      { name: 'STAP-A zero size', payload: stap([0, 0, 0, 1, 0x61]) },
      { name: 'STAP-A empty', payload: stap([]) },
      { name: 'FU-A too short', payload: Uint8Array.from([0x7c, 0x81]) },
      { name: 'FU-A with S and E', payload: Uint8Array.from([0x7c, 0xc1, 9]) },
      ...[0, 25, 26, 27, 29, 30, 31].map((ty) => ({ name: `type ${ty}`, payload: Uint8Array.from([0x60 | ty, 1, 2, 3]) })),
    ];
    for (const c of bad) {
      const d = new H264Depacketizer();
      const out = [...d.push(b, 7, false, 0), ...d.push(c.payload, 7, false, 0), ...d.push(b, 7, true, 0)];
      tt.same(
        out.map((f) => f.nals!.length),
        [2],
        `${c.name}: the good NAL units of the AU survive`,
      );
      tt.same(d.stats, { malformed: 1, dropped: 0 }, `${c.name}: counted as malformed`);
      tt.type(d.lastError, 'string');
    }
  }
  {
    // Outputs are copies: reusing the input buffer does not change them.
    const d = new H264Depacketizer();
    const buf = Uint8Array.from(b);
    const [frame] = d.push(buf, 1, true, 0);
    buf.fill(0);
    tt.equal(hex(frame!.nals![0]!), hex(b), 'single NAL copied');
    const st = packetize([sample([nal(6, 10), nal(1, 10)])], 1400)[0]![0]!.payload;
    const stCopy = Uint8Array.from(st);
    const [sf] = d.push(st, 2, true, 0);
    st.fill(0);
    tt.same(sf!.nals!.map(hex), [hex(stCopy.subarray(3, 13)), hex(stCopy.subarray(15, 25))], 'STAP-A NAL units copied');
  }
});

t.test('depacketizer: size caps', async (tt) => {
  const budget = 60000;
  {
    const d = new H264Depacketizer();
    const frames = depacketize(packetize([sample([nal(1, MAX_NAL_BYTES + 1), nal(1, 50)])], budget)[0]!, d);
    tt.same(
      frames.map((f) => f.nals!.map((n) => n.length)),
      [[50]],
      'NAL over 8 MiB dropped, the rest kept',
    );
    tt.same(d.stats, { malformed: 0, dropped: 1 });
  }
  {
    const d = new H264Depacketizer();
    const third = Math.floor(MAX_ACCESS_UNIT_BYTES / 3) + 10;
    const frames = depacketize(packetize([sample([nal(1, third), nal(1, third), nal(1, third)]), sample([nal(1, 10)], { pts: 1 })], budget).flat(), d);
    tt.same(
      frames.map((f) => f.nals!.map((n) => n.length)),
      [[10]],
      'AU over 16 MiB dropped whole; the next AU is fine',
    );
    tt.same(d.stats, { malformed: 0, dropped: 1 });
  }
  {
    const ok = depacketize(packetize([sample([nal(1, MAX_NAL_BYTES)])], budget)[0]!);
    tt.equal(ok[0]!.nals![0]!.length, MAX_NAL_BYTES, 'exactly 8 MiB is kept');
  }
});

t.test('depacketizer fuzz: never throws', async (tt) => {
  const r = prng(42);
  const valid = packetize(
    [sample([SPS, PPS, nal(5, 5000, 3)], { keyframe: true }), sample([nal(6, 40, 0), nal(1, 700), nal(1, 30)], { pts: 3600 })],
    500,
  ).flat();
  const d = new H264Depacketizer();
  let frames = 0;
  let nalsOut = 0;
  let emptyNal = false;
  const iterations = 3000;
  for (let i = 0; i < iterations; i++) {
    let payload: Uint8Array;
    const mode = r();
    if (mode < 0.3) {
      payload = Uint8Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256));
    } else {
      payload = valid[Math.floor(r() * valid.length)]!.payload.slice();
      const flips = Math.floor(r() * 4);
      for (let f = 0; f < flips && payload.length > 0; f++) payload[Math.floor(r() * payload.length)]! ^= 1 << Math.floor(r() * 8);
      if (r() < 0.2) payload = payload.subarray(0, Math.floor(r() * payload.length));
    }
    const out = d.push(payload, Math.floor(r() * 4), r() < 0.3, r() < 0.1 ? Math.floor(r() * 3) : 0);
    frames += out.length;
    for (const f of out) {
      nalsOut += f.nals!.length;
      if (f.nals!.some((n) => n.length === 0)) emptyNal = true;
    }
  }
  frames += d.flush().length;
  tt.ok(frames > 0 && nalsOut > 0, `${iterations} packets: ${frames} frames, ${nalsOut} NAL units, no exception`);
  tt.notOk(emptyNal, 'never an empty NAL unit');
  tt.ok(d.stats.malformed > 0 && d.stats.dropped > 0, `counted: ${JSON.stringify(d.stats)}`);
});

t.test('annexBFromNals', async (tt) => {
  tt.same([...annexBFromNals([Uint8Array.from([0x67, 1]), Uint8Array.from([0x68])])], [0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68]);
  tt.equal(annexBFromNals([]).length, 0);
});

// ---------------------------------------------------------------------------
// A real stream: reader -> payloader -> depacketizer

async function roundTrip(file: string, budget: number): Promise<{ samples: Sample[]; frames: DepacketizedFrame[]; params: H264Params }> {
  const reader = await openAnnexB(file);
  const params = reader.probe.tracks[0]!.h264!;
  const p = new H264Payloader(params, { payloadBytes: budget, spread: 0.5 });
  const d = new H264Depacketizer();
  const samples: Sample[] = [];
  const frames: DepacketizedFrame[] = [];
  let seqLost = 0;
  for await (const s of reader.samples()) {
    samples.push(s);
    p.push(s, (payload, rtpTs, marker) => {
      if (payload.length > budget) seqLost++;
      frames.push(...d.push(payload, rtpTs, marker, 0));
    });
  }
  frames.push(...d.flush());
  await reader.close();
  if (seqLost > 0) throw new Error(`${seqLost} payloads over budget`);
  return { samples, frames, params };
}

t.test('real streams survive packetization byte-exact', async (tt) => {
  for (const name of ['bframes.h264', 'crop-ntsc.h264', 'baseline.h264']) {
    const { samples, frames, params } = await roundTrip(join(FIXTURES, name), 1200);
    tt.equal(frames.length, samples.length, `${name}: one frame per sample`);
    tt.same(
      frames.map((f) => f.rtpTs),
      samples.map((s) => s.pts),
      `${name}: rtpTs = pts`,
    );
    tt.same(
      frames.map((f) => f.keyframe),
      samples.map((s) => s.keyframe),
      `${name}: keyframes`,
    );
    const expected = samples.map((s) => {
      const kept = s.nals!.filter((n) => type(n) !== 9 && type(n) !== 12);
      if (!s.keyframe) return kept;
      const out: Uint8Array[] = [];
      if (!kept.some((n) => type(n) === 7)) out.push(...params.sps);
      if (!kept.some((n) => type(n) === 8)) out.push(...params.pps);
      return [...out, ...kept];
    });
    tt.ok(
      frames.every((f, i) => f.nals!.length === expected[i]!.length && f.nals!.every((n, j) => hex(n) === hex(expected[i]![j]!))),
      `${name}: NAL units byte-exact (AUD dropped)`,
    );
  }
});

t.test('depacketized stream decodes like the original (ffmpeg framemd5)', { skip: skipNoFfmpeg }, async (tt) => {
  for (const name of ['bframes.h264', 'crop-ntsc.h264']) {
    const src = join(FIXTURES, name);
    const { frames } = await roundTrip(src, 500);
    const out = join(dir, `rt-${name}`);
    writeFileSync(out, annexBFromNals(frames.flatMap((f) => f.nals!)));
    const md5 = (file: string): string[] =>
      run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, '-f', 'framemd5', '-'])
        .split('\n')
        .filter((l) => /^\d/.test(l))
        .map((l) => l.split(',').at(-1)!.trim());
    const want = md5(src);
    tt.equal(want.length > 0 && want.length, frames.length, `${name}: ffmpeg decodes every frame`);
    tt.same(md5(out), want, `${name}: decoded frames identical`);
  }
});
