import t from 'tap';
import { SequenceTracker, SeqResult, extendSeq, clampTotalLost, MAX_DROPOUT, MAX_MISORDER } from '../../../offload/record/sequence.js';

const { Accept: A, Probation: P, Bad: B, Resync: R } = SeqResult;
const NAMES = ['ACCEPT', 'PROBATION', 'BAD', 'RESYNC'];

/** [seq, expected result, expected extSeq (checked on ACCEPT/RESYNC)] */
type Step = [seq: number, result: number, ext?: number];

interface SeqCase {
  name: string;
  minSequential?: number;
  steps: Step[];
  /** After the steps. */
  expect: { received: number; expected: number; lost: number; extendedMax: number; cycles?: number };
}

const cases: SeqCase[] = [
  {
    name: 'in order across the 16-bit wrap from 65530',
    steps: [
      [65530, P],
      [65531, A, 65531],
      [65532, A, 65532],
      [65533, A, 65533],
      [65534, A, 65534],
      [65535, A, 65535],
      [0, A, 65536],
      [1, A, 65537],
      [2, A, 65538],
    ],
    expect: { received: 8, expected: 8, lost: 0, extendedMax: 65538, cycles: 65536 },
  },
  {
    name: 'reordered around the wrap',
    steps: [
      [65533, P],
      [65534, A, 65534],
      [0, A, 65536], // 65535 missing for now; wrap counted
      [65535, A, 65535], // misordered, belongs to the previous cycle
      [1, A, 65537],
    ],
    expect: { received: 4, expected: 4, lost: 0, extendedMax: 65537, cycles: 65536 },
  },
  {
    name: 'duplicates count as received (cumulative loss goes negative)',
    steps: [
      [10, P],
      [11, A, 11],
      [12, A, 12],
      [12, A, 12],
      [11, A, 11],
    ],
    expect: { received: 4, expected: 2, lost: -2, extendedMax: 12 },
  },
  {
    name: 'jump beyond MAX_DROPOUT, then two sequential packets: restart',
    steps: [
      [100, P],
      [101, A, 101],
      [102, A, 102],
      [5000, B],
      [5001, R, 5001],
      [5002, A, 5002],
    ],
    expect: { received: 2, expected: 2, lost: 0, extendedMax: 5002 },
  },
  {
    name: 'jump beyond MAX_DROPOUT not confirmed: the old sequence goes on',
    steps: [
      [100, P],
      [101, A, 101],
      [5000, B],
      [5002, B], // not 5001: still a stray
      [102, A, 102],
      [5003, R, 5003], // ...but 5003 follows the stray 5002
    ],
    expect: { received: 1, expected: 1, lost: 0, extendedMax: 5003 },
  },
  {
    name: 'restart across the wrap',
    steps: [
      [30000, P],
      [30001, A, 30001],
      [65535, B],
      [0, R, 0],
      [1, A, 1],
    ],
    expect: { received: 2, expected: 2, lost: 0, extendedMax: 1, cycles: 0 },
  },
  {
    name: 'forward jump of MAX_DROPOUT - 1 is a gap, MAX_DROPOUT is a jump',
    steps: [
      [1000, P],
      [1001, A, 1001],
      [1001 + MAX_DROPOUT - 1, A, 1001 + MAX_DROPOUT - 1],
      [1001 + 2 * MAX_DROPOUT - 1, B],
    ],
    expect: { received: 2, expected: MAX_DROPOUT, lost: MAX_DROPOUT - 2, extendedMax: 1001 + MAX_DROPOUT - 1 },
  },
  {
    name: 'misorder within MAX_MISORDER accepted, at MAX_MISORDER refused',
    steps: [
      [499, P],
      [500, A, 500],
      [500 - (MAX_MISORDER - 1), A, 500 - (MAX_MISORDER - 1)],
      [500 - MAX_MISORDER, B],
      [450, A, 450],
    ],
    expect: { received: 3, expected: 1, lost: -2, extendedMax: 500 },
  },
  {
    name: 'misorder across the wrap: 99 behind accepted into the previous cycle, 100 behind refused',
    steps: [
      [65534, P],
      [65535, A, 65535],
      [50, A, 65536 + 50],
      [(50 - 99) & 0xffff, A, 65536 + 50 - 99],
      [(50 - 100) & 0xffff, B],
    ],
    expect: { received: 3, expected: 52, lost: 49, extendedMax: 65586, cycles: 65536 },
  },
  {
    name: 'probation restarts on a non-sequential packet',
    steps: [
      [10, P],
      [20, P],
      [21, A, 21],
      [22, A, 22],
    ],
    expect: { received: 2, expected: 2, lost: 0, extendedMax: 22 },
  },
  {
    name: 'probation with a duplicate restarts it',
    steps: [
      [10, P],
      [10, P],
      [11, A, 11],
    ],
    expect: { received: 1, expected: 1, lost: 0, extendedMax: 11 },
  },
  {
    name: 'minSequential 1: the first packet is accepted',
    minSequential: 1,
    steps: [
      [65535, A, 65535],
      [0, A, 65536],
    ],
    expect: { received: 2, expected: 2, lost: 0, extendedMax: 65536 },
  },
  {
    name: 'minSequential 3',
    minSequential: 3,
    steps: [
      [7, P],
      [8, P],
      [9, A, 9],
    ],
    expect: { received: 1, expected: 1, lost: 0, extendedMax: 9 },
  },
  {
    name: 'still on probation: nothing expected',
    steps: [[42, P]],
    expect: { received: 0, expected: 0, lost: 0, extendedMax: 42 },
  },
];

t.test('update(): RFC 3550 A.1 cases', async (t) => {
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const tracker = new SequenceTracker(c.minSequential === undefined ? {} : { minSequential: c.minSequential });
      c.steps.forEach(([seq, result, ext], i) => {
        const got = tracker.update(seq);
        t.equal(NAMES[got], NAMES[result], `step ${i}: seq ${seq}`);
        if (ext !== undefined) t.equal(tracker.extSeq, ext, `step ${i}: extSeq of ${seq}`);
      });
      t.equal(tracker.received, c.expect.received, 'received');
      t.equal(tracker.expected(), c.expect.expected, 'expected');
      t.equal(tracker.lost(), c.expect.lost, 'lost');
      t.equal(tracker.extendedMax, c.expect.extendedMax, 'extended highest');
      if (c.expect.cycles !== undefined) t.equal(tracker.cycles, c.expect.cycles, 'cycles');
    });
  }
});

t.test('bad and resync counters, valid flag, reset', async (t) => {
  const tracker = new SequenceTracker();
  t.equal(tracker.valid, false, 'not valid before any packet');
  tracker.update(1);
  t.equal(tracker.valid, false, 'not valid on probation');
  tracker.update(2);
  t.equal(tracker.valid, true, 'valid after two sequential packets');
  tracker.update(40000);
  tracker.update(40001);
  t.equal(tracker.badCount, 1);
  t.equal(tracker.resyncCount, 1);
  tracker.reset();
  t.equal(tracker.valid, false, 'reset starts probation again');
  t.equal(tracker.update(7), P);
  t.equal(tracker.update(8), A);
  t.equal(tracker.extSeq, 8);
  t.throws(() => new SequenceTracker({ minSequential: 0 }), RangeError);
});

t.test('lost, expected and fraction lost per report interval (RFC 3550 A.3)', async (t) => {
  const tracker = new SequenceTracker();
  // base 2; missing 4, 7, 8.
  for (const seq of [1, 2, 3, 5, 6, 9, 10]) tracker.update(seq);
  t.equal(tracker.expected(), 9, 'expected 2..10');
  t.equal(tracker.received, 6);
  t.equal(tracker.lost(), 3);
  t.equal(tracker.fractionLost(), 85, 'floor(3 * 256 / 9)');
  t.equal(tracker.fractionLost(), 85, 'fractionLost() does not start a new interval');
  t.strictSame(tracker.snapshotForReport(), { fractionLost: 85, totalLost: 3, highestSeq: 10, jitter: 0, received: 6, expected: 9 });
  t.equal(tracker.fractionLost(), 0, 'a new interval with nothing in it');

  // 13 missing, 12 duplicated: 4 expected, 4 received in the interval.
  for (const seq of [11, 12, 14, 12]) tracker.update(seq);
  t.strictSame(tracker.snapshotForReport(), { fractionLost: 0, totalLost: 3, highestSeq: 14, jitter: 0, received: 10, expected: 13 });

  // 16, 17 missing: 6 expected, 4 received.
  for (const seq of [15, 18, 19, 20]) tracker.update(seq);
  t.strictSame(tracker.snapshotForReport(), { fractionLost: 85, totalLost: 5, highestSeq: 20, jitter: 0, received: 14, expected: 19 });

  // More received than expected in an interval (duplicates only): fraction 0, not negative.
  for (const seq of [20, 20, 21]) tracker.update(seq);
  t.strictSame(tracker.snapshotForReport(), { fractionLost: 0, totalLost: 3, highestSeq: 21, jitter: 0, received: 17, expected: 20 });
});

t.test('cumulative loss clamps to 24-bit signed', async (t) => {
  const tracker = new SequenceTracker({ minSequential: 1 });
  let seq = 0;
  tracker.update(seq);
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    seq = (seq + 2999) & 0xffff; // the largest gap that is not a jump
    if (tracker.update(seq) !== A) refused++;
  }
  t.equal(refused, 0, 'every gap of 2999 accepted');
  // 3000 gaps of 2998 missing packets.
  t.equal(tracker.expected() - tracker.received, 3000 * 2998, 'raw loss');
  t.equal(tracker.lost(), 0x7fffff, 'clamped at 2^23 - 1');
  t.equal(tracker.snapshotForReport().highestSeq, 3000 * 2999, 'extended highest across many wraps');
  t.equal(clampTotalLost(-9_000_000), -0x800000);
  t.equal(clampTotalLost(-5), -5);
  t.equal(clampTotalLost(0x7fffff), 0x7fffff);
});

t.test('interarrival jitter (RFC 3550 A.8) against a hand computation', async (t) => {
  // 8 kHz, 20 ms packets (160 units); arrivals 0, 20, 45, 60, 80 ms.
  // transit: -1000, -1000, -960, -1000, -1000 (units); |D|: -, 0, 40, 40, 0
  // J: 0, 0, 2.5, 2.5 + 37.5/16 = 4.84375, 4.84375 * 15/16 = 4.541015625
  const arrivals = [0, 20, 45, 60, 80];
  const expected = [0, 0, 2.5, 4.84375, 4.541015625];
  for (const [name, base] of [
    ['no wrap', 1000],
    ['timestamps wrap past 2^32', 0xffffffff - 300],
  ] as const) {
    const tracker = new SequenceTracker();
    arrivals.forEach((ms, i) => {
      const ts = (base + 160 * i) >>> 0;
      tracker.updateJitter(ts, ms, 8000);
      t.equal(tracker.jitter, expected[i], `${name}: jitter after packet ${i}`);
    });
  }
  const tracker = new SequenceTracker();
  for (let i = 0; i < 4; i++) tracker.updateJitter(160 * i, 20 * i + (i === 2 ? 5 : 0), 8000);
  tracker.update(1);
  tracker.update(2);
  t.equal(tracker.snapshotForReport().jitter, Math.round(4.84375), 'reported rounded, in timestamp units');
});

t.test('extendSeq: nearest extended value', async (t) => {
  const cases: Array<[ref: number, seq: number, ext: number]> = [
    [100, 101, 101],
    [100, 99, 99],
    [65535, 0, 65536],
    [65536, 65535, 65535],
    [65536 * 5 + 10, 65530, 65536 * 4 + 65530],
    [65536 * 5 + 65530, 5, 65536 * 6 + 5],
    [100, 100 + 32767, 100 + 32767],
    [100, (100 + 32768) & 0xffff, 100 - 32768],
    [2 ** 40 + 3, 2, 2 ** 40 + 2],
    [0, 65535, -1],
  ];
  for (const [ref, seq, ext] of cases) t.equal(extendSeq(ref, seq), ext, `extendSeq(${ref}, ${seq})`);
});
