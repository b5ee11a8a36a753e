// Scenario 4, memory: RSS per play session (server process, VmRSS), the
// cache's overhead over the media bytes, and RSS over a long run of 500
// looping sessions.
import { startReceiver } from '../tools/drive.mjs';
import { DEST_PORT_BASE, streamView } from '../lib/measure.mjs';
import { fmt, mib, withServer } from '../lib/scenario.mjs';
import { createPlaySessions } from '../lib/sessions.mjs';
import { round1, sleep } from '../lib/proc.mjs';

export const id = '4';
export const title = 'Memory: RSS per session, cache overhead, RSS over time';
const KIB = 1024;
/** The soak's ports, apart from every other scenario's: 500 destinations from 9000, server pairs from 30000. */
const SOAK_DEST_BASE = 9000;
const SOAK_SERVER_PORT_MIN = 30000;

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @returns {Promise<import('../lib/scenario.mjs').ScenarioResult>}
 */
export async function run(ctx) {
  const q = ctx.quick;
  const n = q ? 200 : 2000;
  const perSession = await withServer(ctx, { workers: 1 }, (server) => sessionCost(ctx, server, n));
  /** @type {Awaited<ReturnType<typeof startSoak>>} */
  const soak = await (ctx.shared.soak ?? startSoak(ctx));

  const perKiB = perSession.perSessionBytes / KIB;
  const marginalKiB = perSession.marginalBytes / KIB;
  const opusOver = perSession.opus.cacheBytes / perSession.opus.mediaBytes - 1;
  const videoOver = perSession.video.cacheBytes / perSession.video.mediaBytes - 1;
  const full = !q;
  return {
    id,
    title,
    rows: [
      {
        measure: `RSS per play session, (RSS with ${n} − RSS with 1) / ${n - 1}`,
        value: `${fmt(perKiB, 1)} KiB`,
        baseline: `idle server ${mib(perSession.idleRss)}; marginal ${n / 2}→${n}: ${fmt(marginalKiB, 1)} KiB`,
        target: '≤ 20 KiB',
        verdict: full ? (perKiB <= 20 ? 'met' : 'missed') : 'info',
      },
      {
        measure: 'cache overhead over media bytes (offcast_cache_bytes / offcast_cache_media_bytes − 1): Opus, H.264',
        value: `${pct(opusOver)}, ${pct(videoOver)}`,
        baseline: `vs file size: ${pct(perSession.opus.cacheBytes / ctx.media.opusBytes - 1)}, ${pct(perSession.video.cacheBytes / ctx.media.videoBytes - 1)}`,
        target: '≤ 5 %',
        verdict: full ? (opusOver <= 0.05 && videoOver <= 0.05 ? 'met' : 'missed') : 'info',
      },
      {
        measure: 'RSS growth when the H.264 entry loads, over its cache bytes',
        value: `${mib(perSession.video.rssDelta)} for ${mib(perSession.video.cacheBytes)}`,
        baseline: `file ${mib(ctx.media.videoBytes)}`,
        ratio: `${fmt(perSession.video.rssDelta / perSession.video.cacheBytes)}×`,
        verdict: 'info',
      },
      {
        measure: `RSS over ${fmt(soak.seconds / 60, 1)} min of ${soak.sessions} looping sessions: (max − min) / min after warm-up`,
        value: `${pct(soak.spread)} (${mib(soak.min)}–${mib(soak.max)})`,
        baseline: `floor of the last third vs the first: ${pct(soak.floorGrowth)}; trend ${fmt(soak.slopeKiBPerMin, 0)} KiB/min`,
        target: '≤ 5 %',
        verdict: full ? (soak.spread <= 0.05 ? 'met' : 'missed') : 'info',
      },
      {
        measure: `the soak's streams at the receiver: p99 / max lateness, gaps`,
        value: `${soak.receiver.p99} / ${soak.receiver.max} ms, ${soak.receiver.lost} gaps`,
        verdict: 'info',
      },
    ],
    tables: [
      {
        title: 'RSS of the server process (VmRSS, lowest of 12 samples over ~5 s)',
        columns: ['state', 'RSS'],
        rows: [
          ['idle, no media loaded', mib(perSession.idleRss)],
          ['1 Opus session (cache loaded)', mib(perSession.oneRss)],
          [`${n / 2} sessions`, mib(perSession.halfRss)],
          [`${n} sessions`, mib(perSession.fullRss)],
          [`${n} sessions + H.264 entry loaded`, mib(perSession.video.rssAfter)],
        ],
      },
      {
        title: `RSS samples over the soak (${soak.sessions} sessions, every ${soak.everySec} s after ${soak.warmupSec} s)`,
        columns: ['t (s)', 'RSS'],
        rows: soak.samples.map((s) => [s.t, mib(s.rss)]),
      },
    ],
    notes: [
      'KiB = 1024 bytes. RSS includes the worker threads; per-session figures carry GC noise of a few hundred KiB over the whole process.',
      `Cache: Opus ${perSession.opus.packets} packets, ${fmt((perSession.opus.cacheBytes - perSession.opus.mediaBytes) / Math.max(1, perSession.opus.packets), 1)} index bytes per packet (≈); H.264 ${perSession.video.packets} packets, ${fmt((perSession.video.cacheBytes - perSession.video.mediaBytes) / Math.max(1, perSession.video.packets), 1)} per packet (≈).`,
    ],
    data: { perSession, soak },
  };
}

/**
 * The RSS soak on a server of its own, with its own local and destination
 * ports, so that --quick can run it beside the other scenarios.
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 */
export function startSoak(ctx) {
  const q = ctx.quick;
  const env = { OFFCAST_RTP_PORT_MIN: String(SOAK_SERVER_PORT_MIN), OFFCAST_RTP_PORT_MAX: String(SOAK_SERVER_PORT_MIN + 1999) };
  return withServer(ctx, { workers: 1, env }, (server) => soakRun(ctx, server, q ? 100 : 500, q ? 5 : 60, q ? 30 : ctx.soakMinutes * 60, q ? 5 : 10));
}

/** @param {number} v */
function pct(v) {
  return `${(v * 100).toFixed(2)} %`;
}

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {import('../lib/server.mjs').Offcast} server
 * @param {number} n
 */
async function sessionCost(ctx, server, n) {
  ctx.log(`  RSS per session (N = ${n})`);
  // Pauses let the heap settle after each change; --quick only proves the path.
  const settle = ctx.quick ? 500 : 3000;
  // The floor of several samples: what stays after the collector has run, not the garbage before it.
  const rss = async () => (await server.rssFloor(ctx.quick ? 3 : 12, ctx.quick ? 100 : 400)) ?? NaN;
  await sleep(settle);
  const idleRss = await rss();
  // The sessions' destinations are bound: no ICMP errors to count.
  const sink = startReceiver({ portBase: DEST_PORT_BASE, count: n, maxSeconds: 600, bin: ctx.tools.rtprecv });
  await sink.ready;
  try {
    const created = [];
    created.push(await createPlaySessions(server, { from: 0, to: 1, portBase: DEST_PORT_BASE, media: ctx.media.opusName }));
    await sleep(settle);
    const oneRss = await rss();
    const m1 = await server.metrics();
    const opus = {
      cacheBytes: m1.get('offcast_cache_bytes') ?? NaN,
      mediaBytes: m1.get('offcast_cache_media_bytes') ?? NaN,
      packets: 0,
    };
    created.push(await createPlaySessions(server, { from: 1, to: n / 2, portBase: DEST_PORT_BASE, media: ctx.media.opusName }));
    await sleep(settle);
    const halfRss = await rss();
    created.push(await createPlaySessions(server, { from: n / 2, to: n, portBase: DEST_PORT_BASE, media: ctx.media.opusName }));
    await sleep(settle);
    const fullRss = await rss();
    const failures = created.reduce((a, c) => a + c.failures, 0);
    if (failures > 0) throw new Error(`creating sessions failed ${failures}×: ${created.find((c) => c.firstError)?.firstError}`);
    // 30 s of 20 ms frames; the API does not expose an entry's packet count.
    opus.packets = Math.round((30 * 1000) / 20);

    // Load the H.264 file: a paused session holds the entry without sending.
    const before = await rss();
    const v = await server.api('POST', '/v1/sessions', {
      mode: 'play',
      media: ctx.media.videoName,
      destination: { host: '127.0.0.1', port: DEST_PORT_BASE },
      state: 'paused',
    });
    if (v.status !== 201) throw new Error(`loading the H.264 entry: ${v.status} ${JSON.stringify(v.body)}`);
    await sleep(settle);
    const after = await rss();
    const m2 = await server.metrics();
    const videoMedia = (m2.get('offcast_cache_media_bytes') ?? NaN) - opus.mediaBytes;
    const video = {
      cacheBytes: (m2.get('offcast_cache_bytes') ?? NaN) - opus.cacheBytes,
      mediaBytes: videoMedia,
      // Nearly every payload is a full 1200 bytes (FU-A of noise frames).
      packets: Math.round(videoMedia / 1200),
      rssDelta: after - before,
      rssAfter: after,
    };
    return {
      n,
      idleRss,
      oneRss,
      halfRss,
      fullRss,
      perSessionBytes: (fullRss - oneRss) / (n - 1),
      marginalBytes: (fullRss - halfRss) / (n / 2),
      opus,
      video,
    };
  } finally {
    await sink.stop().catch(() => undefined);
  }
}

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {import('../lib/server.mjs').Offcast} server
 * @param {number} sessions
 * @param {number} warmupSec
 * @param {number} seconds
 * @param {number} everySec
 */
async function soakRun(ctx, server, sessions, warmupSec, seconds, everySec) {
  ctx.log(`  soak: ${sessions} sessions, ${warmupSec} s warm-up, ${seconds} s sampled every ${everySec} s`);
  const rx = startReceiver({ portBase: SOAK_DEST_BASE, count: sessions, warmup: warmupSec, maxSeconds: warmupSec + seconds + 120, bin: ctx.tools.rtprecv });
  await rx.ready;
  /** @type {{t: number, rss: number}[]} */
  const samples = [];
  /** @type {import('../tools/drive.mjs').Report} */
  let report;
  try {
    const c = await createPlaySessions(server, { from: 0, to: sessions, portBase: SOAK_DEST_BASE, media: ctx.media.opusName });
    if (c.failures > 0) throw new Error(`creating the soak sessions: ${c.firstError}`);
    await sleep(warmupSec * 1000);
    const t0 = performance.now();
    for (let k = 0; k * everySec <= seconds; k++) {
      await sleep(t0 + k * everySec * 1000 - performance.now());
      const v = await server.rss();
      if (v !== null) samples.push({ t: Math.round((performance.now() - t0) / 1000), rss: v });
    }
  } finally {
    report = await rx.stop();
  }
  const values = samples.map((s) => s.rss);
  const min = Math.min(...values);
  const max = Math.max(...values);
  // A leak raises the floor the collector leaves; a one-off drop (garbage of the creation burst) does not.
  const third = Math.max(1, Math.floor(values.length / 3));
  const floorFirst = Math.min(...values.slice(0, third));
  const floorLast = Math.min(...values.slice(-third));
  return {
    sessions,
    warmupSec,
    seconds,
    everySec,
    samples,
    first: values[0] ?? NaN,
    min,
    max,
    spread: (max - min) / min,
    floorGrowth: (floorLast - floorFirst) / floorFirst,
    slopeKiBPerMin: round1((slope(samples) / KIB) * 60),
    receiver: streamView(report),
  };
}

/**
 * Least-squares slope of RSS over time, bytes per second.
 * @param {{t: number, rss: number}[]} s
 */
function slope(s) {
  if (s.length < 2) return 0;
  const n = s.length;
  const mt = s.reduce((a, x) => a + x.t, 0) / n;
  const mr = s.reduce((a, x) => a + x.rss, 0) / n;
  let num = 0;
  let den = 0;
  for (const x of s) {
    num += (x.t - mt) * (x.rss - mr);
    den += (x.t - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
