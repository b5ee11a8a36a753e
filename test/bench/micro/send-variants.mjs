#!/usr/bin/env node
// Micro-benchmarks behind the offload's egress design: which way of handing
// 1212-byte RTP packets to the kernel from Node goes fastest, measured at an
// independent receiver (rtprecv), and what the per-packet header work costs.
//
//   node test/bench/micro/send-variants.mjs [--seconds 2] [--rounds 2] [--iterations 300000] [--json]
//
// Needs the server built (dist/offload/rtp.js, `npx tsc -p .`) for the header
// writer the offload uses. Variants run in rounds (A B C … A B C …) so a
// noisy neighbour hurts them alike; the median round is reported.
import dgram from 'node:dgram';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import rtpjs from 'rtp.js';
import { startReceiver } from '../tools/drive.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const distRtp = path.resolve(here, '../../../dist/offload/rtp.js');
const { patchRtpHeader, writeRtpHeaderTemplate } = await import(pathToFileURL(distRtp).href);
const { RtpPacket } = rtpjs.packets;

const PORT_BASE = 10000;
const DESTS = 100;
const HOST = '127.0.0.1';
const PAYLOAD = 1200;
const SIZE = 12 + PAYLOAD;
const BURST = 256;
const PT = 96;

/**
 * @typedef {object} VariantResult
 * @property {string} name
 * @property {string} description
 * @property {number} senderPps      packets handed to send() per second
 * @property {number} receiverPps    RTP packets per second at rtprecv
 * @property {number} lost
 * @property {number} duplicates
 * @property {number | null} rcvbufErrors
 */

/** A 16 MiB stand-in for the packet cache: payload copies touch memory, not one hot line. */
const cache = Buffer.alloc(16 * 1024 * 1024);
for (let i = 0; i < cache.length; i += 4) cache.writeUInt32LE((i * 2654435761) >>> 0, i);
const cacheSpan = cache.length - PAYLOAD;

/**
 * A variant: `open()` prepares its sockets, `burst(n)` sends n packets, `close()`.
 * @typedef {object} Variant
 * @property {string} name
 * @property {string} description
 * @property {() => Promise<void>} open
 * @property {(n: number) => void} burst
 * @property {() => void} close
 */

/** @returns {Promise<dgram.Socket>} */
function connectedSocket(/** @type {number} */ port) {
  const s = dgram.createSocket('udp4');
  s.on('error', () => {});
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.connect(port, HOST, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/** @returns {Promise<dgram.Socket>} */
function unconnectedSocket() {
  const s = dgram.createSocket('udp4');
  s.on('error', () => {});
  return new Promise((resolve) => s.bind(0, HOST, () => resolve(s)));
}

/** A packet buffer with its header template written and a payload behind it. */
function packetBuffer(/** @type {number} */ ssrc) {
  const b = Buffer.allocUnsafeSlow(SIZE);
  writeRtpHeaderTemplate(b, PT, ssrc);
  cache.copy(b, 12, 0, PAYLOAD);
  return b;
}

/** @returns {Variant[]} */
function variants() {
  const seq = new Uint16Array(DESTS);
  let ts = 0;
  let off = 0;
  /** @type {dgram.Socket[]} */
  let sockets = [];
  /** @type {Buffer[]} */
  let bufs = [];
  const closeAll = () => {
    for (const s of sockets) s.close();
    sockets = [];
    bufs = [];
  };
  const nextOff = () => {
    off += PAYLOAD;
    if (off > cacheSpan) off = 0;
    return off;
  };
  return [
    {
      name: 'connected, 1 socket, send(buf)',
      description: 'baseline: one connected socket, one reused buffer, header patched, no payload copy (dgram-loop.mjs)',
      async open() {
        sockets = [await connectedSocket(PORT_BASE)];
        bufs = [packetBuffer(1)];
      },
      burst(n) {
        const s = /** @type {dgram.Socket} */ (sockets[0]);
        const b = /** @type {Buffer} */ (bufs[0]);
        for (let i = 0; i < n; i++) {
          patchRtpHeader(b, PT, false, seq[0], ts);
          s.send(b);
          seq[0]++;
          ts = (ts + 960) >>> 0;
        }
      },
      close: closeAll,
    },
    {
      name: 'unconnected, 1 socket, 1 destination',
      description:
        'send(buf, 0, len, port, host): the address is resolved per send and the send deferred to a nextTick, so buffers cannot be reused: a ring of 512',
      async open() {
        sockets = [await unconnectedSocket()];
        bufs = Array.from({ length: 512 }, () => packetBuffer(2));
      },
      burst(n) {
        const s = /** @type {dgram.Socket} */ (sockets[0]);
        for (let i = 0; i < n; i++) {
          const b = /** @type {Buffer} */ (bufs[(seq[0] ?? 0) & 511]);
          patchRtpHeader(b, PT, false, seq[0], ts);
          s.send(b, 0, SIZE, PORT_BASE, HOST);
          seq[0]++;
          ts = (ts + 960) >>> 0;
        }
      },
      close: closeAll,
    },
    {
      name: 'unconnected, 1 socket, 100 destinations',
      description: 'one socket for every stream, destinations round-robin (ring of 512 buffers)',
      async open() {
        sockets = [await unconnectedSocket()];
        bufs = Array.from({ length: 512 }, () => packetBuffer(3));
      },
      burst(n) {
        const s = /** @type {dgram.Socket} */ (sockets[0]);
        let d = 0;
        for (let i = 0; i < n; i++) {
          const k = /** @type {number} */ (seq[d]);
          const b = /** @type {Buffer} */ (bufs[(k * DESTS + d) & 511]);
          // Each destination is its own stream: its own SSRC and sequence.
          b.writeUInt32BE(3 + d, 8);
          patchRtpHeader(b, PT, false, k, ts);
          s.send(b, 0, SIZE, PORT_BASE + 2 * d, HOST);
          seq[d]++;
          if (++d === DESTS) {
            d = 0;
            ts = (ts + 960) >>> 0;
          }
        }
      },
      close: closeAll,
    },
    {
      name: 'connected, 100 sockets round-robin',
      description: 'one connected socket per stream (the offload design), one buffer each, no payload copy',
      async open() {
        sockets = await Promise.all(Array.from({ length: DESTS }, (_, d) => connectedSocket(PORT_BASE + 2 * d)));
        bufs = Array.from({ length: DESTS }, (_, d) => packetBuffer(1000 + d));
      },
      burst(n) {
        let d = 0;
        for (let i = 0; i < n; i++) {
          const b = /** @type {Buffer} */ (bufs[d]);
          patchRtpHeader(b, PT, false, seq[d], ts);
          /** @type {dgram.Socket} */ (sockets[d]).send(b);
          seq[d]++;
          if (++d === DESTS) {
            d = 0;
            ts = (ts + 960) >>> 0;
          }
        }
      },
      close: closeAll,
    },
    {
      name: 'send([header12, payloadView])',
      description: 'connected, 1 socket: a 12-byte header and a subarray view of the cache, gathered by the kernel (no copy of ours)',
      async open() {
        sockets = [await connectedSocket(PORT_BASE)];
        bufs = [packetBuffer(4).subarray(0, 12)];
      },
      burst(n) {
        const s = /** @type {dgram.Socket} */ (sockets[0]);
        const h = /** @type {Buffer} */ (bufs[0]);
        for (let i = 0; i < n; i++) {
          patchRtpHeader(h, PT, false, seq[0], ts);
          const o = nextOff();
          s.send([h, cache.subarray(o, o + PAYLOAD)]);
          seq[0]++;
          ts = (ts + 960) >>> 0;
        }
      },
      close: closeAll,
    },
    {
      name: 'copy into reused buffer, send(buf, 0, len)',
      description: 'connected, 1 socket: header patched, payload copied from the cache behind it',
      async open() {
        sockets = [await connectedSocket(PORT_BASE)];
        bufs = [packetBuffer(5)];
      },
      burst(n) {
        const s = /** @type {dgram.Socket} */ (sockets[0]);
        const b = /** @type {Buffer} */ (bufs[0]);
        for (let i = 0; i < n; i++) {
          patchRtpHeader(b, PT, false, seq[0], ts);
          const o = nextOff();
          cache.copy(b, 12, o, o + PAYLOAD);
          s.send(b, 0, SIZE);
          seq[0]++;
          ts = (ts + 960) >>> 0;
        }
      },
      close: closeAll,
    },
    {
      name: 'copy + getSendQueueCount() per packet',
      description: 'as above, checking the socket queue before rewriting the buffer (what PlayTrack.sendOne does)',
      async open() {
        sockets = [await connectedSocket(PORT_BASE)];
        bufs = [packetBuffer(6)];
      },
      burst(n) {
        const s = /** @type {dgram.Socket} */ (sockets[0]);
        const b = /** @type {Buffer} */ (bufs[0]);
        for (let i = 0; i < n; i++) {
          if (s.getSendQueueCount() > 0) return;
          patchRtpHeader(b, PT, false, seq[0], ts);
          const o = nextOff();
          cache.copy(b, 12, o, o + PAYLOAD);
          s.send(b, 0, SIZE);
          seq[0]++;
          ts = (ts + 960) >>> 0;
        }
      },
      close: closeAll,
    },
    {
      name: 'offload-like: 100 sockets, copy + queue check',
      description: '100 connected sockets round-robin, each with its own buffer: copy + getSendQueueCount (the play path at 100 sessions, unpaced)',
      async open() {
        sockets = await Promise.all(Array.from({ length: DESTS }, (_, d) => connectedSocket(PORT_BASE + 2 * d)));
        bufs = Array.from({ length: DESTS }, (_, d) => packetBuffer(2000 + d));
      },
      burst(n) {
        let d = 0;
        for (let i = 0; i < n; i++) {
          const s = /** @type {dgram.Socket} */ (sockets[d]);
          const b = /** @type {Buffer} */ (bufs[d]);
          if (s.getSendQueueCount() === 0) {
            patchRtpHeader(b, PT, false, seq[d], ts);
            const o = nextOff();
            cache.copy(b, 12, o, o + PAYLOAD);
            s.send(b, 0, SIZE);
            seq[d]++;
          }
          if (++d === DESTS) {
            d = 0;
            ts = (ts + 960) >>> 0;
          }
        }
      },
      close: closeAll,
    },
  ];
}

/**
 * Runs one variant for `seconds` against a fresh receiver.
 * @param {Variant} v
 * @param {number} seconds
 * @param {string | undefined} bin
 * @returns {Promise<VariantResult>}
 */
async function runVariant(v, seconds, bin) {
  const receiver = startReceiver({ portBase: PORT_BASE, count: DESTS, rcvbuf: 8 * 1024 * 1024, maxSeconds: seconds + 60, bin });
  await receiver.ready;
  await v.open();
  let sent = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await new Promise((resolve) => {
    const step = () => {
      v.burst(BURST);
      sent += BURST;
      if (performance.now() < end) setImmediate(step);
      else resolve(undefined);
    };
    setImmediate(step);
  });
  const secs = (performance.now() - started) / 1000;
  // Let deferred (nextTick) sends leave before closing.
  await new Promise((resolve) => setTimeout(resolve, 50));
  v.close();
  const r = await receiver.stop();
  return {
    name: v.name,
    description: v.description,
    senderPps: Math.round(sent / secs),
    receiverPps: Math.round(r.packetsPerSec),
    lost: r.lost,
    duplicates: r.duplicates,
    rcvbufErrors: r.rcvbufErrorsDelta,
  };
}

/**
 * Times `fn(i)` over `n` iterations, median of 3 repetitions, in ns per call.
 * @param {number} n
 * @param {(i: number) => void} fn
 */
function nsPer(n, fn) {
  const reps = [];
  for (let r = 0; r < 3; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    reps.push(Number(process.hrtime.bigint() - t0) / n);
  }
  reps.sort((a, b) => a - b);
  return Math.round(/** @type {number} */ (reps[1]) * 10) / 10;
}

/**
 * CPU cost per packet of the header work and of the queue check, without sending.
 * @param {number} n  iterations per timing (×10 for the cheap ones)
 */
async function headerCosts(n) {
  const out = Buffer.allocUnsafeSlow(SIZE);
  writeRtpHeaderTemplate(out, PT, 0x1234);
  const sock = await connectedSocket(PORT_BASE);
  let o = 0;
  const view = (/** @type {number} */ i) => {
    o = (i * PAYLOAD) % cacheSpan;
    return o;
  };
  const reused = new RtpPacket();
  reused.setPayloadType(PT);
  reused.setSsrc(0x1234);
  // rtp.js refuses to serialize a packet into the buffer it already lives in: alternate two.
  const outs = [out, Buffer.allocUnsafeSlow(SIZE)];
  const results = {
    rtpjsNewPacketNs: nsPer(n, (i) => {
      const p = new RtpPacket();
      p.setPayloadType(PT);
      p.setSsrc(0x1234);
      p.setMarker(false);
      p.setSequenceNumber(i & 0xffff);
      p.setTimestamp((i * 960) >>> 0);
      const at = view(i);
      p.setPayload(new DataView(cache.buffer, cache.byteOffset + at, PAYLOAD));
      p.serialize(out.buffer, out.byteOffset);
    }),
    rtpjsReusedPacketNs: nsPer(n, (i) => {
      reused.setSequenceNumber(i & 0xffff);
      reused.setTimestamp((i * 960) >>> 0);
      reused.setMarker(false);
      const at = view(i);
      reused.setPayload(new DataView(cache.buffer, cache.byteOffset + at, PAYLOAD));
      const target = /** @type {Buffer} */ (outs[i & 1]);
      reused.serialize(target.buffer, target.byteOffset);
    }),
    patchAndCopyNs: nsPer(n, (i) => {
      patchRtpHeader(out, PT, false, i & 0xffff, (i * 960) >>> 0);
      const at = view(i);
      cache.copy(out, 12, at, at + PAYLOAD);
    }),
    patchOnlyNs: nsPer(n * 10, (i) => {
      patchRtpHeader(out, PT, (i & 7) === 0, i & 0xffff, (i * 960) >>> 0);
    }),
    getSendQueueCountNs: nsPer(n * 10, () => {
      if (sock.getSendQueueCount() > 1e9) throw new Error('unreachable');
    }),
  };
  sock.close();
  // The two header writers must agree byte for byte, or the comparison is moot.
  patchRtpHeader(out, PT, true, 4242, 0xdeadbeef);
  cache.copy(out, 12, 0, PAYLOAD);
  const p = new RtpPacket();
  p.setPayloadType(PT);
  p.setSsrc(0x1234);
  p.setMarker(true);
  p.setSequenceNumber(4242);
  p.setTimestamp(0xdeadbeef);
  p.setPayload(new DataView(cache.buffer, cache.byteOffset, PAYLOAD));
  const viaRtpjs = Buffer.alloc(SIZE);
  p.serialize(viaRtpjs.buffer, viaRtpjs.byteOffset);
  return { ...results, identicalBytes: viaRtpjs.equals(out) };
}

/**
 * Runs every variant `rounds` times, interleaved, and the header costs.
 * @param {{seconds?: number, rounds?: number, iterations?: number, bin?: string}} [opts]
 */
export async function runSendVariants(opts = {}) {
  const seconds = opts.seconds ?? 2;
  const rounds = opts.rounds ?? 2;
  const list = variants();
  /** @type {VariantResult[][]} */
  const byVariant = list.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < list.length; i++) {
      /** @type {VariantResult[]} */ (byVariant[i]).push(await runVariant(/** @type {Variant} */ (list[i]), seconds, opts.bin));
    }
  }
  const baseRuns = byVariant[0] ?? [];
  const variantsOut = byVariant.map((runs) => {
    const sorted = [...runs].sort((a, b) => a.receiverPps - b.receiverPps);
    const mid = /** @type {VariantResult} */ (sorted[(sorted.length - 1) >> 1]);
    // Against the baseline of the same round (seconds apart), then the median: noise of the moment cancels.
    const ratios = runs.map((x, r) => x.receiverPps / (baseRuns[r]?.receiverPps ?? NaN)).sort((a, b) => a - b);
    const vsBaseline = Math.round((ratios[(ratios.length - 1) >> 1] ?? NaN) * 100) / 100;
    return { ...mid, rounds: runs.map((x) => x.receiverPps), vsBaseline };
  });
  return {
    seconds,
    rounds,
    packetSize: SIZE,
    variants: variantsOut,
    header: await headerCosts(opts.iterations ?? 300_000),
  };
}

/** @param {Awaited<ReturnType<typeof runSendVariants>>} res */
function printTable(res) {
  const lines = [`| variant | receiver pps | sender pps | vs baseline | lost |`, `| --- | ---: | ---: | ---: | ---: |`];
  for (const v of res.variants) lines.push(`| ${v.name} | ${v.receiverPps} | ${v.senderPps} | ${v.vsBaseline}× | ${v.lost} |`);
  lines.push('', '| per packet | ns |', '| --- | ---: |');
  for (const [k, v] of Object.entries(res.header)) lines.push(`| ${k} | ${v} |`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '2' },
      iterations: { type: 'string', default: '300000' },
      json: { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const iterations = Number(values.iterations);
  if (!(seconds > 0 && seconds <= 60) || !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10) || !(iterations >= 1000 && iterations <= 1e7)) {
    process.stderr.write('send-variants: --seconds must be in (0, 60], --rounds in 1..10, --iterations in 1000..1e7\n');
    process.exit(2);
  }
  const res = await runSendVariants({ seconds, rounds, iterations });
  if (values.json) process.stdout.write(`${JSON.stringify(res)}\n`);
  else printTable(res);
}
