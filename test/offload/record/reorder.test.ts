import t from 'tap';
import { ReorderBuffer, type ReorderBufferOptions } from '../../../offload/record/reorder.js';

const RESULT_NAMES = ['ACCEPTED', 'DUPLICATE', 'TOO_LATE', 'DROPPED'];

/** One step: push a seq at a time (checking the result), drain at a time, or flush. */
type Step = { push: number; at: number; result: string } | { drain: number } | { flush: true };

interface ReorderCase {
  name: string;
  options?: ReorderBufferOptions;
  steps: Step[];
  /** [seq, lostBefore] in release order. Items are their own seqs. */
  released: Array<[seq: number, lostBefore: number]>;
  counters: Partial<Record<'received' | 'accepted' | 'duplicates' | 'reordered' | 'lost' | 'late' | 'dropped' | 'released', number>>;
  size?: number;
  deadline?: number;
}

const push = (seq: number, at: number, result = 'ACCEPTED'): Step => ({ push: seq, at, result });
const drain = (at: number): Step => ({ drain: at });
/** Push then drain at the same time, as the receive loop does. */
const pd = (seq: number, at: number, result = 'ACCEPTED'): Step[] => [push(seq, at, result), drain(at)];

const BIG = 2 ** 32;

const cases: ReorderCase[] = [
  {
    name: 'in order',
    steps: [...pd(10, 0), ...pd(11, 1), ...pd(12, 2)],
    released: [
      [10, 0],
      [11, 0],
      [12, 0],
    ],
    counters: { received: 3, accepted: 3, reordered: 0, lost: 0, released: 3 },
    size: 0,
    deadline: Infinity,
  },
  {
    name: 'two swapped',
    steps: [...pd(10, 0), ...pd(12, 1), ...pd(11, 2), ...pd(13, 3)],
    released: [
      [10, 0],
      [11, 0],
      [12, 0],
      [13, 0],
    ],
    counters: { received: 4, accepted: 4, reordered: 1, lost: 0, released: 4 },
  },
  {
    name: 'first packets arrive reversed: the first push sets the start',
    steps: [...pd(11, 0), ...pd(10, 1, 'TOO_LATE'), ...pd(12, 2)],
    released: [
      [11, 0],
      [12, 0],
    ],
    counters: { received: 3, accepted: 2, late: 1, lost: 0 },
  },
  {
    name: 'a gap filled late (before the timeout)',
    steps: [...pd(10, 0), ...pd(12, 5), ...pd(13, 6), drain(104), ...pd(11, 80)],
    released: [
      [10, 0],
      [11, 0],
      [12, 0],
      [13, 0],
    ],
    counters: { received: 4, accepted: 4, reordered: 1, lost: 0, late: 0, released: 4 },
    deadline: Infinity,
  },
  {
    name: 'a gap never filled: skipped when the oldest held packet waited maxDelay',
    steps: [...pd(10, 0), ...pd(12, 5), ...pd(13, 6), drain(104), drain(105), ...pd(11, 110, 'TOO_LATE'), ...pd(14, 111)],
    released: [
      [10, 0],
      [12, 1],
      [13, 0],
      [14, 0],
    ],
    counters: { received: 5, accepted: 4, lost: 1, late: 1, released: 4 },
  },
  {
    name: 'several gaps: each waits for its own oldest packet',
    // 11 missing (12 held from t=5), 14 missing (15 held from t=90).
    steps: [...pd(10, 0), ...pd(12, 5), ...pd(13, 6), ...pd(15, 90), drain(105), drain(189), drain(190)],
    released: [
      [10, 0],
      [12, 1],
      [13, 0],
      [15, 1],
    ],
    counters: { lost: 2, released: 4 },
    size: 0,
  },
  {
    name: 'the oldest held packet is not the lowest: its age decides',
    // 14 arrives first (t=1), then 12 (t=50). At t=101 14 has waited 100 ms: 11 and 13 are
    // skipped although 12 itself waited only 51.
    steps: [...pd(10, 0), ...pd(14, 1), ...pd(12, 50), drain(100), drain(101)],
    released: [
      [10, 0],
      [12, 1],
      [14, 1],
    ],
    counters: { lost: 2, reordered: 1, released: 3 },
  },
  {
    name: 'duplicates: while held, after release, and too old to tell',
    options: { history: 16 },
    steps: [
      ...pd(10, 0),
      ...pd(12, 1),
      ...pd(12, 2, 'DUPLICATE'), // held
      ...pd(10, 3, 'DUPLICATE'), // released
      ...pd(11, 4),
      ...pd(11, 5, 'DUPLICATE'),
      ...Array.from({ length: 30 }, (_, i) => pd(13 + i, 6 + i)).flat(),
      ...pd(42, 40, 'DUPLICATE'), // last released
      ...pd(27, 41, 'DUPLICATE'), // 16 back: still in the history
      ...pd(26, 42, 'TOO_LATE'), // 17 back: can't tell
    ],
    released: Array.from({ length: 33 }, (_, i): [number, number] => [10 + i, 0]),
    counters: { received: 39, accepted: 33, duplicates: 5, late: 1, reordered: 1, released: 33 },
  },
  {
    name: 'a skipped packet arriving late is TOO_LATE, not a duplicate',
    steps: [...pd(10, 0), ...pd(12, 1), drain(101), ...pd(11, 102, 'TOO_LATE'), ...pd(12, 103, 'DUPLICATE')],
    released: [
      [10, 0],
      [12, 1],
    ],
    counters: { late: 1, duplicates: 1, lost: 1 },
  },
  {
    name: 'full: a packet capacity ahead forces just enough release',
    options: { capacity: 4 },
    // 11 missing; 15 does not fit [11, 15): skip 11, release 12, 13; 14 missing, wait.
    steps: [...pd(10, 0), ...pd(12, 1), ...pd(13, 2), ...pd(15, 3), drain(102), drain(103)],
    released: [
      [10, 0],
      [12, 1],
      [13, 0],
      [15, 1],
    ],
    counters: { lost: 2, released: 4, dropped: 0 },
    size: 0,
  },
  {
    name: 'full: a far jump with nothing held skips to fit, then waits for the rest of the gap',
    options: { capacity: 4 },
    steps: [...pd(10, 0), ...pd(1000, 1), drain(100), drain(101)],
    released: [
      [10, 0],
      [1000, 989],
    ],
    counters: { lost: 989, released: 2 },
  },
  {
    name: 'full: the far packet is the only overflow slot; a second one before drain is dropped',
    options: { capacity: 4 },
    steps: [...pd(10, 0), push(20, 1), push(20, 1, 'DUPLICATE'), push(30, 1, 'DROPPED'), push(12, 1), drain(1), drain(200)],
    // 20 needs next >= 17: 11 skipped, 12 released, 13..16 skipped; 17..19 wait, then skipped.
    released: [
      [10, 0],
      [12, 1],
      [20, 7],
    ],
    counters: { received: 5, accepted: 3, duplicates: 1, dropped: 1, lost: 8 },
  },
  {
    name: 'flush releases everything with its gaps, then starts afresh',
    steps: [...pd(10, 0), ...pd(12, 1), ...pd(15, 2), { flush: true }, ...pd(3, 3), ...pd(4, 4)],
    released: [
      [10, 0],
      [12, 1],
      [15, 2],
      [3, 0],
      [4, 0],
    ],
    counters: { lost: 3, released: 5, late: 0 },
  },
  {
    name: 'flush with an overflowing packet',
    options: { capacity: 4 },
    steps: [...pd(10, 0), push(12, 1), push(100, 1), { flush: true }],
    released: [
      [10, 0],
      [12, 1],
      [100, 87],
    ],
    counters: { lost: 88, released: 3 },
    size: 0,
    deadline: Infinity,
  },
  {
    name: 'extended values near 2^32 and beyond',
    steps: [...pd(BIG - 2, 0), ...pd(BIG, 1), ...pd(BIG - 1, 2), ...pd(BIG + 2, 3), ...pd(BIG + 1, 4), ...pd(BIG - 1, 5, 'DUPLICATE')],
    released: [
      [BIG - 2, 0],
      [BIG - 1, 0],
      [BIG, 0],
      [BIG + 1, 0],
      [BIG + 2, 0],
    ],
    counters: { reordered: 2, duplicates: 1, lost: 0, released: 5 },
  },
  {
    name: 'extended values near 2^48, a gap timed out',
    steps: [...pd(2 ** 48 + 63, 0), ...pd(2 ** 48 + 65, 1), drain(101), ...pd(2 ** 48 + 64, 102, 'TOO_LATE')],
    released: [
      [2 ** 48 + 63, 0],
      [2 ** 48 + 65, 1],
    ],
    counters: { lost: 1, late: 1 },
  },
  {
    name: 'negative extended values (a misorder behind the first packet of a cycle)',
    steps: [...pd(-2, 0), ...pd(0, 1), ...pd(-1, 2), ...pd(1, 3)],
    released: [
      [-2, 0],
      [-1, 0],
      [0, 0],
      [1, 0],
    ],
    counters: { reordered: 1, lost: 0 },
  },
];

t.test('ReorderBuffer cases', async (t) => {
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const buffer = new ReorderBuffer<number>(c.options);
      const released: Array<[number, number]> = [];
      const emit = (item: number, lostBefore: number) => {
        released.push([item, lostBefore]);
      };
      c.steps.forEach((step, i) => {
        if ('push' in step) {
          const got = buffer.push(step.push, step.push, step.at);
          t.equal(RESULT_NAMES[got], step.result, `step ${i}: push ${step.push} at ${step.at}`);
        } else if ('drain' in step) {
          buffer.drain(step.drain, emit);
        } else {
          buffer.flush(emit);
        }
      });
      t.strictSame(released, c.released, 'released in order, with lostBefore');
      for (const [name, value] of Object.entries(c.counters)) t.equal(buffer[name as keyof typeof c.counters], value, name);
      if (c.size !== undefined) t.equal(buffer.size, c.size, 'size');
      if (c.deadline !== undefined) t.equal(buffer.nextDeadline(), c.deadline, 'nextDeadline');
    });
  }
});

t.test('nextDeadline follows the oldest held packet', async (t) => {
  const buffer = new ReorderBuffer<number>({ maxDelayMs: 50 });
  const out: number[] = [];
  const emit = (item: number) => {
    out.push(item);
  };
  t.equal(buffer.nextDeadline(), Infinity, 'empty');
  buffer.push(1, 1, 0);
  buffer.drain(0, emit);
  t.equal(buffer.nextDeadline(), Infinity, 'all released');
  buffer.push(4, 4, 10);
  t.equal(buffer.nextDeadline(), 60, 'held since 10');
  buffer.push(3, 3, 20);
  buffer.drain(20, emit);
  t.equal(buffer.nextDeadline(), 60, 'still the one held since 10');
  buffer.drain(buffer.nextDeadline(), emit);
  t.strictSame(out, [1, 3, 4]);
  t.equal(buffer.nextDeadline(), Infinity);
  buffer.push(7, 7, 70);
  t.equal(buffer.nextDeadline(), 70 + 50, 'a packet within the window waits maxDelay');
  buffer.push(1000, 1000, 75);
  t.equal(buffer.nextDeadline(), 75, 'an overflowing packet makes the drain due at once');
  t.equal(buffer.nextSeq, 5);
});

t.test('clear drops without releasing; options are checked', async (t) => {
  const buffer = new ReorderBuffer<string>();
  buffer.push(5, 'a', 0);
  buffer.push(7, 'b', 0);
  buffer.clear();
  t.equal(buffer.size, 0);
  t.ok(Number.isNaN(buffer.nextSeq), 'no position after clear');
  const out: string[] = [];
  buffer.push(1, 'c', 1);
  buffer.drain(1, (item) => out.push(item));
  t.strictSame(out, ['c'], 'starts afresh');
  t.throws(() => new ReorderBuffer({ capacity: 48 }), RangeError);
  t.throws(() => new ReorderBuffer({ capacity: 0 }), RangeError);
  t.throws(() => new ReorderBuffer({ history: 1000 }), RangeError);
  t.throws(() => new ReorderBuffer({ maxDelayMs: -1 }), RangeError);
  t.throws(() => new ReorderBuffer({ maxDelayMs: NaN }), RangeError);
});

t.test('a shuffled stream within the window comes out complete and in order', async (t) => {
  // Deterministic shuffle of blocks of 16: every packet displaced by < 16, nothing lost.
  const buffer = new ReorderBuffer<number>({ capacity: 32 });
  const out: number[] = [];
  let lostTotal = 0;
  const emit = (item: number, lostBefore: number) => {
    out.push(item);
    lostTotal += lostBefore;
  };
  let state = 12345;
  const order: number[] = [];
  for (let block = 0; block < 200; block++) {
    const seqs = Array.from({ length: 16 }, (_, i) => 70000 + block * 16 + i);
    for (let i = seqs.length - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      const j = state % (i + 1);
      [seqs[i], seqs[j]] = [seqs[j]!, seqs[i]!];
    }
    order.push(...seqs);
  }
  // The first push sets the start: make it the lowest.
  order.splice(order.indexOf(70000), 1);
  order.unshift(70000);
  order.forEach((seq, i) => {
    buffer.push(seq, seq, i);
    buffer.drain(i, emit);
  });
  buffer.flush(emit);
  t.equal(out.length, 3200);
  t.ok(
    out.every((seq, i) => seq === 70000 + i),
    'in order, none missing',
  );
  t.equal(lostTotal, 0);
  t.equal(buffer.lost, 0);
  t.ok(buffer.reordered > 0, 'some arrived after a higher one');
});
