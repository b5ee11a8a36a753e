// The paced fan-out ramp shared by scenarios 1 and 6: N looping Opus play
// sessions (50 packets/s each), N rising step by step on one server until the
// receiver sees p99 lateness above 5 ms or a gap.
import { DEST_PORT_BASE, measureWindow } from './measure.mjs';
import { withServer } from './scenario.mjs';
import { createPlaySessions, latencySummary } from './sessions.mjs';
import { round1, sleep } from './proc.mjs';

export const P99_LIMIT_MS = 5;

/** Steps of 250 up to the target (2000): the two ramps' limits, and so their ratio, are read to that grain. */
export const RAMP_STEPS = [250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000, 3500, 4000, 4500, 5000];

/**
 * Whether a window holds the pacing target.
 * @param {ReturnType<typeof import('./measure.mjs').streamView>} r
 * @param {number} n
 */
export function holds(r, n) {
  return r.p99 !== null && r.p99 <= P99_LIMIT_MS && r.lost === 0 && r.activeStreams === n;
}

/**
 * @param {import('./scenario.mjs').BenchContext} ctx
 * @param {{workers: number, steps: number[], warmupSec: number, measureSec: number, deadlineMs: number}} opts
 */
export async function paceRamp(ctx, opts) {
  /** @type {any[]} */
  const steps = [];
  let largest = 0;
  /** @type {string | null} */
  let stoppedBy = null;
  await withServer(ctx, { workers: opts.workers }, async (server) => {
    let have = 0;
    for (const n of opts.steps) {
      if (performance.now() > opts.deadlineMs) {
        stoppedBy = `time budget spent before N = ${n}`;
        break;
      }
      ctx.log(`  ${opts.workers} worker(s): N = ${n}`);
      const created = await createPlaySessions(server, { from: have, to: n, portBase: DEST_PORT_BASE, media: ctx.media.opusName, deadlineMs: opts.deadlineMs });
      if (created.failures > 0) {
        stoppedBy = `creating sessions ${have}..${n - 1} failed ${created.failures}×: ${created.firstError}`;
        break;
      }
      const createPerSec = round1(((n - have) / created.elapsedMs) * 1000);
      have = n;
      await sleep(1000);
      // A neighbour's burst can spoil one window on a shared machine: a failing step is measured once more.
      let attempt = 0;
      let ok = false;
      while (attempt < 2 && !ok) {
        const w = await measureWindow({ count: n, warmupSec: opts.warmupSec, measureSec: opts.measureSec, server });
        ok = holds(w.receiver, n);
        steps.push({
          n,
          attempt,
          expectedPps: n * 50,
          createPerSec,
          createLatency: attempt === 0 ? latencySummary(created.latenciesMs) : null,
          receiver: w.receiver,
          server: w.server,
          cpu: w.cpu,
          holds: ok,
        });
        attempt++;
      }
      if (!ok) {
        stoppedBy = `N = ${n} missed p99 ≤ ${P99_LIMIT_MS} ms with no gaps (twice)`;
        break;
      }
      largest = n;
    }
    if (stoppedBy === null) stoppedBy = `the last step (N = ${opts.steps.at(-1)}) held: the true limit is higher`;
  });
  return { workers: opts.workers, steps, largest, stoppedBy };
}

/**
 * The step table of a ramp.
 * @param {Awaited<ReturnType<typeof paceRamp>>} ramp
 * @returns {import('./scenario.mjs').Table}
 */
export function rampTable(ramp) {
  return {
    title: `Paced fan-out, ${ramp.workers} worker${ramp.workers === 1 ? '' : 's'}: receiver (rtprecv) and server (/metrics) views per step`,
    columns: [
      'N',
      'pps expected / received',
      'p50 / p99 / p99.9 / max (ms)',
      'worst stream p99 (ms)',
      'gaps',
      'server send lateness p99 (ms, bucket)',
      'scheduler lag p99 (ms, bucket)',
      'server CPU %',
      'rtprecv CPU %',
      'other CPU % (not ours)',
      'holds',
    ],
    rows: ramp.steps.map((s) => [
      `${s.n}${s.attempt > 0 ? ' (again)' : ''}`,
      `${s.expectedPps} / ${s.receiver.packetsPerSec}`,
      `${s.receiver.p50} / ${s.receiver.p99} / ${s.receiver.p999} / ${s.receiver.max}`,
      s.receiver.perStreamP99Max,
      s.receiver.lost,
      s.server?.sendLatenessP99Ms ?? null,
      s.server?.schedulerLagP99Ms ?? null,
      s.cpu.serverPct,
      s.cpu.receiverPct,
      s.cpu.otherPct,
      s.holds ? 'yes' : 'no',
    ]),
  };
}
