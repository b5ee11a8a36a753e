/**
 * The fuzz loop, in a worker thread of main.ts: makes inputs (seeds, mutated
 * seeds, fast-check values, mutated fast-check values), mirrors each into shared
 * memory before running it (so the parent can save an input that hangs or kills
 * the thread), and reports crashes and progress.
 */
import fc from 'fast-check';
import { parentPort, workerData } from 'node:worker_threads';
import { judge, mutate, Rng, SLOT_BYTES, SLOTS, slotOffset, type LoopData } from './lib.js';
import { loadTarget } from './targets/index.js';

const data = workerData as LoopData;
const port = parentPort!;
const target = await loadTarget(data.target);
const seeds = await target.seeds();
if (seeds.length === 0) throw new Error(`${target.name}: no seeds`);
await target.setup?.();

const counter = new Int32Array(data.sab, 0, 1);
const rng = new Rng(data.seed);
let fcBatch: Uint8Array[] = [];
let fcRound = 0;
function fromArbitrary(): Uint8Array {
  if (fcBatch.length === 0) fcBatch = fc.sample(target.arbitrary, { numRuns: 1000, seed: data.seed + fcRound++ });
  return fcBatch.pop()!;
}

function next(i: number): Uint8Array {
  if (i < seeds.length) return seeds[i]!;
  const r = rng.below(10);
  if (r < 6) return mutate(seeds[rng.below(seeds.length)]!, rng, seeds);
  if (r < 8) return fromArbitrary();
  return mutate(fromArbitrary(), rng, seeds);
}

/** Crash signatures seen: one saved input each. */
const seen = new Set<string>();
const started = performance.now();
const deadline = started + data.seconds * 1000;
const concurrency = Math.min(SLOTS, Math.max(1, target.concurrency ?? 1));
let lastReport = started;
let i = 0;
let crashes = 0;
let slowest = 0;
let stop = false;

async function lane(k: number): Promise<void> {
  const length = new Int32Array(data.sab, slotOffset(k), 1);
  const mirror = new Uint8Array(data.sab, slotOffset(k) + 4, SLOT_BYTES);
  while (!stop && i < data.inputs) {
    const input = next(i++);
    const n = Math.min(input.length, SLOT_BYTES);
    mirror.set(input.subarray(0, n));
    Atomics.store(length, 0, n);
    Atomics.add(counter, 0, 1);
    const v = await judge(target, input, k);
    Atomics.store(length, 0, -1);
    if (v.ms > slowest) slowest = v.ms;
    if (!v.ok) {
      crashes++;
      // One per kind of failure: the error's class (or the bound broken) and where it was thrown.
      const lines = v.why.split('\n');
      const signature = `${lines[0]!.replace(/:.*/, '')}\n${lines.find((l) => l.trim().startsWith('at ')) ?? ''}`;
      if (!seen.has(signature)) {
        seen.add(signature);
        port.postMessage({ type: 'crash', why: v.why, input });
      }
    }
    if ((i & 1023) === 0) {
      const now = performance.now();
      if (now >= deadline) stop = true;
      if (now - lastReport > 10000) {
        lastReport = now;
        port.postMessage({ type: 'progress', inputs: i, crashes, slowest });
      }
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, (_, k) => lane(k)));
await target.teardown?.();
port.postMessage({ type: 'done', inputs: i, crashes, slowest, ms: performance.now() - started });
