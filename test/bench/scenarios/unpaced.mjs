// Scenario 2, unpaced egress: one "speed": "max" session of an H.264 file whose
// packets are nearly all full (1212 bytes), against a plain Node dgram loop of
// the same packet size and the C sender rtpsend --max, run in alternation.
// All three are measured at rtprecv.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSender, startReceiver } from '../tools/drive.mjs';
import { DEST_PORT_BASE, streamView } from '../lib/measure.mjs';
import { cpuMeter, median, runBounded, sleep } from '../lib/proc.mjs';
import { fmt, ratio, withServer } from '../lib/scenario.mjs';

export const id = '2';
export const title = 'Unpaced egress ("speed": "max", 1212-byte packets)';
const dgramLoop = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../micro/dgram-loop.mjs');
const RCVBUF = 32 * 1024 * 1024;

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @returns {Promise<import('../lib/scenario.mjs').ScenarioResult>}
 */
export async function run(ctx) {
  const rounds = ctx.quick ? 1 : 5;
  const seconds = ctx.quick ? 1 : 3;
  /** @type {any[]} */
  const runs = [];
  await withServer(ctx, { workers: 1 }, async (server) => {
    // Load the video into the cache first, so rounds measure sending only.
    const warm = await server.api('POST', '/v1/sessions', {
      mode: 'play',
      media: ctx.media.videoName,
      destination: { host: '127.0.0.1', port: DEST_PORT_BASE },
      state: 'paused',
    });
    if (warm.status !== 201) throw new Error(`creating the warm-up session failed: ${warm.status} ${JSON.stringify(warm.body)}`);
    await server.api('DELETE', `/v1/sessions/${warm.body.id}`);

    for (let r = 0; r < rounds; r++) {
      ctx.log(`  round ${r + 1}/${rounds}`);
      runs.push({ round: r, kind: 'server', ...(await serverMax(ctx, server, seconds)) });
      runs.push({ round: r, kind: 'dgram', ...(await nodeLoop(seconds)) });
      runs.push({ round: r, kind: 'c', ...(await cMax(ctx, seconds)) });
    }
  });

  const of = (/** @type {string} */ kind) => runs.filter((x) => x.kind === kind);
  const med = (/** @type {string} */ kind) => median(of(kind).map((x) => x.receiver.packetsPerSec));
  const server = med('server');
  const dgram = med('dgram');
  const c = med('c');
  // Each round runs the three back to back: the ratio within a round shares its moment's noise.
  const perRound = of('server').map((s, i) => s.receiver.packetsPerSec / (of('dgram')[i]?.receiver.packetsPerSec ?? NaN));
  const r = median(perRound);
  const first = of('server')[0];
  return {
    id,
    title,
    rows: [
      {
        measure: `one "speed": "max" session, packets/s at the receiver (median of ${rounds} rounds; ratio: median of the rounds' ratios)`,
        value: `${fmt(server, 0)} (mean ${first?.receiver.meanSize ?? '–'} B)`,
        baseline: `Node dgram loop, connected, same size: ${fmt(dgram, 0)}`,
        ratio: `${fmt(r)}×`,
        target: '≥ 0.9×',
        verdict: ctx.quick ? 'info' : r >= 0.9 ? 'met' : 'missed',
      },
      {
        measure: 'reference ceiling: C rtpsend --max (sendmmsg ×64)',
        value: fmt(c, 0),
        baseline: `server session: ${fmt(server, 0)}`,
        ratio: ratio(server, c),
        verdict: 'info',
      },
    ],
    tables: [
      {
        title: 'Unpaced egress, each run measured at rtprecv (32 MiB receive buffer)',
        columns: [
          'round',
          'sender',
          'pps at receiver',
          'pps sender-side',
          'mean size (B)',
          'lost at receiver',
          'RcvbufErrors',
          'sender CPU %',
          'machine busy %',
        ],
        rows: runs.map((x) => [
          x.round + 1,
          x.kind === 'server' ? 'offcast speed max' : x.kind === 'dgram' ? 'Node dgram loop' : 'C rtpsend --max',
          x.receiver.packetsPerSec,
          x.senderPps,
          x.receiver.meanSize,
          x.receiver.lost,
          x.receiver.rcvbufErrorsDelta,
          x.cpuPct,
          x.machineBusyPct,
        ]),
      },
    ],
    notes: [
      `Per-round ratio server/dgram: ${perRound.map((v) => fmt(v)).join(', ')}.`,
      'A packet lost at the receiver (its buffer overflowed) is not counted in its packets/s: see the lost column.',
    ],
    data: { runs, medianPps: { server, dgram, c } },
  };
}

/** A receiver on the one destination port, sized for a burst. */
async function receiver() {
  const rx = startReceiver({ portBase: DEST_PORT_BASE, count: 1, rcvbuf: RCVBUF, clock: 90000, maxSeconds: 120 });
  await rx.ready;
  return rx;
}

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {import('../lib/server.mjs').Offcast} server
 * @param {number} seconds
 */
async function serverMax(ctx, server, seconds) {
  const rx = await receiver();
  const cpu = cpuMeter([server.pid]);
  const created = await server.api('POST', '/v1/sessions', {
    mode: 'play',
    media: ctx.media.videoName,
    destination: { host: '127.0.0.1', port: DEST_PORT_BASE },
    speed: 'max',
    loop: true,
  });
  if (created.status !== 201) {
    await rx.stop();
    throw new Error(`POST speed max: ${created.status} ${JSON.stringify(created.body)}`);
  }
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const ended = await server.api('DELETE', `/v1/sessions/${created.body.id}`);
  const secs = (performance.now() - t0) / 1000;
  const use = cpu.stop();
  const report = await rx.stop();
  const sent = ended.body?.tracks?.[0]?.stats?.packets ?? null;
  return {
    receiver: streamView(report),
    senderPps: sent === null ? null : Math.round(sent / secs),
    cpuPct: use.byPid[server.pid] ?? null,
    machineBusyPct: use.machineBusyPct,
  };
}

/** @param {number} seconds */
async function nodeLoop(seconds) {
  const rx = await receiver();
  const cpu = cpuMeter([]);
  const out = await runBounded(process.execPath, [dgramLoop, '--port', String(DEST_PORT_BASE), '--seconds', String(seconds), '--size', '1212'], {
    timeoutMs: seconds * 1000 + 20_000,
  });
  const use = cpu.stop();
  const report = await rx.stop();
  if (out.code !== 0) throw new Error(`dgram-loop failed (${out.code}): ${out.stderr.slice(-500)}`);
  const res = JSON.parse(out.stdout.trim().split('\n').pop() ?? '{}');
  return { receiver: streamView(report), senderPps: res.pps, cpuPct: null, machineBusyPct: use.machineBusyPct };
}

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @param {number} seconds
 */
async function cMax(ctx, seconds) {
  const rx = await receiver();
  const cpu = cpuMeter([]);
  const s = await runSender({ portBase: DEST_PORT_BASE, max: true, duration: seconds, size: 1212, bin: ctx.tools.rtpsend, maxSeconds: seconds + 30 });
  const use = cpu.stop();
  const report = await rx.stop();
  return { receiver: streamView(report), senderPps: Math.round(s.achievedPps), cpuPct: null, machineBusyPct: use.machineBusyPct };
}
