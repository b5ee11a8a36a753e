// The run's Markdown report: machine, one summary table (each figure next to
// its same-run baseline and target), then each scenario's detail tables.

/** @param {unknown} v */
function cell(v) {
  if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return '–';
  return String(v).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/**
 * @param {string[]} columns
 * @param {unknown[][]} rows
 */
function table(columns, rows) {
  const out = [`| ${columns.map(cell).join(' | ')} |`, `| ${columns.map(() => '---').join(' | ')} |`];
  for (const r of rows) out.push(`| ${r.map(cell).join(' | ')} |`);
  return out.join('\n');
}

const verdictMark = { met: '✅ met', missed: '❌ missed', info: 'ℹ️ info', skipped: '⏭️ skipped', error: '💥 error' };

/**
 * @param {Awaited<ReturnType<typeof import('./machine.mjs').describeMachine>>} machine
 * @param {{quick: boolean, seconds: number, loadAvg: number[], build: unknown, soakMinutes: number}} run
 */
export function machineLine(machine, run) {
  return [
    `**Machine:** ${machine.cpuModel}, ${machine.cores} cores, ${Math.round(machine.memTotalMiB / 1024)} GiB RAM, ${machine.kernel}, Node ${machine.node}, ${machine.ffmpeg ?? 'no ffmpeg'}; net.core.rmem_max ${machine.rmemMax}.`,
    `**Run:** ${run.quick ? '--quick (small N, short windows: proves the bench runs; figures are not targets)' : 'full'}, ${(run.seconds / 60).toFixed(1)} min, soak ${run.quick ? '30 s' : `${run.soakMinutes} min`}; load average at start ${run.loadAvg.map((v) => v.toFixed(2)).join(' / ')} (1/5/15 min) — other work on the machine shows up in every figure, which is why each sits next to a baseline measured in the same run.`,
  ].join('\n\n');
}

/**
 * @param {import('./scenario.mjs').ScenarioResult[]} results
 */
export function summaryTable(results) {
  /** @type {unknown[][]} */
  const rows = [];
  for (const r of results) {
    for (const row of r.rows) {
      rows.push([r.id, row.measure, row.value, row.baseline ?? '', row.ratio ?? '', row.target ?? '', verdictMark[row.verdict] ?? row.verdict]);
    }
  }
  return table(['#', 'measure', 'result', 'baseline (same run)', 'ratio', 'target', 'verdict'], rows);
}

/**
 * @param {Awaited<ReturnType<typeof import('./machine.mjs').describeMachine>>} machine
 * @param {{quick: boolean, seconds: number, loadAvg: number[], build: unknown, soakMinutes: number}} run
 * @param {import('./scenario.mjs').ScenarioResult[]} results
 */
export function markdown(machine, run, results) {
  const parts = [`# offcast benchmark, ${machine.date}`, machineLine(machine, run), '## Summary', summaryTable(results)];
  for (const r of results) {
    parts.push(`## ${r.id}. ${r.title}${r.seconds !== undefined ? ` (${Math.round(r.seconds)} s)` : ''}`);
    for (const t of r.tables) {
      if (t.rows.length === 0) continue;
      parts.push(`**${t.title}**`, table(t.columns, t.rows));
    }
    if (r.notes.length > 0) parts.push(r.notes.map((n) => `- ${n}`).join('\n'));
  }
  return `${parts.join('\n\n')}\n`;
}
