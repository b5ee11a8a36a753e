/**
 * The record path's per-packet primitives must not allocate: validateRtp, the
 * flow table's fast path, the sequence tracker (with jitter) and the reorder
 * buffer (with swaps and losses, so gaps are skipped by timeout).
 *
 * How: run 100k packets between two heap readings with no GC in between. A
 * single 16-byte object per packet would show as 1.6 MB of growth or a
 * scavenge. The first rounds include JIT compilation (code objects, some
 * finished on a background thread), so the check takes the best of several
 * rounds after a warm-up; a control that allocates per packet proves the
 * measurement can see allocation at all.
 */
import t from 'tap';
import v8 from 'node:v8';
import vm from 'node:vm';
import { PerformanceObserver } from 'node:perf_hooks';
import { validateRtp, RtpHeader, Drop } from '../../../offload/record/packet.js';
import { SequenceTracker, SeqResult } from '../../../offload/record/sequence.js';
import { ReorderBuffer } from '../../../offload/record/reorder.js';
import { FlowTable, FlowResult } from '../../../offload/record/flows.js';

const ROUND = 100_000;
const CLEAN_GROWTH = 64 * 1024;

function getGc(): (() => void) | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

const ADDRESS = '127.0.0.1';
const PORT = 5004;
const SSRC = 0x12345678;

const packet = new Uint8Array(172);
packet[0] = 0x80;
packet[1] = 111;
packet[8] = 0x12;
packet[9] = 0x34;
packet[10] = 0x56;
packet[11] = 0x78;
const header = new RtpHeader();
const tracker = new SequenceTracker();
const reorder = new ReorderBuffer<number>();
const flows = new FlowTable();
flows.install(ADDRESS, PORT, SSRC);
let released = 0;
let lostSeen = 0;
let errors = 0;
const emit = (_item: number, lostBefore: number): void => {
  released++;
  lostSeen += lostBefore;
};
const sink: Uint8Array[] = [new Uint8Array(1), new Uint8Array(1), new Uint8Array(1), new Uint8Array(1)];
let n = 0;

function run(count: number, allocate: boolean): void {
  for (let i = 0; i < count; i++, n++) {
    // Every tenth pair swapped, one packet in fifty lost.
    let seq = n % 10 === 3 ? n + 1 : n % 10 === 4 ? n - 1 : n;
    if (n % 50 === 7) continue;
    seq &= 0xffff;
    packet[2] = seq >>> 8;
    packet[3] = seq & 0xff;
    const ts = (n * 160) >>> 0;
    packet[4] = ts >>> 24;
    packet[5] = (ts >>> 16) & 0xff;
    packet[6] = (ts >>> 8) & 0xff;
    packet[7] = ts & 0xff;
    const nowMs = n * 20;
    if (validateRtp(packet, packet.length, header) !== Drop.None) errors++;
    if (flows.lookup(ADDRESS, PORT, header.ssrc, nowMs) !== FlowResult.Fast) errors++;
    const result = tracker.update(header.seq);
    tracker.updateJitter(header.ts, nowMs, 8000);
    if (result === SeqResult.Accept) {
      reorder.push(tracker.extSeq, n, nowMs);
      reorder.drain(nowMs, emit);
    }
    if (allocate) sink[n & 3] = new Uint8Array(16);
  }
}

async function measure(gc: () => void, allocate: boolean): Promise<{ growth: number; gcs: number }> {
  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  gc();
  observer.observe({ entryTypes: ['gc'] });
  const before = process.memoryUsage().heapUsed;
  run(ROUND, allocate);
  const growth = process.memoryUsage().heapUsed - before;
  // GC entries are delivered asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 20));
  observer.disconnect();
  return { growth, gcs };
}

const gcOrNull = getGc();
const skip = gcOrNull === null ? 'cannot expose gc() at run time: allocation check skipped' : false;

t.test('no allocation per packet: validate + flow + sequence + jitter + reorder', { skip }, async (t) => {
  const gc = gcOrNull!;
  run(2 * ROUND, false); // warm-up: let the JIT settle
  const rounds: Array<{ growth: number; gcs: number }> = [];
  for (let i = 0; i < 5; i++) rounds.push(await measure(gc, false));
  const clean = rounds.filter((r) => r.gcs === 0 && r.growth < CLEAN_GROWTH);
  t.ok(clean.length > 0, `at least one round of ${ROUND} packets without GC and under ${CLEAN_GROWTH} bytes of growth: ${JSON.stringify(rounds)}`);
  t.equal(errors, 0, 'every packet valid and on the fast path');
  t.ok(reorder.lost > 0 && reorder.reordered > 0, 'the gap and swap paths ran');
  t.equal(lostSeen, reorder.lost, 'every skipped seq reported through lostBefore');
  t.equal(released, reorder.released);

  const control = await measure(gc, true);
  t.ok(control.gcs > 0 || control.growth > 1_000_000, `the measurement sees 16 bytes per packet: ${JSON.stringify(control)}`);
});
