// The bench's reading of /metrics: parsing, histogram deltas between scrapes, quantile bounds.
import t from 'tap';
import { histogram, histogramDelta, histogramQuantileMs, pacingView, parseMetrics } from './metrics.mjs';

const scrape = (counts: number[], sum: number, extra = ''): string =>
  [
    '# HELP offcast_send_lateness_seconds Lateness of each RTP send against its schedule',
    '# TYPE offcast_send_lateness_seconds histogram',
    `offcast_send_lateness_seconds_bucket{le="0.001"} ${counts[0]}`,
    `offcast_send_lateness_seconds_bucket{le="0.005"} ${counts[1]}`,
    `offcast_send_lateness_seconds_bucket{le="0.01"} ${counts[2]}`,
    `offcast_send_lateness_seconds_bucket{le="+Inf"} ${counts[3]}`,
    `offcast_send_lateness_seconds_sum ${sum}`,
    `offcast_send_lateness_seconds_count ${counts[3]}`,
    extra,
  ].join('\n');

t.test('parseMetrics keeps samples by name and labels, skips comments and junk', async (t) => {
  const m = parseMetrics('# HELP x y\nfoo 1\nbar{a="b c"} 2.5\nbaz NaN-ish\n\nqux +Inf\n');
  t.same(
    [...m.entries()],
    [
      ['foo', 1],
      ['bar{a="b c"}', 2.5],
      ['qux', Infinity],
    ],
  );
});

t.test('histogram reads buckets in bound order, with sum and count', async (t) => {
  const h = histogram(parseMetrics(scrape([1, 5, 9, 10], 0.04)), 'offcast_send_lateness_seconds');
  t.same(h, { le: [0.001, 0.005, 0.01, Infinity], cumulative: [1, 5, 9, 10], sum: 0.04, count: 10 });
  t.equal(histogram(parseMetrics('foo 1'), 'offcast_send_lateness_seconds'), null);
});

t.test('histogramDelta is what a window observed', async (t) => {
  const a = histogram(parseMetrics(scrape([1, 5, 9, 10], 0.04)), 'offcast_send_lateness_seconds');
  const b = histogram(parseMetrics(scrape([11, 25, 39, 40], 0.1)), 'offcast_send_lateness_seconds');
  const d = histogramDelta(a, b);
  t.same(d?.cumulative, [10, 20, 30, 30]);
  t.equal(d?.count, 30);
  t.ok(Math.abs((d?.sum ?? 0) - 0.06) < 1e-12);
  t.equal(histogramDelta(null, b), b, 'no first scrape: everything counts');
});

t.test('histogramQuantileMs returns the bound at or above the quantile', async (t) => {
  const h = { le: [0.001, 0.005, 0.01, Infinity], cumulative: [50, 98, 99, 100], sum: 0, count: 100 };
  const cases: [number, number | null][] = [
    [0.5, 1],
    [0.9, 5],
    [0.98, 5],
    [0.99, 10],
    [0.999, Infinity],
  ];
  for (const [q, want] of cases) t.equal(histogramQuantileMs(h, q), want, `q=${q}`);
  t.equal(histogramQuantileMs({ ...h, count: 0 }, 0.5), null, 'empty');
  t.equal(histogramQuantileMs(null, 0.5), null, 'absent');
});

t.test('pacingView combines histograms and counters of two scrapes', async (t) => {
  const before = parseMetrics(scrape([0, 0, 0, 0], 0, 'offcast_rtp_packets_sent_total 100\noffcast_send_errors_total 2'));
  const after = parseMetrics(scrape([90, 99, 100, 100], 0.1, 'offcast_rtp_packets_sent_total 350\noffcast_send_errors_total 2'));
  const v = pacingView(before, after);
  t.equal(v.sendLatenessP50Ms, 1);
  t.equal(v.sendLatenessP99Ms, 5);
  t.equal(v.sendLatenessMeanMs, 1);
  t.equal(v.schedulerLagP99Ms, null, 'no lag histogram in these scrapes');
  t.equal(v.packetsSent, 250);
  t.equal(v.sendErrors, 0);
});
