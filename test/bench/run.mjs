#!/usr/bin/env node
// `npm run bench`: runs the benchmark scenarios on loopback against a built
// server (node dist/server/main.js, a child process), measures at independent
// C tools, and writes bench-results/bench-<date>.md and .json (the Markdown is
// also printed). See test/bench/README.md.
//
//   npm run bench [-- --quick] [--only 1,2,M] [--soak-minutes 10] [--out DIR] [--rebuild]
//
// Exit code 1 when a scenario failed to run (not when a target is missed).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildTools } from './tools/build.mjs';
import { describeMachine } from './lib/machine.mjs';
import { makeMedia } from './lib/media.mjs';
import { killTracked } from './lib/proc.mjs';
import { markdown } from './lib/report.mjs';
import { buildServer, repoRoot } from './lib/server.mjs';
import * as micro from './scenarios/micro.mjs';
import * as unpaced from './scenarios/unpaced.mjs';
import * as fanout from './scenarios/fanout.mjs';
import * as cores from './scenarios/cores.mjs';
import * as control from './scenarios/control.mjs';
import * as ingest from './scenarios/ingest.mjs';
import * as memory from './scenarios/memory.mjs';

/** In run order: the quick, load-free ones first, the long soak last. */
const SCENARIOS = [micro, unpaced, fanout, cores, control, ingest, memory];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'soak-minutes': { type: 'string', default: '10' },
    out: { type: 'string', default: path.join(repoRoot, 'bench-results') },
    rebuild: { type: 'boolean', default: false },
  },
});
const quick = values.quick === true;
const soakMinutes = Number(values['soak-minutes']);
if (!(soakMinutes > 0 && soakMinutes <= 60)) fail('--soak-minutes must be in (0, 60]');
const only = values.only === undefined ? null : new Set(values.only.split(',').map((s) => s.trim().toUpperCase()));
const selected = SCENARIOS.filter((s) => only === null || only.has(s.id));
if (selected.length === 0) fail(`--only matched no scenario (ids: ${SCENARIOS.map((s) => s.id).join(', ')})`);

/** @param {string} msg */
function fail(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

const started = performance.now();
/** @param {string} msg */
function log(msg) {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

// Whatever happens, the processes this run started end with it.
process.on('exit', killTracked);
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(signal, () => {
    log(`${signal}: stopping`);
    killTracked();
    process.exit(130);
  });
}
// A hard cap on the whole run, far above its expected length.
const hardLimitMs = quick ? 5 * 60_000 : (30 + soakMinutes) * 60_000;
setTimeout(() => {
  log(`the run exceeded ${hardLimitMs / 60_000} min: killing it`);
  killTracked();
  process.exit(1);
}, hardLimitMs).unref();

const loadAvg = os.loadavg();
const machine = await describeMachine();
log(`${machine.cpuModel}, ${machine.cores} cores, ${machine.kernel}, Node ${machine.node}; load ${loadAvg.map((v) => v.toFixed(2)).join(' ')}`);
const tools = await buildTools();
log('building the server (tsc -p .) if sources changed');
const build = await buildServer({ force: values.rebuild === true });
if (build.built) log(`built in ${(build.ms / 1000).toFixed(1)} s${build.typeErrors ? ` (${build.typeErrors} type errors; emitted anyway)` : ''}`);

const tmp = await mkdtemp(path.join(os.tmpdir(), 'offcast-bench-'));
/** @type {import('./lib/scenario.mjs').ScenarioResult[]} */
const results = [];
try {
  const mediaDir = path.join(tmp, 'media');
  await mkdir(mediaDir, { recursive: true });
  log('making media with ffmpeg');
  const media = await makeMedia(mediaDir);
  /** @type {import('./lib/scenario.mjs').BenchContext} */
  const ctx = { quick, tmp, media, tools, log, soakMinutes, shared: {} };
  if (quick && selected.includes(memory)) {
    // --quick must end within a minute: its 30 s soak runs beside the other scenarios
    // (on ports of its own); their figures are not targets in this mode anyway.
    log('starting the 30 s RSS soak in the background');
    const soak = memory.startSoak(ctx);
    soak.catch(() => undefined);
    ctx.shared.soak = soak;
  }
  for (const s of selected) {
    log(`scenario ${s.id}: ${s.title}`);
    const t0 = performance.now();
    /** @type {import('./lib/scenario.mjs').ScenarioResult} */
    let res;
    try {
      res = await s.run(ctx);
    } catch (err) {
      const e = /** @type {Error} */ (err);
      log(`scenario ${s.id} failed: ${e.stack ?? e}`);
      res = {
        id: s.id,
        title: s.title,
        rows: [{ measure: 'the scenario did not complete', value: e.message.slice(0, 300), verdict: 'error' }],
        tables: [],
        notes: [
          String(e.stack ?? e)
            .split('\n')
            .slice(0, 4)
            .join(' '),
        ],
        data: { error: String(e.stack ?? e) },
      };
    }
    res.seconds = (performance.now() - t0) / 1000;
    results.push(res);
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}

const seconds = (performance.now() - started) / 1000;
const runInfo = { quick, seconds, loadAvg, build, soakMinutes };
const md = markdown(machine, runInfo, results);
const stamp = machine.date.replace(/[:.]/g, '-');
const outDir = path.resolve(String(values.out));
await mkdir(outDir, { recursive: true });
const base = path.join(outDir, `bench-${stamp}${quick ? '-quick' : ''}`);
await writeFile(`${base}.md`, md);
await writeFile(`${base}.json`, `${JSON.stringify({ machine, run: runInfo, results }, null, 2)}\n`);
process.stdout.write(md);
log(`wrote ${path.relative(process.cwd(), base)}.md and .json`);
process.exitCode = results.some((r) => r.rows.some((row) => row.verdict === 'error')) ? 1 : 0;
