// The timing wheel: order, catch-up after a stall, cancellation, far-future items.
import t from 'tap';
import { TimingWheel, type WheelItem } from '../../offload/scheduler.js';

class Clock {
  ms = 1000;
  now = (): number => this.ms;
}

class Item implements WheelItem {
  due = 0;
  wheelNext: WheelItem | null = null;
  wheelPrev: WheelItem | null = null;
  wheelSlot = -1;
  runs: number[] = [];
  constructor(
    readonly name: string,
    readonly log: string[],
    readonly next: (now: number, due: number) => number,
  ) {}
  run(now: number): number {
    this.runs.push(now);
    this.log.push(this.name);
    return this.next(now, this.due);
  }
}

/** Drives the wheel's own timer with a fake clock. */
async function advance(clock: Clock, to: number): Promise<void> {
  while (clock.ms < to) {
    clock.ms += 1;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 0));
  }
}

t.test('items run at their slot, in due order across slots, and reschedule', async (t) => {
  const clock = new Clock();
  const wheel = new TimingWheel(clock.now);
  t.teardown(() => wheel.stop());
  const log: string[] = [];
  const a = new Item('a', log, (_n, due) => (due < 1030 ? due + 10 : -1));
  const b = new Item('b', log, () => -1);
  wheel.schedule(a, 1005);
  wheel.schedule(b, 1012);
  t.equal(wheel.size, 2);
  await advance(clock, 1040);
  t.same(log, ['a', 'b', 'a', 'a', 'a'], 'a at 1005, b at 1012, a at 1015, 1025 and 1035, where it stops');
  t.ok(
    a.runs.every((r, i) => r >= [1005, 1015, 1025, 1035][i]!),
    'never early',
  );
  t.equal(wheel.size, 0, 'wheel empty');
});

t.test('cancel removes an item; rescheduling moves it', async (t) => {
  const clock = new Clock();
  const wheel = new TimingWheel(clock.now);
  t.teardown(() => wheel.stop());
  const log: string[] = [];
  const a = new Item('a', log, () => -1);
  const b = new Item('b', log, () => -1);
  const c = new Item('c', log, () => -1);
  wheel.schedule(a, 1003);
  wheel.schedule(b, 1003);
  wheel.schedule(c, 1003);
  wheel.cancel(b);
  wheel.schedule(c, 1008);
  t.equal(wheel.size, 2);
  await advance(clock, 1005);
  t.same(log, ['a']);
  await advance(clock, 1010);
  t.same(log, ['a', 'c']);
});

t.test('after a stall every overdue item runs once, and an item beyond one revolution waits its turn', async (t) => {
  const clock = new Clock();
  const wheel = new TimingWheel(clock.now);
  t.teardown(() => wheel.stop());
  const log: string[] = [];
  const items = [0, 1, 2, 3, 4].map((i) => new Item(`i${i}`, log, () => -1));
  items.forEach((it, i) => wheel.schedule(it, 1001 + i * 3));
  const far = new Item('far', log, () => -1);
  wheel.schedule(far, 1000 + 5000); // more than the 4096-slot horizon away
  clock.ms = 1100; // the event loop stalled ~100 ms
  await new Promise((r) => setTimeout(r, 5));
  t.same(log, ['i0', 'i1', 'i2', 'i3', 'i4'], 'all overdue items ran, in order');
  clock.ms = 1000 + 4096 + 10; // one revolution later the far item's slot comes by, but it is not due
  await new Promise((r) => setTimeout(r, 5));
  t.notOk(log.includes('far'), 'not run a revolution early');
  await advance(clock, 6002);
  t.ok(log.includes('far'), 'runs when due');
  t.ok(far.runs[0]! >= 6000);
});
