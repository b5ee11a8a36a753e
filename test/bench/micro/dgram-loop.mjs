#!/usr/bin/env node
// The plain Node egress baseline: one connected UDP socket, fire-and-forget
// send() of one reused RTP-shaped buffer (sequence number and timestamp patched
// per packet so a receiver can count losses), in a loop that yields to the
// event loop with setImmediate every N packets. Bounded in time and count.
//
//   node test/bench/micro/dgram-loop.mjs --port 10000 [--seconds 5] [--size 1212]
//        [--yield-every 256] [--max-packets 100000000] [--host 127.0.0.1]
//
// Prints one JSON line: {sent, seconds, pps, size, yieldEvery, queuedMax, errors}.
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    seconds: { type: 'string', default: '5' },
    size: { type: 'string', default: '1212' },
    'yield-every': { type: 'string', default: '256' },
    'max-packets': { type: 'string', default: '100000000' },
    ssrc: { type: 'string', default: String(0x0ffca5f0) },
  },
});

const port = Number(values.port);
const host = String(values.host);
const seconds = Number(values.seconds);
const size = Number(values.size);
const yieldEvery = Number(values['yield-every']);
const maxPackets = Number(values['max-packets']);
const ssrc = Number(values.ssrc) >>> 0;
if (!Number.isInteger(port) || port < 1 || port > 65535) fail('--port must be a port number');
// A load generator must never leave the machine.
if (!/^127\.\d+\.\d+\.\d+$/.test(host)) fail(`--host ${host} is outside 127.0.0.0/8; refusing`);
if (!(seconds > 0 && seconds <= 600)) fail('--seconds must be in (0, 600]');
if (!Number.isInteger(size) || size < 12 || size > 65507) fail('--size must be 12..65507');
if (!Number.isInteger(yieldEvery) || yieldEvery < 1) fail('--yield-every must be a positive integer');
if (!(maxPackets >= 1)) fail('--max-packets must be positive');

/** @param {string} msg */
function fail(msg) {
  process.stderr.write(`dgram-loop: ${msg}\n`);
  process.exit(2);
}

const buf = Buffer.alloc(size);
buf[0] = 0x80;
buf[1] = 96;
buf.writeUInt32BE(ssrc, 8);
for (let k = 12; k < size; k++) buf[k] = k & 0xff;

const socket = dgram.createSocket('udp4');
let errors = 0;
socket.on('error', () => errors++);
await new Promise((resolve, reject) => {
  socket.once('error', reject);
  socket.connect(port, host, () => {
    socket.off('error', reject);
    resolve(undefined);
  });
});

let seq = 0;
let ts = 0;
let sent = 0;
let queuedMax = 0;
const started = performance.now();
const end = started + seconds * 1000;

function burst() {
  for (let i = 0; i < yieldEvery; i++) {
    buf[2] = seq >>> 8;
    buf[3] = seq & 0xff;
    buf[4] = ts >>> 24;
    buf[5] = (ts >>> 16) & 0xff;
    buf[6] = (ts >>> 8) & 0xff;
    buf[7] = ts & 0xff;
    socket.send(buf);
    seq = (seq + 1) & 0xffff;
    ts = (ts + 960) >>> 0;
  }
  sent += yieldEvery;
  const queued = socket.getSendQueueCount();
  if (queued > queuedMax) queuedMax = queued;
  if (performance.now() < end && sent < maxPackets) setImmediate(burst);
  else finish();
}

function finish() {
  const secs = (performance.now() - started) / 1000;
  socket.close();
  process.stdout.write(`${JSON.stringify({ sent, seconds: secs, pps: Math.round(sent / secs), size, yieldEvery, queuedMax, errors })}\n`);
}

setImmediate(burst);
