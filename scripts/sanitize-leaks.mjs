// scripts/sanitize.sh's leak probe: worker threads use the native engine (the sanitizer
// build named by OFFCAST_NATIVE_ADDON) and exit, some with tracks closed, one with
// tracks still running. A worker's exit tears its environment down, which runs the
// engine's cleanup hook: every allocation of the addon must be freed then, so
// LeakSanitizer (at process exit) finds none of them.
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import dgram from 'node:dgram';

const OP_RUN = 2;
const OP_CLOSE = 4;

function fdOf(sock) {
  const sym = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  return sock[sym].handle.fd;
}

async function work(leaveRunning) {
  const addon = createRequire(import.meta.url)(process.env.OFFCAST_NATIVE_ADDON);
  const rx = dgram.createSocket('udp4');
  await new Promise((r) => rx.bind(0, '127.0.0.1', r));
  rx.on('message', () => {});
  const tx = dgram.createSocket('udp4');
  await new Promise((r) => tx.bind(0, '127.0.0.1', r));
  await new Promise((r) => tx.connect(rx.address().port, '127.0.0.1', r));
  const tracks = 40;
  const counters = new Float64Array(new SharedArrayBuffer(tracks * 32 * 8));
  const totals = new Float64Array(new SharedArrayBuffer(64 * 8));
  let done = 0;
  addon.engineOpen(counters, totals, tracks, addon.monoNow() - performance.now(), () => done++);
  const n = 200;
  const sab = new SharedArrayBuffer(n * 100 + n * 2 + n * 4 + n);
  const payload = new Uint8Array(sab, 0, n * 100).fill(7);
  const len = new Uint16Array(sab, n * 100, n).fill(100);
  const ts = new Uint32Array(sab, n * 102, n).map((_, i) => i * 2);
  const flags = new Uint8Array(sab, n * 106, n).fill(1);
  for (let s = 0; s < tracks; s++) {
    const max = s % 4 === 0;
    addon.engineTrack(s, 0, fdOf(tx), payload, len, ts, ts, s % 2 ? flags : null, n, 0, 96, s, 1000, 400, max ? 0 : 1, 1, 0, 400);
    addon.engineCmd(OP_RUN, s, 0, 0, 0, 0, 0, performance.now(), 0, s);
  }
  await new Promise((r) => setTimeout(r, 300));
  if (!leaveRunning) {
    let seq = 0;
    for (let s = 0; s < tracks; s++) seq = addon.engineCmd(OP_CLOSE, s);
    if (!addon.engineWait(seq, 5000)) throw new Error('no acknowledgement');
    for (let s = 0; s < tracks; s++) addon.engineRelease(s);
  }
  tx.close();
  rx.close();
  return totals[0];
}

if (isMainThread) {
  for (const leaveRunning of [false, true, false]) {
    const w = new Worker(new URL(import.meta.url), { workerData: { leaveRunning } });
    const sent = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await new Promise((r) => w.once('exit', r));
    if (!(sent > 0)) throw new Error('the engine sent nothing');
    console.log(`leak probe: a worker sent ${sent} packets and exited (tracks ${leaveRunning ? 'left running' : 'closed'})`);
  }
} else {
  const { parentPort } = await import('node:worker_threads');
  parentPort.postMessage(await work(workerData.leaveRunning));
}
