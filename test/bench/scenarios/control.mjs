// Scenario 5, control plane under load: while 2000 streams flow (two workers),
// create 1000 more sessions with 4 requests in flight. Timed per request; the 2000
// streams' lateness is measured during the burst and, as the baseline, in a
// window just before it.
import { startReceiver } from '../tools/drive.mjs';
import { DEST_PORT_BASE, measureWindow } from '../lib/measure.mjs';
import { P99_LIMIT_MS } from '../lib/ramp.mjs';
import { fmt, ms, ratio, withServer } from '../lib/scenario.mjs';
import { createPlaySessions, latencySummary } from '../lib/sessions.mjs';
import { round3, sleep } from '../lib/proc.mjs';

export const id = '5';
export const title = 'Control plane: 1000 creates while 2000 streams flow';
/** How much worse the streams' p99 may be during the burst and still count as "not worse" (noise). */
const NOT_WORSE_MS = 1;

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @returns {Promise<import('../lib/scenario.mjs').ScenarioResult>}
 */
export async function run(ctx) {
  const q = ctx.quick;
  const streams = q ? 200 : 2000;
  const burst = q ? 100 : 1000;
  // A client keeping 4 creates in flight: with more, each request mostly waits behind the
  // others (Little's law) and latency measures the queue, not the server.
  const concurrency = 4;
  // 2000 paced streams are more than one worker holds at p99 ≤ 5 ms on 2 cores (scenario 1):
  // the background runs on two, as a deployment for that load would.
  const result = await withServer(ctx, { workers: 2 }, async (server) => {
    ctx.log(`  creating the ${streams} background streams`);
    const initial = await createPlaySessions(server, {
      from: 0,
      to: streams,
      portBase: DEST_PORT_BASE,
      media: ctx.media.opusName,
      concurrency,
      deadlineMs: performance.now() + 120_000,
    });
    if (initial.failures > 0) throw new Error(`creating ${streams} sessions: ${initial.firstError}`);
    await sleep(q ? 500 : 2000);
    ctx.log('  window without the burst');
    const warmupSec = q ? 0.5 : 1;
    const without = await measureWindow({ count: streams, warmupSec, measureSec: q ? 1 : 4, server });

    ctx.log(`  burst: ${burst} creates, ${concurrency} in flight`);
    // The new sessions' destinations are bound too, so their first packets find a receiver.
    const sink = startReceiver({ portBase: DEST_PORT_BASE + 2 * streams, count: burst, maxSeconds: 300, bin: ctx.tools.rtprecv });
    await sink.ready;
    /** @type {Awaited<ReturnType<typeof createPlaySessions>> | null} */
    let created = null;
    const during = await measureWindow({
      count: streams,
      warmupSec,
      // The measured part is the burst itself (plus 200 ms).
      measureSec: 0.2,
      server,
      during: async () => {
        // Bounded: an overloaded server gets 60 s, then the rest count as failed.
        created = await createPlaySessions(server, {
          from: streams,
          to: streams + burst,
          portBase: DEST_PORT_BASE,
          media: ctx.media.opusName,
          concurrency,
          deadlineMs: performance.now() + 60_000,
        });
      },
    });
    await sleep(q ? 300 : 1000);
    const sinkReport = await sink.stop();

    // Service time of one create with nothing queued ahead of it.
    const serial = await createPlaySessions(server, {
      from: streams + burst,
      to: streams + burst + (q ? 20 : 100),
      portBase: DEST_PORT_BASE,
      media: ctx.media.opusName,
      concurrency: 1,
      deadlineMs: performance.now() + 30_000,
    });
    return { initial, without, during, created: /** @type {any} */ (created), sinkReport, serial };
  });

  const c = result.created;
  const lat = latencySummary(c.latenciesMs);
  const serialLat = latencySummary(result.serial.latenciesMs);
  const initialLat = latencySummary(result.initial.latenciesMs);
  const w = result.without.receiver;
  const d = result.during.receiver;
  const elapsedSec = c.elapsedMs / 1000;
  const notWorse = d.p99 !== null && w.p99 !== null && d.p99 <= w.p99 + NOT_WORSE_MS && d.p99 <= P99_LIMIT_MS && d.lost === 0;
  const full = !q;
  return {
    id,
    title,
    rows: [
      {
        measure: `${burst} creates, ${concurrency} in flight, while ${streams} streams flow: wall time`,
        value: `${fmt(elapsedSec)} s (${fmt(burst / elapsedSec, 0)}/s${c.failures ? `, ${c.failures} failed` : ''})`,
        baseline: `first ${streams} creates (fewer streams running): ${fmt(result.initial.elapsedMs / 1000)} s`,
        target: '< 2 s',
        verdict: full ? (elapsedSec < 2 && c.failures === 0 ? 'met' : 'missed') : 'info',
      },
      {
        measure: `create latency p50 / p99 / max, ${concurrency} in flight`,
        value: `${ms(lat.p50)} / ${ms(lat.p99)} / ${ms(lat.max)}`,
        baseline: `1 in flight: ${ms(serialLat.p50)} / ${ms(serialLat.p99)}`,
        ratio: ratio(lat.p99, serialLat.p99),
        target: 'p99 ≤ 20 ms',
        verdict: full ? (lat.p99 !== null && lat.p99 <= 20 ? 'met' : 'missed') : 'info',
      },
      {
        measure: `p99 / max lateness of the ${streams} streams during the burst`,
        value: `${ms(d.p99)} / ${ms(d.max)}, ${d.lost} gaps`,
        baseline: `just before: ${ms(w.p99)} / ${ms(w.max)}, ${w.lost} gaps`,
        ratio: ratio(d.p99, w.p99),
        target: `not worse (≤ +${NOT_WORSE_MS} ms), ≤ ${P99_LIMIT_MS} ms`,
        verdict: full ? (notWorse ? 'met' : 'missed') : 'info',
      },
    ],
    tables: [
      {
        title: `The ${streams} streams: before vs during the burst`,
        columns: [
          'window',
          'length (s)',
          'p50 / p99 / p99.9 / max (ms)',
          'gaps',
          'server send lateness p99 (bucket)',
          'scheduler lag p99 (bucket)',
          'server CPU %',
          'other CPU % (not ours)',
        ],
        rows: [
          [
            'before',
            result.without.measuredSec,
            `${w.p50} / ${w.p99} / ${w.p999} / ${w.max}`,
            w.lost,
            result.without.server?.sendLatenessP99Ms ?? null,
            result.without.server?.schedulerLagP99Ms ?? null,
            result.without.cpu.serverPct,
            result.without.cpu.otherPct,
          ],
          [
            'during burst',
            result.during.measuredSec,
            `${d.p50} / ${d.p99} / ${d.p999} / ${d.max}`,
            d.lost,
            result.during.server?.sendLatenessP99Ms ?? null,
            result.during.server?.schedulerLagP99Ms ?? null,
            result.during.cpu.serverPct,
            result.during.cpu.otherPct,
          ],
        ],
      },
    ],
    notes: [
      `With ${concurrency} requests in flight a request waits for those ahead of it (Little's law: latency ≈ ${concurrency} / throughput = ${fmt((concurrency / (burst / elapsedSec)) * 1000, 1)} ms here); the 1-in-flight latency is the service time.`,
      `The ${burst} new sessions: ${result.sinkReport.activeStreams} of ${burst} had sent packets when their receiver stopped ${q ? '0.3' : '1'} s after the burst.`,
      `Initial ${streams} creates: p50 ${ms(initialLat.p50)}, p99 ${ms(initialLat.p99)}.`,
    ],
    data: {
      initial: { elapsedMs: round3(result.initial.elapsedMs), latency: initialLat },
      burst: { elapsedMs: round3(c.elapsedMs), failures: c.failures, latency: lat },
      serial: { latency: serialLat },
      without: result.without,
      during: { ...result.during, report: undefined },
      sink: { activeStreams: result.sinkReport.activeStreams, lost: result.sinkReport.lost },
    },
  };
}
