// contrib/grafana/offcast.json queries only metrics that /metrics serves: every
// series name in its PromQL is looked up in the exposition of a real server
// that has played and recorded (so that labelled counters exist too).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../helpers/server.js';
import { RawRtsp } from '../helpers/rtsp.js';
import { makeWav } from '../helpers/media.js';
import { RtpSink } from '../helpers/rtp.js';
import { rtpPacket, TestSender } from '../helpers/sender.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string }[];
}

const PROMQL_WORDS = new Set(['sum', 'by', 'rate', 'increase', 'histogram_quantile', 'without', 'le', 'job', 'state', 'reason', 'avg', 'max', 'min']);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords, labels or variables. */
export function metricNames(expr: string): string[] {
  const noStrings = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\{[^}]*\}/g, '{}');
  const names = new Set<string>();
  for (const m of noStrings.matchAll(/(?<![$\w:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![a-zA-Z0-9_:]|\s*\()/g)) {
    const id = m[1]!;
    if (PROMQL_WORDS.has(id)) continue;
    // Grouping labels: `by (reason)`.
    if (new RegExp(`by\\s*\\([^)]*\\b${id}\\b`).test(noStrings)) continue;
    names.add(id);
  }
  return [...names];
}

t.test('metricNames reads PromQL', async (t) => {
  t.same(metricNames('sum by (state) (offcast_sessions{job=~"$job"})'), ['offcast_sessions']);
  t.same(metricNames('histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{job=~"$job"}[$__rate_interval])))'), ['a_seconds_bucket']);
  t.same(metricNames('8 * sum(rate(x_total[5m])) / (sum(rate(y_total[5m])) + 1)').sort(), ['x_total', 'y_total']);
});

t.test('every metric the Grafana dashboard queries is in /metrics', async (t) => {
  const dash = JSON.parse(await readFile(path.join(root, 'contrib', 'grafana', 'offcast.json'), 'utf8')) as {
    panels: Panel[];
    uid: string;
    templating: { list: { name: string; query: unknown }[] };
  };
  t.equal(dash.uid, 'offcast');
  const ids = dash.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((q) => ({ panel: p.title, expr: q.expr })));
  for (const want of [
    'Sessions by state',
    'Packets per second',
    'Bits per second',
    'Send lateness (quantiles)',
    'Send lateness (heatmap)',
    'Scheduler lag (quantiles)',
    'Cache use',
    'Cache hit rate',
    'Record drops by reason',
    'Slow-path decisions',
    'RTSP connections and sessions',
    'RTSP answers by status',
  ]) {
    t.ok(
      dash.panels.some((p) => p.title === want),
      `panel "${want}"`,
    );
  }

  const server = await startServer({}, { rtspPort: 0 });
  t.teardown(() => server.stop());
  // An RTSP request (answers by status) ...
  const rtsp = await RawRtsp.connect(server.rtsp!.port!);
  t.teardown(() => rtsp.close());
  t.equal((await rtsp.request('OPTIONS', '*')).status, 200);
  // Play (packets, cache, lateness) ...
  t.equal((await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 2))).status, 201);
  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const play = await server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', destination: { host: '127.0.0.1', port: sink.port } });
  t.equal(play.status, 201);
  await sink.waitFor(10);
  // ... and record (record counters, slow-path decisions, drops).
  const rec = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'r1',
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(rec.status, 201);
  const sender = await TestSender.open();
  t.teardown(() => sender.close());
  const port = rec.body.tracks[0].port as number;
  for (let seq = 0; seq < 20; seq++) await sender.send(rtpPacket(0, seq, seq * 160, 7, Buffer.alloc(160, 0xff)), port);
  // Two bad packets for the drops panel: not RTP at all, and a payload type the track does not have.
  await sender.send(Buffer.from([1, 2, 3]), port);
  await sender.send(rtpPacket(8, 20, 20 * 160, 7, Buffer.alloc(160, 0xd5)), port);
  let text = '';
  for (let i = 0; i < 200; i++) {
    text = (await server.api('GET', '/metrics')).text;
    if (/^offcast_record_packets_total [2-9]\d/m.test(text) && (text.match(/^offcast_record_drops_total\{/gm)?.length ?? 0) >= 2) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const exposed = new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)/gm)].map((m) => m[1]!));

  const queried = new Set<string>();
  for (const { panel, expr } of exprs) {
    const names = metricNames(expr);
    t.ok(names.length > 0, `${panel}: "${expr}" queries a metric`);
    for (const n of names) queried.add(n);
  }
  for (const n of [...queried].sort()) t.ok(exposed.has(n), `${n} is in /metrics`);
  t.ok(queried.size >= 20, `${queried.size} metrics queried`);
  // The labelled series the panels split by have values.
  t.match(text, /^offcast_sessions\{state="playing"\} 1$/m);
  t.match(text, /^offcast_record_flow_decisions_total\{reason="ok"\} [1-9]/m, 'a slow-path decision was counted');
  t.match(text, /^offcast_send_lateness_seconds_count [1-9]/m, 'lateness has samples');
  t.match(text, /^offcast_record_drops_total\{reason="payload-type"\} 1$/m, 'the drop is counted by reason');
  t.match(text, /^offcast_rtsp_responses_total\{status="200"\} 1$/m, 'RTSP answers are counted by status');
});

t.test('the Prometheus example scrapes /metrics of an offcast server', async (t) => {
  const yml = await readFile(path.join(root, 'contrib', 'prometheus', 'prometheus.yml'), 'utf8');
  t.match(yml, /^scrape_configs:\n {2}- job_name: offcast\n {4}metrics_path: \/metrics\n/m);
  t.match(yml, /targets: \['127\.0\.0\.1:8080'\]/, 'the default http.host:http.port');
  t.notMatch(yml, /\t/, 'YAML without tabs');
});
