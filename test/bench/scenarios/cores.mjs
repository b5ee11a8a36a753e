// Scenario 6, cores: the paced fan-out ramp of scenario 1 with
// offload.workers = 2, against the same run's one-worker figure.
import { P99_LIMIT_MS, RAMP_STEPS, paceRamp, rampTable } from '../lib/ramp.mjs';
import { ratio } from '../lib/scenario.mjs';

export const id = '6';
export const title = 'Cores: offload.workers = 2 vs 1';

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @returns {Promise<import('../lib/scenario.mjs').ScenarioResult>}
 */
export async function run(ctx) {
  const q = ctx.quick;
  const steps = q ? [200] : RAMP_STEPS;
  const opts = { steps, warmupSec: q ? 0.5 : 1, measureSec: q ? 1 : 6 };
  /** @type {Awaited<ReturnType<typeof paceRamp>>} */
  let one = ctx.shared.rampOneWorker;
  if (one === undefined) one = await paceRamp(ctx, { ...opts, workers: 1, deadlineMs: performance.now() + (q ? 30_000 : 240_000) });
  const two = await paceRamp(ctx, { ...opts, workers: 2, deadlineMs: performance.now() + (q ? 30_000 : 240_000) });
  const capped = two.largest === steps.at(-1);
  const r = one.largest > 0 ? two.largest / one.largest : null;
  return {
    id,
    title,
    rows: [
      {
        measure: `largest N with p99 ≤ ${P99_LIMIT_MS} ms and no gaps, 2 workers`,
        value: `${two.largest}${capped ? ' (top step)' : ''}`,
        baseline: `1 worker, same run: ${one.largest}`,
        ratio: ratio(two.largest, one.largest),
        target: '≥ 1.5×',
        verdict: q ? 'info' : r !== null && r >= 1.5 ? 'met' : 'missed',
      },
    ],
    tables: [rampTable(two)],
    notes: [
      `2-worker ramp: ${two.stoppedBy}.`,
      "Both workers, the control plane and rtprecv share the machine's cores: the receiver's CPU is part of what limits N.",
    ],
    data: { oneWorker: { largest: one.largest }, twoWorkers: two },
  };
}
