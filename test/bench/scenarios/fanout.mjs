// Scenario 1, paced fan-out: N looping Opus sessions from one cached file,
// each to its own port, measured at rtprecv. Baselines of the same run:
// `ffmpeg -re` (one process per stream) and the C paced sender rtpsend (what
// this machine and receiver show for a sender pacing in 1 ms ticks).
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSender } from '../tools/drive.mjs';
import { DEST_PORT_BASE, measureWindow } from '../lib/measure.mjs';
import { holds, P99_LIMIT_MS, RAMP_STEPS, paceRamp, rampTable } from '../lib/ramp.mjs';
import { fmt, mib, ms, ratio } from '../lib/scenario.mjs';
import { cpuTimedTool, round1, rssBytes, runBounded, sleep, stopChild, track } from '../lib/proc.mjs';

export const id = '1';
export const title = 'Paced fan-out (Opus, 20 ms packets, loop)';
const TARGET_N = 2000;
const pacedLoop = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../micro/paced-loop.mjs');

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @returns {Promise<import('../lib/scenario.mjs').ScenarioResult>}
 */
export async function run(ctx) {
  const q = ctx.quick;
  const steps = q ? [200] : RAMP_STEPS;
  const warmupSec = q ? 0.5 : 1;
  const measureSec = q ? 1 : 6;
  const ramp = await paceRamp(ctx, { workers: 1, steps, warmupSec, measureSec, deadlineMs: performance.now() + (q ? 30_000 : 240_000) });
  ctx.shared.rampOneWorker = ramp;

  // Baselines at the target N (quick: the ramp's top) and at the first N the server missed:
  // there, same N and same minute, they tell the server's limit from the machine's.
  const refN = q ? (steps.at(-1) ?? 200) : TARGET_N;
  // The N that stopped the ramp (a first window spoiled and then held again does not count).
  const lastStep = ramp.steps.at(-1);
  const missedN = lastStep !== undefined && !lastStep.holds ? lastStep.n : null;
  const baselineNs = [...new Set([refN, ...(missedN === null ? [] : [missedN])])].sort((a, b) => a - b);
  /** @type {{n: number, c: any, node: any}[]} */
  const baselines = [];
  for (const n of baselineNs) baselines.push({ n, c: await cPaced(ctx, n, warmupSec, measureSec), node: await nodePaced(ctx, n, warmupSec, measureSec) });
  const ffmpeg = await ffmpegRamp(ctx, q ? [2] : [1, 10, 25, 50, 100], warmupSec, measureSec);
  // The C pacer's own ramp (issue 11's target: the server holds at least 0.9× the N it holds).
  const cRamp = await cPacedRamp(ctx, steps, warmupSec, measureSec, performance.now() + (q ? 20_000 : 240_000));

  const stepAt = (/** @type {number} */ n) => ramp.steps.filter((s) => s.n === n).at(-1) ?? null;
  const atTarget = stepAt(refN);
  const cAtRef = baselines.find((b) => b.n === refN)?.c ?? null;
  const ffLargest = ffmpeg.steps.filter((s) => s.holds).reduce((m, s) => Math.max(m, s.n), 0);
  const ffOne = ffmpeg.steps[0] ?? null;
  const ffTop = ffmpeg.steps.at(-1) ?? null;
  const pps = (/** @type {number} */ n) => `${n} (${fmt((n * 50) / 1000, 0)} kpps)`;
  // The server's own view where it is most telling: at the target, else at the step it missed.
  const viewN = atTarget !== null ? refN : missedN;
  const view = viewN === null ? null : stepAt(viewN);

  /** @type {import('../lib/scenario.mjs').Row[]} */
  const rows = [
    {
      measure: `largest N with p99 ≤ ${P99_LIMIT_MS} ms and no gaps, 1 worker`,
      value: pps(ramp.largest),
      baseline: `ffmpeg -re, one process per stream: ${ffLargest}${ffLargest === ffmpeg.cap ? ' (cap)' : ''}`,
      ratio: ffLargest > 0 ? ratio(ramp.largest, ffLargest) : '–',
      target: `≥ ${TARGET_N}`,
      verdict: q ? 'info' : ramp.largest >= TARGET_N ? 'met' : 'missed',
    },
    {
      measure: `largest N with p99 ≤ ${P99_LIMIT_MS} ms and no gaps: offcast (1 worker) vs the C pacer's own ramp`,
      value: pps(ramp.largest),
      baseline: `C rtpsend paced: ${cRamp.largest}${cRamp.stoppedBy === null ? '' : ` (${cRamp.stoppedBy})`}`,
      ratio: cRamp.largest > 0 ? ratio(ramp.largest, cRamp.largest) : '–',
      target: '≥ 0.9×',
      verdict: q ? 'info' : cRamp.largest > 0 && ramp.largest >= 0.9 * cRamp.largest ? 'met' : 'missed',
    },
    {
      measure: `receiver p99 / max lateness, gaps at N = ${refN}`,
      value: atTarget === null ? 'not reached' : `${ms(atTarget.receiver.p99)} / ${ms(atTarget.receiver.max)}, ${atTarget.receiver.lost} gaps`,
      baseline: cAtRef === null ? '–' : `C rtpsend paced, same N: ${ms(cAtRef.receiver.p99)} / ${ms(cAtRef.receiver.max)}, ${cAtRef.receiver.lost} gaps`,
      ratio: atTarget === null || cAtRef === null ? '–' : ratio(atTarget.receiver.p99, cAtRef.receiver.p99),
      target: `≤ ${P99_LIMIT_MS} ms, 0 gaps`,
      verdict: q ? 'info' : atTarget !== null && holds(atTarget.receiver, refN) ? 'met' : 'missed',
    },
    ...baselines.map((b) => {
      const at = stepAt(b.n);
      return /** @type {import('../lib/scenario.mjs').Row} */ ({
        measure: `p99 at N = ${b.n}: offcast vs C rtpsend vs plain Node loop (same N, same minutes)`,
        value: at === null ? 'offcast: not reached' : `offcast ${ms(at.receiver.p99)} (CPU ${fmt(at.cpu.serverPct)} %)`,
        baseline: `C ${ms(b.c.receiver.p99)} (CPU ${fmt(b.c.during?.cpuPct)} %); Node ${ms(b.node.receiver.p99)} (CPU ${fmt(b.node.during?.cpuPct)} %, ${b.node.receiver.packetsPerSec} of ${b.n * 50} pps)`,
        ratio: at === null ? '–' : ratio(at.receiver.p99, b.node.receiver.p99),
        verdict: 'info',
      });
    }),
    {
      measure: `server's own view at N = ${viewN ?? '–'}: send lateness p99 / scheduler lag p99 (bucket bounds)`,
      value: view?.server ? `≤ ${ms(view.server.sendLatenessP99Ms)} / ≤ ${ms(view.server.schedulerLagP99Ms)}` : '–',
      baseline: view ? `receiver p99 ${ms(view.receiver.p99)}` : '–',
      verdict: 'info',
    },
    {
      measure: `ffmpeg -re: p99 at N = ${ffOne?.n ?? 1}, RSS per process`,
      value: ffOne === null ? '–' : `${ms(ffOne.receiver.p99)}, ${mib(ffOne.rssMeanBytes ?? 0)}`,
      baseline: ffTop === null ? '–' : `at N = ${ffTop.n}: p99 ${ms(ffTop.receiver.p99)}, ${mib(ffTop.rssTotalBytes ?? 0)} in all`,
      verdict: 'info',
    },
  ];

  const ffTable = {
    title: 'Baseline: ffmpeg -re -stream_loop -1 -c copy -f rtp, one process per stream',
    columns: [
      'N',
      'pps received',
      'p50 / p99 / max (ms)',
      'gaps',
      'RSS per process',
      'RSS total',
      'CPU % (all ffmpeg)',
      'rtprecv CPU %',
      'other CPU %',
      'holds',
    ],
    rows: ffmpeg.steps.map((s) => [
      s.n,
      s.receiver.packetsPerSec,
      `${s.receiver.p50} / ${s.receiver.p99} / ${s.receiver.max}`,
      s.receiver.lost,
      mib(s.rssMeanBytes ?? 0),
      mib(s.rssTotalBytes ?? 0),
      s.cpuPct,
      s.receiverPct,
      s.otherPct,
      s.holds ? 'yes' : 'no',
    ]),
  };
  const cTable = {
    title:
      'Baselines pacing the same streams, server stopped: C rtpsend (1 ms ticks, sendmmsg, one socket) and a plain Node loop (1 ms timer, one connected socket per stream)',
    columns: [
      'sender',
      'N',
      'pps received',
      'p50 / p99 / p99.9 / max (ms)',
      'gaps',
      'sender CPU %',
      "sender's own worst lag (ms)",
      'rtprecv CPU %',
      'other CPU % (incl. sender)',
    ],
    rows: baselines.flatMap((b) =>
      [
        ['C rtpsend', b.c],
        ['Node paced-loop.mjs', b.node],
      ].map(([name, w]) => {
        const x = /** @type {any} */ (w);
        const lag = x.during?.sendLagMaxMs ?? x.during?.lagMaxMs ?? null;
        return [
          name,
          b.n,
          x.receiver.packetsPerSec,
          `${x.receiver.p50} / ${x.receiver.p99} / ${x.receiver.p999} / ${x.receiver.max}`,
          x.receiver.lost,
          x.during?.cpuPct ?? null,
          lag === null ? null : Math.round(lag * 100) / 100,
          x.cpu.receiverPct,
          x.cpu.otherPct,
        ];
      }),
    ),
  };
  return {
    id,
    title,
    rows,
    tables: [
      rampTable(ramp),
      {
        title: "The C pacer's own ramp (rtpsend, 1 ms ticks, sendmmsg on one socket; a missed step is measured twice)",
        columns: ['N', 'attempt', 'p99 (ms)', 'gaps', 'sender CPU %', 'holds'],
        rows: cRamp.tried.map((x) => [x.n, x.attempt, x.p99, x.lost, x.cpuPct, x.holds ? 'yes' : 'no']),
      },
      cTable,
      ffTable,
    ],
    notes: [
      `Ramp: ${ramp.stoppedBy}.`,
      ffmpeg.note,
      "Lateness = arrival (kernel timestamp) minus the stream's RTP-timestamp schedule, fitted per stream by its lower envelope; the server's histogram buckets are upper bounds.",
    ].filter((s) => s !== ''),
    data: { ramp, cRamp, baselines, ffmpeg },
  };
}

/**
 * The C pacer over the ramp's steps until a step misses twice (as the server's ramp does).
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {number[]} steps
 * @param {number} warmupSec
 * @param {number} measureSec
 * @param {number} deadlineMs
 */
async function cPacedRamp(ctx, steps, warmupSec, measureSec, deadlineMs) {
  let largest = 0;
  /** @type {string | null} */
  let stoppedBy = null;
  /** @type {{n: number, attempt: number, p99: number | null, lost: number, cpuPct: number | null, holds: boolean}[]} */
  const tried = [];
  for (const n of steps) {
    if (performance.now() > deadlineMs) {
      stoppedBy = `time budget spent before N = ${n}`;
      break;
    }
    let ok = false;
    for (let attempt = 0; attempt < 2 && !ok; attempt++) {
      const w = await cPaced(ctx, n, warmupSec, measureSec);
      ok = holds(w.receiver, n);
      tried.push({ n, attempt, p99: w.receiver.p99, lost: w.receiver.lost, cpuPct: w.during?.cpuPct ?? null, holds: ok });
    }
    if (!ok) {
      stoppedBy = `missed at N = ${n}`;
      break;
    }
    largest = n;
  }
  return { largest, stoppedBy, tried };
}

/**
 * rtpsend pacing n streams of 172-byte packets at 50 packets/s each.
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {number} n
 * @param {number} warmupSec
 * @param {number} measureSec
 */
export async function cPaced(ctx, n, warmupSec, measureSec) {
  ctx.log(`  C rtpsend paced: N = ${n}`);
  const timed = await cpuTimedTool(ctx.tools.rtpsend, path.join(ctx.tmp, 'rtpsend-timed.sh'));
  return measureWindow({
    count: n,
    warmupSec,
    measureSec: 0,
    idleBeforeSec: 0,
    during: async () => {
      const report = await runSender({
        portBase: DEST_PORT_BASE,
        count: n,
        pps: n * 50,
        duration: warmupSec + measureSec,
        size: 172,
        bin: timed.bin,
        maxSeconds: warmupSec + measureSec + 30,
      });
      const cpu = await timed.cpuSeconds();
      return { ...report, cpuPct: cpu === null ? null : round1((cpu / report.durationSec) * 100) };
    },
  });
}

/**
 * micro/paced-loop.mjs: the least a Node thread does to pace n streams.
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {number} n
 * @param {number} warmupSec
 * @param {number} measureSec
 */
async function nodePaced(ctx, n, warmupSec, measureSec) {
  ctx.log(`  Node paced loop: N = ${n}`);
  return measureWindow({
    count: n,
    warmupSec,
    measureSec: 0,
    idleBeforeSec: 0,
    during: async () => {
      const args = [pacedLoop, '--port-base', String(DEST_PORT_BASE), '--streams', String(n), '--seconds', String(warmupSec + measureSec)];
      const r = await runBounded(process.execPath, args, { timeoutMs: (warmupSec + measureSec) * 1000 + 60_000 });
      if (r.code !== 0) throw new Error(`paced-loop failed (${r.code}): ${r.stderr.slice(-500)}`);
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
    },
  });
}

/**
 * `ffmpeg -re` processes, one per stream, N = each of `ns` (capped by memory).
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {number[]} ns
 * @param {number} warmupSec
 * @param {number} measureSec
 */
async function ffmpegRamp(ctx, ns, warmupSec, measureSec) {
  /** @type {any[]} */
  const steps = [];
  let note = '';
  const cap = ns.at(-1) ?? 0;
  for (const n of ns) {
    // ~55 MB each: leave half the memory free.
    if (n * 80 * 1024 * 1024 > os.freemem() / 2) {
      note = `ffmpeg stopped before N = ${n}: not enough free memory for ${n} processes.`;
      break;
    }
    ctx.log(`  ffmpeg -re: N = ${n}`);
    /** @type {import('node:child_process').ChildProcess[]} */
    const procs = [];
    try {
      for (let i = 0; i < n; i++) {
        const args = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-stream_loop', '-1', '-i', ctx.media.opusPath];
        args.push('-c', 'copy', '-f', 'rtp', `rtp://127.0.0.1:${DEST_PORT_BASE + 2 * i}`);
        procs.push(track(spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'ignore'] })));
        // Staggered starts: N probes at once would skew the first window.
        if (i % 10 === 9) await sleep(50);
      }
      await sleep(ctx.quick ? 500 : 1500);
      const pids = procs.map((p) => /** @type {number} */ (p.pid));
      const w = await measureWindow({ count: n, warmupSec, measureSec, pids });
      const rss = (await Promise.all(pids.map((p) => rssBytes(p)))).filter((v) => v !== null);
      const cpuPct = Math.round(pids.reduce((a, p) => a + (w.cpu.byPid[p] ?? 0), 0) * 10) / 10;
      const alive = procs.filter((p) => p.exitCode === null).length;
      steps.push({
        n,
        alive,
        receiver: w.receiver,
        rssMeanBytes: rss.length ? rss.reduce((a, b) => a + b, 0) / rss.length : null,
        rssTotalBytes: rss.reduce((a, b) => a + b, 0),
        cpuPct,
        receiverPct: w.cpu.receiverPct,
        otherPct: w.cpu.otherPct,
        holds: holds(w.receiver, n) && alive === n,
      });
    } finally {
      await Promise.all(procs.map((p) => stopChild(p, 'SIGTERM', 3000)));
    }
  }
  return { steps, cap, note };
}
