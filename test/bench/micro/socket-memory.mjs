#!/usr/bin/env node
// What a play session's sockets cost in RSS, without the server around them:
// a fresh Node process (--expose-gc) opens N UDP sockets bound on 127.0.0.1
// and connected, as PlayTrack does, and reports the RSS growth per socket
// after a full GC. Variants: plain dgram, dgram-as-promised (what the offload
// uses), and a pair per session (RTP + RTCP) with the track's packet buffer.
//
//   node test/bench/micro/socket-memory.mjs [--count 2000] [--json]
//
// No packet is sent: the sockets connect to 127.0.0.1:9 (discard).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const self = fileURLToPath(import.meta.url);
const VARIANTS = {
  dgram: 'dgram.createSocket, bind, connect: one socket',
  promised: 'dgram-as-promised wrapper around it (offload/play/session.ts): one socket',
  session: 'a play track: 2 wrapped sockets (RTP + RTCP), error/message listeners, a 172-byte packet buffer',
};

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    json: { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});
const count = Number(values.count);
if (!Number.isInteger(count) || count < 10 || count > 5000) {
  process.stderr.write('socket-memory: --count must be 10..5000\n');
  process.exit(2);
}

if (values.child !== undefined) await child(values.child, count);
else await parent();

/**
 * @param {string} variant
 * @param {number} n
 */
async function child(variant, n) {
  const gc = /** @type {() => void} */ (globalThis.gc);
  const { default: DgramAsPromised } = await import('dgram-as-promised');
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return process.memoryUsage().rss;
  };
  /** @returns {Promise<dgram.Socket>} */
  const open = async (/** @type {boolean} */ wrapped) => {
    const p = wrapped ? DgramAsPromised.createSocket({ type: 'udp4', reuseAddr: false }) : null;
    const s = p === null ? dgram.createSocket('udp4') : p.socket;
    if (p !== null) await p.bind({ port: 0, address: '127.0.0.1', exclusive: true });
    else await new Promise((resolve) => s.bind(0, '127.0.0.1', () => resolve(undefined)));
    return s;
  };
  const keep = [];
  // Warm the code paths once so their compilation is not charged to the sockets.
  for (let i = 0; i < 20; i++) (await open(variant !== 'dgram')).close();
  const before = await settle();
  for (let i = 0; i < n; i++) {
    if (variant === 'session') {
      const rtp = await open(true);
      const rtcp = await open(true);
      await new Promise((resolve) => rtp.connect(9, '127.0.0.1', () => resolve(undefined)));
      const stats = { errors: 0 };
      rtp.on('error', () => stats.errors++);
      rtcp.on('error', () => stats.errors++);
      rtcp.on('message', () => undefined);
      rtp.on('message', () => undefined);
      keep.push({ rtp, rtcp, stats, pkt: Buffer.alloc(172) });
    } else {
      const s = await open(variant === 'promised');
      await new Promise((resolve) => s.connect(9, '127.0.0.1', () => resolve(undefined)));
      keep.push(s);
    }
  }
  const after = await settle();
  process.stdout.write(`${JSON.stringify({ variant, count: n, before, after, perItemBytes: (after - before) / n })}\n`);
  process.exit(0);
}

async function parent() {
  const out = [];
  for (const [variant, description] of Object.entries(VARIANTS)) {
    const r = await new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['--expose-gc', self, '--child', variant, '--count', String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      c.stdout.setEncoding('utf8').on('data', (d) => (text += d));
      const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
      c.on('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(JSON.parse(text.trim().split('\n').pop() ?? '{}'));
        else reject(new Error(`socket-memory child ${variant} exited with ${code}`));
      });
    });
    out.push({ ...r, description });
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ count, variants: out })}\n`);
  else for (const v of out) process.stdout.write(`${v.variant.padEnd(9)} ${(v.perItemBytes / 1024).toFixed(1).padStart(6)} KiB each  ${v.description}\n`);
}
