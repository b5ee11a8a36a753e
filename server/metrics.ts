/**
 * Prometheus metrics (prom-client). Data-plane figures are pulled from the
 * workers when /metrics is scraped; histograms of send lateness and scheduler
 * lag are merged from the workers' fixed buckets.
 */
import client from 'prom-client';
import type { HistogramSnapshot, WorkerStats } from '../offload/channel.js';
import type { CacheDirectory } from './cache.js';
import type { OffloadClient } from './offload.js';
import type { SessionManager } from './sessions.js';
import type { RtspService } from './rtsp/service.js';

/** A histogram whose buckets are filled elsewhere (the workers), exposed as a prom-client metric. */
class MergedHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private snapshot: HistogramSnapshot = { buckets: [], counts: [], sum: 0, count: 0 };

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  set(snaps: HistogramSnapshot[]): void {
    const first = snaps[0];
    if (first === undefined) return;
    const counts = new Array<number>(first.counts.length).fill(0);
    let sum = 0;
    let count = 0;
    for (const s of snaps) {
      s.counts.forEach((c, i) => (counts[i]! += c));
      sum += s.sum;
      count += s.count;
    }
    this.snapshot = { buckets: first.buckets, counts, sum, count };
  }

  get(): {
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { value: number; labels: Record<string, string | number>; metricName: string }[];
  } {
    const s = this.snapshot;
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    let cumulative = 0;
    s.buckets.forEach((le, i) => {
      cumulative += s.counts[i] ?? 0;
      values.push({ value: cumulative, labels: { le: le / 1000 }, metricName: `${this.name}_bucket` });
    });
    cumulative += s.counts[s.buckets.length] ?? 0;
    values.push({ value: cumulative, labels: { le: '+Inf' }, metricName: `${this.name}_bucket` });
    values.push({ value: s.sum / 1000, labels: {}, metricName: `${this.name}_sum` });
    values.push({ value: s.count, labels: {}, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export interface MetricsDeps {
  offload: OffloadClient;
  cache: CacheDirectory;
  sessions: SessionManager;
  /** RTSP, when it is on. */
  rtsp?: RtspService;
  /** Extra gauges/counters registered by other plugins (recording). */
  extra?: (registry: client.Registry) => void;
}

export function createMetrics(deps: MetricsDeps): { registry: client.Registry; refresh: () => Promise<void> } {
  const registry = new client.Registry();
  // prom-client's defaults under their standard names (process_*, nodejs_*), so stock dashboards work.
  client.collectDefaultMetrics({ register: registry });
  let workers: WorkerStats[] = [];

  const sum = (f: (w: WorkerStats) => number): number => workers.reduce((a, w) => a + f(w), 0);

  new client.Gauge({
    name: 'offcast_sessions',
    help: 'Sessions by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [state, n] of Object.entries(deps.sessions.countByState())) this.set({ state }, n);
    },
  });
  const counter = (name: string, help: string, f: () => number): void => {
    new client.Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(f());
      },
    });
  };
  const gauge = (name: string, help: string, f: () => number): void => {
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(f());
      },
    });
  };
  counter('offcast_rtp_packets_sent_total', 'RTP packets sent by the offload', () => sum((w) => w.packets));
  counter('offcast_rtp_octets_sent_total', 'RTP payload octets sent by the offload', () => sum((w) => w.octets));
  counter('offcast_send_errors_total', 'Failed sends (socket errors)', () => sum((w) => w.sendErrors));
  counter('offcast_packets_dropped_total', 'Packets dropped by the offload (full queues)', () => sum((w) => w.dropped));
  gauge('offcast_cache_bytes', 'Bytes of packetized media in the cache', () => deps.cache.bytes);
  gauge('offcast_cache_media_bytes', 'Payload bytes in the cache (the rest is the packet index)', () => deps.cache.payloadBytes);
  gauge('offcast_cache_entries', 'Media files in the cache', () => deps.cache.size);
  gauge('offcast_cache_max_bytes', 'cache.maxBytes', () => deps.cache.maxBytes);
  counter('offcast_cache_hits_total', 'Cache lookups served from memory', () => deps.cache.counters.hits);
  counter('offcast_cache_misses_total', 'Cache lookups that loaded from storage', () => deps.cache.counters.misses);
  counter('offcast_cache_evictions_total', 'Entries evicted (least recently used)', () => deps.cache.counters.evictions);
  counter('offcast_cache_load_errors_total', 'Failed cache loads', () => deps.cache.counters.loadErrors);
  counter('offcast_channel_payload_bytes_total', 'Binary bytes that crossed the control/offload channel (0 for media)', () => deps.offload.payloadBytes);
  counter('offcast_channel_messages_total', 'Messages on the control/offload channel', () => deps.offload.messages);
  gauge('offcast_offload_workers', 'Offload worker threads', () => deps.offload.size);
  counter('offcast_offload_worker_restarts_total', 'Offload workers restarted after a crash', () => deps.offload.restarts);

  counter('offcast_record_packets_total', 'RTP packets recorded (unique, in order)', () => sum((w) => w.record.packets));
  counter('offcast_record_bytes_total', 'Payload bytes recorded', () => sum((w) => w.record.bytes));
  counter('offcast_record_slow_path_total', 'First packets of new flows sent (header only) to the control plane', () => sum((w) => w.record.slowPath));
  counter('offcast_record_fast_path_total', 'Packets of installed flows handled in the offload alone', () => sum((w) => w.record.fastPath));
  new client.Counter({
    name: 'offcast_record_drops_total',
    help: 'Packets dropped on record ports, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      const drops: Record<string, number> = {};
      for (const w of workers) for (const [k, v] of Object.entries(w.record.drops)) drops[k] = (drops[k] ?? 0) + v;
      for (const [reason, n] of Object.entries(drops)) this.inc({ reason }, n);
    },
  });
  gauge('offcast_offload_native_send', 'Workers sending with the native sendmmsg addon', () => workers.filter((w) => w.nativeSend).length);
  gauge(
    'offcast_offload_native_engine',
    'Workers whose UDP play tracks the native pacing engine (a C thread) paces',
    () => workers.filter((w) => w.engine === 'native').length,
  );
  gauge('offcast_engine_tracks', 'Play tracks in the native pacing engines now', () => sum((w) => w.engineTracks));
  counter('offcast_engine_syscalls_total', 'sendmmsg calls of the native pacing engines', () => sum((w) => w.engineSyscalls));
  counter('offcast_engine_gso_sends_total', 'UDP GSO sends (a run of same-size packets in one message) of the native pacing engines', () =>
    sum((w) => w.gsoSends),
  );
  counter('offcast_engine_gso_refused_total', 'Sockets whose GSO send the kernel refused (they send packet by packet since)', () => sum((w) => w.gsoRefused));
  // RTSP: the listener's counters (its worker's), the control plane's answers and sessions.
  gauge('offcast_rtsp_connections', 'RTSP connections open', () => sum((w) => w.rtsp.connections));
  counter('offcast_rtsp_connections_total', 'RTSP connections accepted', () => sum((w) => w.rtsp.connectionsTotal));
  counter('offcast_rtsp_connections_refused_total', 'RTSP connections answered 503 and closed because rtsp.maxConnections were open', () =>
    sum((w) => w.rtsp.refused),
  );
  counter('offcast_rtsp_requests_total', 'RTSP requests parsed', () => sum((w) => w.rtsp.requests));
  counter('offcast_rtsp_bad_requests_total', 'Malformed or oversized RTSP requests (answered 400/413/505, connection closed)', () =>
    sum((w) => w.rtsp.badRequests),
  );
  counter('offcast_rtsp_connection_timeouts_total', 'RTSP connections closed for a request too slow to arrive (408) or idleness', () =>
    sum((w) => w.rtsp.timeouts),
  );
  counter('offcast_rtsp_unknown_channel_total', 'Interleaved frames received on a channel nothing is set up on (dropped)', () =>
    sum((w) => w.rtsp.unknownChannel),
  );
  counter('offcast_rtsp_interleaved_packets_total', 'RTP and RTCP packets written interleaved on RTSP connections', () =>
    sum((w) => w.rtsp.interleavedPackets),
  );
  counter('offcast_rtsp_interleaved_dropped_total', 'Interleaved packets dropped whole because a connection’s backlog was full', () =>
    sum((w) => w.rtsp.interleavedDropped),
  );
  if (deps.rtsp !== undefined) {
    const rtsp = deps.rtsp;
    gauge('offcast_rtsp_sessions', 'RTSP sessions (reading: set up, playing or paused; publishing: announced or recording)', () => rtsp.sessions.size);
    counter('offcast_rtsp_session_timeouts_total', 'RTSP sessions torn down for want of keep-alives', () => rtsp.sessions.timeouts);
    new client.Counter({
      name: 'offcast_rtsp_responses_total',
      help: 'RTSP answers by status code',
      labelNames: ['status'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [status, n] of Object.entries(rtsp.answers)) this.inc({ status }, n);
      },
    });
  }
  const lateness = new MergedHistogram('offcast_send_lateness_seconds', 'Lateness of each RTP send against its schedule');
  const lag = new MergedHistogram('offcast_scheduler_lag_seconds', 'How late the timing wheel ran its ticks');
  registry.registerMetric(lateness as unknown as client.Metric);
  registry.registerMetric(lag as unknown as client.Metric);
  deps.extra?.(registry);

  return {
    registry,
    async refresh() {
      workers = await deps.offload.all('worker.stats', {});
      lateness.set(workers.map((w) => w.lateness));
      lag.set(workers.map((w) => w.lag));
    },
  };
}
