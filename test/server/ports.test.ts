// PortAllocator: even RTP ports from a range, all-or-nothing, released and reused round-robin.
import t from 'tap';
import { PortAllocator } from '../../server/ports.js';

t.test('capacity: whole pairs inside [min, max]', async (t) => {
  const cases: [number, number, number][] = [
    [20000, 29999, 5000],
    [20000, 20001, 1],
    [20000, 20003, 2],
    // 20004 would need 20005 for RTCP, which is past max.
    [20000, 20004, 2],
    [40000, 40005, 3],
  ];
  for (const [min, max, pairs] of cases) {
    const ports = new PortAllocator(min, max);
    t.equal(ports.capacity, pairs, `${min}-${max} holds ${pairs} pairs`);
    t.equal(ports.free, pairs, `${min}-${max} starts all free`);
    const got = ports.allocate(pairs);
    t.ok(got !== null, `${min}-${max}: all ${pairs} pairs can be taken at once`);
    t.same(
      [...got!].sort((a, b) => a - b),
      Array.from({ length: pairs }, (_, i) => min + 2 * i),
      `${min}-${max}: every even port, each once`,
    );
    t.ok(
      got!.every((p) => p % 2 === 0 && p >= min && p + 1 <= max),
      `${min}-${max}: RTP even, RTCP (p+1) inside the range`,
    );
    t.equal(ports.allocate(1), null, `${min}-${max}: none left`);
    t.equal(ports.free, 0);
  }
});

t.test('all-or-nothing', async (t) => {
  const ports = new PortAllocator(30000, 30005); // 3 pairs
  const a = ports.allocate(2);
  t.same(a, [30000, 30002], 'two pairs in order');
  t.equal(ports.free, 1);
  t.equal(ports.allocate(2), null, 'two pairs asked, one free: nothing');
  t.equal(ports.free, 1, 'the failed request took nothing');
  t.equal(ports.allocate(3), null, 'more than the capacity: nothing');
  t.equal(ports.free, 1);
  t.same(ports.allocate(1), [30004], 'the single free pair is still there');
  t.equal(ports.free, 0);
  t.same(ports.allocate(0), [], 'zero pairs is an empty grant');
});

t.test('release frees exactly what was given, once', async (t) => {
  const ports = new PortAllocator(30000, 30007); // 4 pairs
  const a = ports.allocate(2)!;
  const b = ports.allocate(2)!;
  t.same(a, [30000, 30002]);
  t.same(b, [30004, 30006]);
  ports.release(a);
  t.equal(ports.free, 2, 'two pairs back');
  ports.release(a);
  t.equal(ports.free, 2, 'releasing twice frees nothing more');
  ports.release([30001, 29998, 30008, 31000, 30000.5, NaN]);
  t.equal(ports.free, 2, 'odd, outside and non-integer ports are ignored');
  const c = ports.allocate(2)!;
  t.same(
    [...c].sort((x, y) => x - y),
    [30000, 30002],
    'the released pairs are granted again',
  );
  t.equal(ports.allocate(1), null, 'b is still held');
  ports.release(b);
  ports.release(c);
  t.equal(ports.free, 4, 'all back');
});

t.test('round-robin with wrap: a released pair is not reused at once', async (t) => {
  const ports = new PortAllocator(30000, 30007); // 4 pairs
  const first = ports.allocate(1)!;
  t.same(first, [30000]);
  ports.release(first);
  t.same(ports.allocate(1), [30002], 'the next pair, not the one just released');
  t.same(ports.allocate(1), [30004]);
  t.same(ports.allocate(1), [30006]);
  t.same(ports.allocate(1), [30000], 'wraps to the start');
  t.equal(ports.allocate(1), null, 'all four held');
  ports.release([30004]);
  t.same(ports.allocate(1), [30004], 'the scan wraps past the held ones to the free one');
  // A multi-pair grant that straddles the end of the range.
  const wide = new PortAllocator(30000, 30007);
  wide.allocate(3);
  wide.release([30000, 30002]);
  const straddle = wide.allocate(3)!;
  t.same(straddle, [30006, 30000, 30002], 'grants across the wrap, in scan order');
  t.equal(wide.free, 0);
});

t.test('long churn keeps the books straight', async (t) => {
  const ports = new PortAllocator(30000, 30019); // 10 pairs
  const held: number[][] = [];
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let granted = 0;
  for (let i = 0; i < 2000; i++) {
    if (rand(2) === 0 && held.length > 0) ports.release(held.splice(rand(held.length), 1)[0]!);
    else {
      const n = 1 + rand(3);
      const got = ports.allocate(n);
      const inUse = held.reduce((a, h) => a + h.length, 0);
      if (got === null) t.ok(n > 10 - inUse, 'refused only when not enough are free');
      else {
        granted++;
        held.push(got);
      }
    }
    const all = held.flat();
    if (new Set(all).size !== all.length) {
      t.fail(`a port was granted twice at step ${i}`);
      break;
    }
    if (ports.free !== 10 - all.length) {
      t.fail(`free count ${ports.free} != ${10 - all.length} at step ${i}`);
      break;
    }
  }
  t.ok(granted > 100, `${granted} grants made`);
  for (const h of held) ports.release(h);
  t.equal(ports.free, 10, 'everything back at the end');
});

t.test('quarantine: a pair another process holds comes back only after the delay', async (t) => {
  const ports = new PortAllocator(30000, 30003, 40); // 2 pairs
  const busy = ports.allocate(1)!;
  ports.quarantine(busy);
  t.equal(ports.free, 1, 'still held right after');
  t.equal(ports.quarantined, 1, 'and counted as quarantined');
  t.same(ports.allocate(1), [30002], 'the other pair is granted meanwhile');
  t.equal(ports.allocate(1), null, 'the quarantined pair is not');
  await new Promise((r) => setTimeout(r, 120));
  t.equal(ports.free, 1, 'back in rotation after the delay');
  t.equal(ports.quarantined, 0, 'no longer counted as quarantined');
  t.same(ports.allocate(1), busy);
});
