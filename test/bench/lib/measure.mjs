// Measuring windows at the independent receiver (rtprecv), next to the
// server's own pacing metrics and the CPU each side used.
import os from 'node:os';
import { startReceiver } from '../tools/drive.mjs';
import { pacingView } from './metrics.mjs';
import { childPidsNamed, cpuMeter, round1, round3, sleep } from './proc.mjs';

/** Destination ports of the streams: stream i goes to DEST_PORT_BASE + 2 i (below the ephemeral range). */
export const DEST_PORT_BASE = 10000;
/** At most this many streams: DEST_PORT_BASE + 2 × 4999 < the server's own range. */
export const MAX_STREAMS = 5000;

/**
 * The figures a scenario keeps from an rtprecv report.
 * @param {import('../tools/drive.mjs').Report} r
 */
export function streamView(r) {
  return {
    streams: r.streams,
    activeStreams: r.activeStreams,
    packets: r.packets,
    packetsPerSec: Math.round(r.packetsPerSec),
    meanSize: r.packets > 0 ? round1(r.bytes / r.packets) : null,
    sizeMin: r.sizeMin,
    sizeMax: r.sizeMax,
    lost: r.lost,
    duplicates: r.duplicates,
    reordered: r.reordered,
    p50: r.lateness?.p50 ?? null,
    p99: r.lateness?.p99 ?? null,
    p999: r.lateness?.p999 ?? null,
    max: r.lateness !== null && r.lateness !== undefined ? round3(r.lateness.max) : null,
    perStreamP99Max: r.perStreamP99?.max ?? null,
    rcvbufErrorsDelta: r.rcvbufErrorsDelta,
    timestampSource: r.timestampSource,
  };
}

/**
 * @typedef {object} WindowOptions
 * @property {number} count          streams (ports DEST_PORT_BASE + 2 i)
 * @property {number} [portBase]
 * @property {number} warmupSec      excluded from lateness at the start of each stream
 * @property {number} measureSec     measured after the warm-up
 * @property {number} [rcvbuf]
 * @property {import('./server.mjs').Offcast} [server]   to read its pacing metrics and CPU
 * @property {number[]} [pids]       more processes whose CPU to report
 * @property {() => Promise<any>} [during]  runs at the start of the measured part; the window lasts at least until it ends
 * @property {number} [idleBeforeSec]  wait before the measured part (default warmupSec: streams already flowing
 *                                     warm up meanwhile; 0 when `during` starts the streams itself)
 */

/**
 * One measuring window: starts rtprecv over `count` ports, waits out the
 * warm-up, measures (scraping /metrics at both ends), stops the receiver.
 * @param {WindowOptions} o
 */
export async function measureWindow(o) {
  const receiversBefore = new Set(childPidsNamed('rtprecv'));
  const receiver = startReceiver({
    portBase: o.portBase ?? DEST_PORT_BASE,
    count: o.count,
    step: 2,
    warmup: o.warmupSec,
    maxSeconds: o.warmupSec + o.measureSec + 600,
    rcvbuf: o.rcvbuf,
  });
  await receiver.ready;
  const receiverPid = childPidsNamed('rtprecv').find((p) => !receiversBefore.has(p)) ?? null;
  try {
    await sleep((o.idleBeforeSec ?? o.warmupSec) * 1000);
    const before = o.server ? await o.server.metrics() : null;
    const pids = [...(o.server ? [o.server.pid] : []), ...(receiverPid === null ? [] : [receiverPid]), ...(o.pids ?? [])];
    const cpu = cpuMeter(pids);
    const load0 = os.loadavg()[0];
    const started = performance.now();
    const duringResult = o.during ? o.during() : Promise.resolve(undefined);
    const [extra] = await Promise.all([duringResult, sleep(o.measureSec * 1000)]);
    const measuredSec = (performance.now() - started) / 1000;
    const cpuUse = cpu.stop();
    const after = o.server ? await o.server.metrics() : null;
    const report = await receiver.stop();
    // CPU used by everything else on the machine (other tenants, the bench itself), in % of one core.
    const ours = Object.values(cpuUse.byPid).reduce((/** @type {number} */ a, v) => a + (v ?? 0), 0);
    const otherPct = round1(Math.max(0, cpuUse.machineBusyPct * os.availableParallelism() - ours));
    return {
      receiver: streamView(report),
      server: before !== null && after !== null ? roundPacing(pacingView(before, after)) : null,
      cpu: {
        serverPct: o.server ? (cpuUse.byPid[o.server.pid] ?? null) : null,
        receiverPct: receiverPid === null ? null : (cpuUse.byPid[receiverPid] ?? null),
        byPid: cpuUse.byPid,
        machineBusyPct: cpuUse.machineBusyPct,
        otherPct,
        loadAvg1: round1(load0),
      },
      measuredSec: round1(measuredSec),
      during: extra,
      report,
    };
  } finally {
    await receiver.stop().catch(() => undefined);
  }
}

/** @param {ReturnType<typeof pacingView>} p */
function roundPacing(p) {
  /** @param {number | null} v */
  const r = (v) => (v === null || !Number.isFinite(v) ? v : round3(v));
  return {
    sendLatenessP50Ms: r(p.sendLatenessP50Ms),
    sendLatenessP99Ms: r(p.sendLatenessP99Ms),
    sendLatenessMeanMs: r(p.sendLatenessMeanMs),
    schedulerLagP99Ms: r(p.schedulerLagP99Ms),
    schedulerLagMeanMs: r(p.schedulerLagMeanMs),
    packetsSent: p.packetsSent,
    sendErrors: p.sendErrors,
  };
}
