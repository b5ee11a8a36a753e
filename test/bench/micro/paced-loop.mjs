#!/usr/bin/env node
// The plain Node pacing baseline: N streams of RTP packets at R packets/s each,
// sent from one thread on a 1 ms timer, nothing else (no cache, no wheel, no
// RTCP, no control plane). What the offload's paced path costs beyond it is
// the offload's own overhead; what this costs is Node's and the kernel's.
//
//   node test/bench/micro/paced-loop.mjs --port-base 10000 --streams 2000
//        [--pps-per-stream 50] [--seconds 10] [--size 172] [--sockets per-stream|shared]
//        [--host 127.0.0.1]
//
// Stream i goes to port-base + 2 i, SSRC 0x0ffcb000 + i. RTP timestamps follow
// the schedule (48 kHz), so rtprecv measures lateness as for the server.
// Prints one JSON line: {sent, seconds, pps, cpuPct, lagMaxMs, sockets}.
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    'port-base': { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    streams: { type: 'string', default: '1000' },
    'pps-per-stream': { type: 'string', default: '50' },
    seconds: { type: 'string', default: '10' },
    size: { type: 'string', default: '172' },
    sockets: { type: 'string', default: 'per-stream' },
  },
});
const portBase = Number(values['port-base']);
const host = String(values.host);
const streams = Number(values.streams);
const perStream = Number(values['pps-per-stream']);
const seconds = Number(values.seconds);
const size = Number(values.size);
const shared = values.sockets === 'shared';
/** @param {string} msg */
function fail(msg) {
  process.stderr.write(`paced-loop: ${msg}\n`);
  process.exit(2);
}
if (!Number.isInteger(portBase) || portBase < 1024 || portBase + 2 * (streams - 1) > 65535) fail('--port-base with --streams must fit in 1024..65535');
if (!/^127\.\d+\.\d+\.\d+$/.test(host)) fail(`--host ${host} is outside 127.0.0.0/8; refusing`);
if (!Number.isInteger(streams) || streams < 1 || streams > 10000) fail('--streams must be 1..10000');
if (!(perStream > 0 && perStream <= 1000)) fail('--pps-per-stream must be in (0, 1000]');
if (!(seconds > 0 && seconds <= 600)) fail('--seconds must be in (0, 600]');
if (!Number.isInteger(size) || size < 12 || size > 1500) fail('--size must be 12..1500');
if (values.sockets !== 'shared' && values.sockets !== 'per-stream') fail('--sockets is per-stream or shared');

const CLOCK = 48000;
/** @type {dgram.Socket[]} */
const sockets = [];
/** @type {Buffer[]} */
const bufs = [];
const seq = new Uint16Array(streams);
for (let i = 0; i < streams; i++) {
  const b = Buffer.alloc(size);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt32BE((0x0ffcb000 + i) >>> 0, 8);
  for (let k = 12; k < size; k++) b[k] = k & 0xff;
  bufs.push(b);
}
if (shared) {
  const s = dgram.createSocket('udp4');
  s.on('error', () => {});
  await new Promise((resolve) => s.bind(0, host, () => resolve(undefined)));
  sockets.push(s);
} else {
  for (let i = 0; i < streams; i++) {
    const s = dgram.createSocket('udp4');
    s.on('error', () => {});
    await new Promise((resolve) => s.connect(portBase + 2 * i, host, () => resolve(undefined)));
    sockets.push(s);
  }
}

// Global slot k belongs to stream k % streams and is due at k / rate seconds (as rtpsend schedules it).
const rate = streams * perStream;
const totalSlots = Math.floor(rate * seconds);
let k = 0;
let lagMaxMs = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();

function tick() {
  const now = performance.now() - t0;
  while (k < totalSlots) {
    const dueMs = (k / rate) * 1000;
    if (dueMs > now) break;
    if (now - dueMs > lagMaxMs) lagMaxMs = now - dueMs;
    const i = k % streams;
    const b = /** @type {Buffer} */ (bufs[i]);
    const ts = Math.round((dueMs / 1000) * CLOCK) >>> 0;
    const q = /** @type {number} */ (seq[i]);
    b[2] = q >>> 8;
    b[3] = q & 0xff;
    b[4] = ts >>> 24;
    b[5] = (ts >>> 16) & 0xff;
    b[6] = (ts >>> 8) & 0xff;
    b[7] = ts & 0xff;
    // Unconnected sends resolve the address on a nextTick: such a buffer must not change until then.
    if (shared) /** @type {dgram.Socket} */ (sockets[0]).send(Buffer.from(b), portBase + 2 * i, host);
    else /** @type {dgram.Socket} */ (sockets[i]).send(b);
    seq[i] = (q + 1) & 0xffff;
    k++;
  }
  if (k < totalSlots) setTimeout(tick, Math.max(0, (k / rate) * 1000 - (performance.now() - t0)));
  else finish();
}

function finish() {
  const secs = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  for (const s of sockets) s.close();
  process.stdout.write(
    `${JSON.stringify({
      sent: k,
      seconds: secs,
      pps: Math.round(k / secs),
      cpuPct: Math.round(((used.user + used.system) / 1e4 / secs) * 10) / 10,
      lagMaxMs: Math.round(lagMaxMs * 100) / 100,
      sockets: sockets.length,
    })}\n`,
  );
}

setTimeout(tick, 0);
