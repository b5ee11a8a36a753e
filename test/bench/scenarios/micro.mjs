// Micro-benchmarks of the send path (micro/send-variants.mjs), run in a child
// process of their own so the bench's event loop does not share their thread.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBounded } from '../lib/proc.mjs';
import { fmt } from '../lib/scenario.mjs';

export const id = 'M';
export const title = 'Micro: ways to send 1212-byte RTP packets from Node';
const microDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../micro');
const script = path.join(microDir, 'send-variants.mjs');
const socketMemory = path.join(microDir, 'socket-memory.mjs');

/**
 * @param {import('../lib/scenario.mjs').BenchContext} ctx
 * @returns {Promise<import('../lib/scenario.mjs').ScenarioResult>}
 */
export async function run(ctx) {
  const seconds = ctx.quick ? 0.3 : 1.5;
  const rounds = ctx.quick ? 1 : 3;
  const iterations = ctx.quick ? 30_000 : 300_000;
  const args = [script, '--json', '--seconds', String(seconds), '--rounds', String(rounds), '--iterations', String(iterations)];
  const r = await runBounded(process.execPath, args, {
    timeoutMs: 8 * rounds * (seconds + 5) * 1000 + 120_000,
  });
  if (r.code !== 0) throw new Error(`send-variants failed (code ${r.code}): ${r.stderr.slice(-1000)}`);
  const res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
  const m = await runBounded(process.execPath, [socketMemory, '--json', '--count', ctx.quick ? '200' : '2000'], { timeoutMs: 200_000 });
  if (m.code !== 0) throw new Error(`socket-memory failed (code ${m.code}): ${m.stderr.slice(-1000)}`);
  const mem = JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}');
  /** @type {Record<string, any>} */
  const memBy = Object.fromEntries(mem.variants.map((/** @type {any} */ v) => [v.variant, v]));
  const kib = (/** @type {any} */ v) => (v === undefined ? '–' : `${fmt(v.perItemBytes / 1024, 1)} KiB`);
  /** @type {any[]} */
  const vs = res.variants;
  const byName = (/** @type {string} */ prefix) => vs.find((v) => v.name.startsWith(prefix));
  const base = vs[0];
  const h = res.header;
  /**
   * Two variants compared through their per-round ratios to the baseline variant.
   * @param {any} a @param {any} b @param {string} measure
   */
  const vsRow = (a, b, measure) => ({
    measure,
    value: `${fmt(a?.receiverPps, 0)} vs ${fmt(b?.receiverPps, 0)} pps`,
    ratio: a && b ? `${fmt(a.vsBaseline / b.vsBaseline)}×` : '–',
    verdict: /** @type {const} */ ('info'),
  });
  return {
    id,
    title,
    rows: [
      vsRow(base, byName('unconnected, 1 socket, 1'), 'connected vs unconnected socket (1 destination)'),
      vsRow(byName('connected, 100'), byName('unconnected, 1 socket, 100'), '100 connected sockets vs 1 unconnected socket, 100 destinations'),
      vsRow(byName('copy into'), byName('send([header12'), 'copy into a reused buffer vs send([header, payloadView])'),
      vsRow(byName('copy + getSendQueueCount'), byName('copy into'), 'with getSendQueueCount() per packet vs without'),
      {
        measure: 'header per packet: rtp.js build+serialize (new / reused packet) vs patchRtpHeader + payload copy',
        value: `${h.rtpjsNewPacketNs} / ${h.rtpjsReusedPacketNs} ns vs ${h.patchAndCopyNs} ns`,
        ratio: `${fmt(h.rtpjsNewPacketNs / h.patchAndCopyNs, 1)}×`,
        baseline: `patch alone ${h.patchOnlyNs} ns, getSendQueueCount ${h.getSendQueueCountNs} ns; same bytes: ${h.identicalBytes}`,
        verdict: 'info',
      },
      {
        measure: `RSS per socket in a fresh process (${mem.count} of them, after GC): dgram / dgram-as-promised / a play track's pair + buffer`,
        value: `${kib(memBy.dgram)} / ${kib(memBy.promised)} / ${kib(memBy.session)}`,
        baseline: 'scenario 4: RSS per session in the server',
        verdict: 'info',
      },
    ],
    tables: [
      {
        title: `Send variants, packets/s at rtprecv (median of ${rounds} round${rounds === 1 ? '' : 's'} of ${seconds} s; "vs baseline" is the median of each round's ratio to the first variant)`,
        columns: ['variant', 'receiver pps', 'sender pps', 'vs baseline', 'lost', 'rounds', 'what it does'],
        rows: vs.map((v) => [v.name, v.receiverPps, v.senderPps, `${v.vsBaseline}×`, v.lost, v.rounds.join(', '), v.description]),
      },
    ],
    notes: [],
    data: { ...res, socketMemory: mem },
  };
}
