// The bench's request pool: bounded concurrency, results by index, a deadline that stops new work.
import t from 'tap';
import { describeError, latencySummary, pool } from './sessions.mjs';

t.test('pool runs every index once, never more than `concurrency` at a time', async (t) => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  const out = await pool(3, 20, 4, async (i: number) => {
    running++;
    peak = Math.max(peak, running);
    seen.push(i);
    await new Promise((resolve) => setImmediate(resolve));
    running--;
    return i * 10;
  });
  t.same(
    out,
    Array.from({ length: 17 }, (_, k) => (k + 3) * 10),
    'results by index',
  );
  t.same(
    [...seen].sort((a, b) => a - b),
    Array.from({ length: 17 }, (_, k) => k + 3),
  );
  t.equal(peak, 4);
});

t.test('pool starts nothing after its deadline; those results stay undefined', async (t) => {
  let calls = 0;
  const out = await pool(0, 5, 2, async () => ++calls, performance.now() - 1);
  t.equal(calls, 0);
  t.same(out, [undefined, undefined, undefined, undefined, undefined]);
});

t.test('pool of an empty range', async (t) => {
  t.same(await pool(5, 5, 8, async () => 1), []);
});

t.test('latencySummary: nearest-rank quantiles', async (t) => {
  const ms = Array.from({ length: 100 }, (_, i) => i + 1);
  t.same(latencySummary(ms), { count: 100, p50: 50, p99: 99, max: 100 });
  t.same(latencySummary([]), { count: 0, p50: null, p99: null, max: null });
});

t.test('describeError shows the cause fetch hides', async (t) => {
  const err = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) });
  t.equal(describeError(err), 'fetch failed (ECONNREFUSED connect ECONNREFUSED 127.0.0.1:1)');
  t.equal(describeError(new Error('plain')), 'plain');
});
