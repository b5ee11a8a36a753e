/**
 * One fuzz run of one target (run.mjs starts one process per target): the loop
 * runs in a worker thread with a bounded heap; this thread watches it. An input
 * that stops the loop for HANG_MS, or kills the thread (out of memory, an
 * uncaught error), is read back from shared memory and saved to the corpus; the
 * loop then restarts with what is left of the budget.
 *
 *   --target NAME  --seconds N (default 900)  --inputs N (default 1000000)  --seed N
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { saveCrasher } from './corpus.js';
import { SAB_BYTES, SLOT_BYTES, SLOTS, slotOffset, type LoopData } from './lib.js';

const HANG_MS = 30_000;

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    seconds: { type: 'string', default: '900' },
    inputs: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: String(Date.now() % 0x7fffffff) },
  },
});
const name = values.target;
if (name === undefined) throw new Error('--target NAME is required');
const seconds = Number(values.seconds);
let inputs = Number(values.inputs);
let seed = Number(values.seed);

let total = 0;
let crashes = 0;
let saved = 0;
let slowest = 0;
const started = performance.now();

function save(why: string, input: Uint8Array): void {
  const file = saveCrasher(name!, input);
  saved++;
  console.log(`[${name}] CRASH (${input.length} bytes) saved to ${file}\n  ${why.replace(/\n/g, '\n  ')}`);
}

/** Runs the loop in a worker until it finishes; returns the inputs it ran. */
function runWorker(): Promise<number> {
  const sab = new SharedArrayBuffer(SAB_BYTES);
  const counters = new Int32Array(sab, 0, 1);
  for (let k = 0; k < SLOTS; k++) new Int32Array(sab, slotOffset(k), 1)[0] = -1;
  const data: LoopData = { target: name!, seconds: seconds - (performance.now() - started) / 1000, inputs, seed, sab };
  const worker = new Worker(new URL('./loop.ts', import.meta.url), {
    workerData: data,
    execArgv: process.execArgv,
    resourceLimits: { maxOldGenerationSizeMb: 1024 },
  });
  /** The inputs in flight (one of them is at fault). */
  const current = (): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let k = 0; k < SLOTS; k++) {
      const n = Atomics.load(new Int32Array(sab, slotOffset(k), 1), 0);
      if (n >= 0) out.push(new Uint8Array(sab, slotOffset(k) + 4, Math.min(n, SLOT_BYTES)).slice());
    }
    return out;
  };
  return new Promise((resolve) => {
    let finished = false;
    let lastCount = -1;
    let lastChange = performance.now();
    const finish = (n: number): void => {
      if (finished) return;
      finished = true;
      clearInterval(watch);
      resolve(n);
    };
    const watch = setInterval(() => {
      const c = Atomics.load(counters, 0);
      const now = performance.now();
      if (c !== lastCount) {
        lastCount = c;
        lastChange = now;
      } else if (c > 0 && now - lastChange > HANG_MS) {
        crashes++;
        for (const input of current()) save(`hang: no answer in ${HANG_MS} ms (one of the inputs in flight)`, input);
        void worker.terminate();
        finish(c);
      }
    }, 1000);
    worker.on('message', (m: { type: string; why?: string; input?: Uint8Array; inputs?: number; crashes?: number; slowest?: number }) => {
      if (m.type === 'crash') save(m.why!, m.input!);
      else if (m.type === 'progress') console.log(`[${name}] ${m.inputs} inputs, ${m.crashes} failing, slowest ${m.slowest!.toFixed(1)} ms`);
      else if (m.type === 'done') {
        crashes += m.crashes!;
        slowest = Math.max(slowest, m.slowest!);
        finish(m.inputs!);
      }
    });
    worker.on('error', (err) => {
      crashes++;
      for (const input of current()) save(`the loop died: ${err.message} (one of the inputs in flight)`, input);
      finish(Atomics.load(counters, 0));
    });
    worker.on('exit', () => finish(Atomics.load(counters, 0)));
  });
}

while (inputs > 0 && (performance.now() - started) / 1000 < seconds) {
  const n = await runWorker();
  total += n;
  inputs -= n;
  seed = (seed * 31 + 7) % 0x7fffffff;
}
const secs = (performance.now() - started) / 1000;
console.log(`[${name}] ${total} inputs in ${secs.toFixed(0)} s, ${crashes} failing (${saved} saved to the corpus), slowest ${slowest.toFixed(1)} ms`);
process.exitCode = crashes > 0 ? 1 : 0;
