// Scenario 3, ingest: record sessions fed by rtpsend (PCMU, 20 ms packets at
// 50 packets/s per stream, so rate R means R/50 sessions) at a total rate that
// rises until a packet goes missing. A step holds when every packet sent was
// recorded, none lost, the kernel dropped none on the server's sockets (the
// `drops` of /proc/net/udp; the namespace-wide RcvbufErrors is reported too,
// but other processes' losses move it), every
// file holds its packets, and the recorder kept up: it had read everything
// within DRAIN_LIMIT_MS of the sender's end. (At 50 packets/s a socket's
// default buffer holds ~20 s of packets, so a short step can hide a recorder
// slower than its input: the backlog would overflow on a longer run.)
// Baseline: the C receiver rtprecv taking the same load on the same ports.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { runSender } from '../tools/drive.mjs';
import { DEST_PORT_BASE, measureWindow } from '../lib/measure.mjs';
import { cpuMeter, round1, sleep, udpRcvbufErrors, udpSocketDrops } from '../lib/proc.mjs';
import { fmt, withServer } from '../lib/scenario.mjs';
import { pool } from '../lib/sessions.mjs';

export const id = '3';
export const title = 'Ingest: record sessions, rising rate';
const STREAM_PPS = 50;
const PAYLOAD = 160;
const TARGET_PPS = 100_000;
/** Longest the recorder may still be reading after the sender stops: a flush interval and a poll. */
const DRAIN_LIMIT_MS = 1500;

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @returns {Promise<import('../lib/scenario.mjs').ScenarioResult>}
 */
export async function run(ctx) {
  const q = ctx.quick;
  const rates = q ? [2500] : [25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 200_000, 250_000];
  const seconds = q ? 1 : 5;
  /** @type {any[]} */
  const steps = [];
  /** @type {string | null} */
  let unavailable = null;
  let stoppedBy = '';
  await withServer(ctx, { workers: 1 }, async (server) => {
    const probe = await server.api('POST', '/v1/sessions', recordBody('bench-probe'));
    if (probe.status !== 201) {
      unavailable = `POST /v1/sessions {"mode":"record"} answered ${probe.status}: ${probe.body?.message ?? JSON.stringify(probe.body)}`;
      return;
    }
    await server.api('DELETE', `/v1/sessions/${probe.body.id}`);
    for (const rate of rates) {
      ctx.log(`  ingest: ${rate} packets/s`);
      const step = await ingestStep(ctx, server, rate, seconds);
      steps.push(step);
      if (!step.holds) {
        stoppedBy = `${rate} packets/s: ${step.why}`;
        break;
      }
    }
    if (stoppedBy === '') stoppedBy = 'the top rate held: the limit is higher';
  });

  if (unavailable !== null) {
    return {
      id,
      title,
      rows: [
        {
          measure: 'records ≥ 100k packets/s with zero loss and complete files',
          value: 'record sessions not available',
          target: `≥ ${TARGET_PPS}`,
          verdict: 'skipped',
        },
      ],
      tables: [],
      notes: [/** @type {string} */ (unavailable)],
      data: { unavailable },
    };
  }

  const held = steps.filter((s) => s.holds).reduce((m, s) => Math.max(m, s.rate), 0);
  // Baseline: the C receiver on the same ports count, at the first rate the server missed (or the top one).
  const refRate = steps.find((s) => !s.holds)?.rate ?? rates.at(-1) ?? TARGET_PPS;
  ctx.log(`  ingest baseline: rtprecv at ${refRate} packets/s`);
  const base = await measureWindow({
    count: refRate / STREAM_PPS,
    warmupSec: 0,
    measureSec: 0,
    idleBeforeSec: 0,
    rcvbuf: 212_992,
    during: () =>
      runSender({
        portBase: DEST_PORT_BASE,
        count: refRate / STREAM_PPS,
        pps: refRate,
        duration: seconds,
        size: 12 + PAYLOAD,
        pt: 0,
        clock: 8000,
        bin: ctx.tools.rtpsend,
        maxSeconds: seconds + 30,
      }),
  });
  return {
    id,
    title,
    rows: [
      {
        measure: `largest total rate recorded with zero loss, no socket drops, complete files, backlog read within ${DRAIN_LIMIT_MS / 1000} s`,
        value: `${held} packets/s (${held / STREAM_PPS} sessions)`,
        baseline: `C rtprecv at ${refRate}/s on ${refRate / STREAM_PPS} ports: ${base.receiver.lost} lost (RcvbufErrors of the whole machine +${base.receiver.rcvbufErrorsDelta})`,
        target: `≥ ${TARGET_PPS}`,
        verdict: q ? 'info' : held >= TARGET_PPS ? 'met' : 'missed',
      },
    ],
    tables: [
      {
        title: 'Ingest steps (PCMU, 172-byte packets, 50 packets/s per session)',
        columns: [
          'packets/s',
          'sessions',
          'sent',
          'recorded',
          'lost (server)',
          'dropped at its sockets',
          'RcvbufErrors Δ (whole machine)',
          'files complete',
          'backlog read after (ms)',
          'recorded ÷ (send + backlog time)',
          'server CPU %',
          'holds',
        ],
        rows: steps.map((s) => [
          s.rate,
          s.sessions,
          s.sent,
          s.recorded,
          s.lost,
          s.socketDrops,
          s.rcvbufErrors,
          `${s.filesComplete}/${s.sessions}`,
          s.drainMs ?? null,
          s.sustainedPps ?? null,
          s.cpuPct,
          s.holds ? 'yes' : 'no',
        ]),
      },
    ],
    notes: [`Ramp: ${stoppedBy}.`],
    data: { steps, baseline: base.receiver },
  };
}

/** @param {string} name */
function recordBody(name) {
  return { mode: 'record', name, tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }] };
}

/**
 * One rate: fresh sessions, rtpsend over their ports, then stop and check.
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {import('../lib/server.mjs').Offcast} server
 * @param {number} rate
 * @param {number} seconds
 */
async function ingestStep(ctx, server, rate, seconds) {
  const sessions = rate / STREAM_PPS;
  /** @type {{id: string, port: number}[]} */
  const made = [];
  let failures = 0;
  /** @type {string | null} */
  let firstError = null;
  const created = await pool(
    0,
    sessions,
    32,
    async (i) => {
      const r = await server.api('POST', '/v1/sessions', recordBody(`bench-${rate}-${i}`)).catch((e) => ({ status: 0, body: String(e), ms: 0 }));
      const port = r.body?.tracks?.[0]?.port;
      if (r.status === 201 && typeof port === 'number') made.push({ id: r.body.id, port });
      else {
        failures++;
        firstError ??= `${r.status} ${JSON.stringify(r.body).slice(0, 200)}`;
      }
      return true;
    },
    performance.now() + 120_000,
  );
  const notSent = created.filter((x) => x === undefined).length;
  if (notSent > 0) {
    failures += notSent;
    firstError ??= `${notSent} creates not attempted: time budget spent`;
  }
  const base = {
    rate,
    sessions,
    sent: 0,
    recorded: 0,
    lost: 0,
    rcvbufErrors: /** @type {number | null} */ (null),
    socketDrops: /** @type {number | null} */ (null),
    filesComplete: 0,
    cpuPct: /** @type {number | null} */ (null),
  };
  if (failures > 0) {
    await endAll(server, made);
    return { ...base, holds: false, why: `creating ${sessions} record sessions failed ${failures}×: ${firstError}` };
  }
  // rtpsend sends to evenly spaced ports: one sender per run of consecutive pairs.
  made.sort((a, b) => a.port - b.port);
  /** @type {{start: number, count: number}[]} */
  const runs = [];
  for (const m of made) {
    const last = runs.at(-1);
    if (last !== undefined && m.port === last.start + 2 * last.count) last.count++;
    else runs.push({ start: m.port, count: 1 });
  }
  const errorsBefore = await udpRcvbufErrors();
  const cpu = cpuMeter([server.pid]);
  const reports = await Promise.all(
    runs.map((r, i) =>
      runSender({
        portBase: r.start,
        count: r.count,
        pps: r.count * STREAM_PPS,
        duration: seconds,
        size: 12 + PAYLOAD,
        pt: 0,
        clock: 8000,
        ssrcBase: 0x10000000 + i * 0x10000,
        bin: ctx.tools.rtpsend,
        maxSeconds: seconds + 30,
      }),
    ),
  );
  const use = cpu.stop();
  const sentAll = reports.reduce((a, r) => a + r.packets, 0);
  // Packets already in the sockets' queues still count: wait until the recorder has read them all
  // (or its count stops moving), so a backlog is told apart from a loss.
  const drainStart = performance.now();
  let seen = -1;
  for (let still = 0; still < 6 && performance.now() - drainStart < 10_000;) {
    const now = await recordedSoFar(server);
    if (now >= sentAll) break;
    still = now === seen ? still + 1 : 0;
    seen = now;
    await sleep(250);
  }
  const drainMs = Math.round(performance.now() - drainStart);
  const errorsAfter = await udpRcvbufErrors();
  // The step's sockets are fresh, so their drop counters hold this step's drops only.
  const socketDrops = await udpSocketDrops(server.pid);
  const ended = await endAll(server, made);
  const sent = sentAll;
  let recorded = 0;
  let lost = 0;
  let filesComplete = 0;
  for (const body of ended) {
    const t = body?.recording?.tracks?.[0];
    if (t === undefined) continue;
    recorded += t.packets ?? 0;
    lost += t.lost ?? 0;
    if (typeof t.file === 'string') {
      // Track files live in the recording's folder (recordings/<name>/track0.wav).
      const name = body.recording.name ?? '';
      const size = await fileSize(path.resolve(server.recordingsRoot, name, t.file), path.resolve(server.recordingsRoot, t.file));
      if (size >= (t.packets ?? 0) * PAYLOAD && (t.packets ?? 0) > 0) filesComplete++;
    }
  }
  const rcvbufErrors = errorsBefore === null || errorsAfter === null ? null : errorsAfter - errorsBefore;
  const drops = socketDrops?.drops ?? null;
  const why = [
    recorded !== sent ? `recorded ${recorded} of ${sent}` : '',
    lost !== 0 ? `${lost} lost` : '',
    drops !== 0 ? `${drops ?? 'unknown'} dropped at the server's sockets` : '',
    filesComplete !== sessions ? `${sessions - filesComplete} files short` : '',
    drainMs > DRAIN_LIMIT_MS ? `the recorder fell behind: still reading ${drainMs} ms after the sender stopped` : '',
  ].filter((s) => s !== '');
  const sendSec = Math.max(...reports.map((r) => r.durationSec));
  return {
    ...base,
    sent,
    recorded,
    lost,
    rcvbufErrors,
    socketDrops: drops,
    filesComplete,
    achievedPps: round1(reports.reduce((a, r) => a + r.achievedPps, 0)),
    drainMs,
    // What the recorder sustained: all it took over the sending time plus its catch-up.
    sustainedPps: Math.round(recorded / (sendSec + drainMs / 1000)),
    cpuPct: use.byPid[server.pid] ?? null,
    holds: why.length === 0,
    why: why.join(', ') || `held (${fmt(recorded)} recorded)`,
  };
}

/**
 * Packets the running record sessions have taken so far (GET /v1/sessions).
 * @param {import('../lib/server.mjs').Offcast} server
 */
async function recordedSoFar(server) {
  const r = await server.api('GET', '/v1/sessions').catch(() => null);
  let total = 0;
  for (const s of r?.body?.sessions ?? []) {
    if (s.mode !== 'record') continue;
    for (const t of s.tracks ?? []) total += t.stats?.packets ?? 0;
  }
  return total;
}

/**
 * Size of the first of `paths` that exists, or -1.
 * @param {...string} paths
 */
async function fileSize(...paths) {
  for (const p of paths) {
    const size = await stat(p).then(
      (s) => s.size,
      () => -1,
    );
    if (size >= 0) return size;
  }
  return -1;
}

/**
 * DELETEs record sessions, returning the bodies.
 * @param {import('../lib/server.mjs').Offcast} server
 * @param {{id: string}[]} made
 */
async function endAll(server, made) {
  return pool(0, made.length, 32, async (i) => {
    const r = await server.api('DELETE', `/v1/sessions/${made[i]?.id}`).catch(() => null);
    return r?.status === 200 ? r.body : null;
  });
}
