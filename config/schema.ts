/**
 * Every config key offcast knows: its type, default and bounds. The environment
 * variable of a key is derived from its path (`cache.maxBytes` ->
 * `OFFCAST_CACHE_MAX_BYTES`), so the table below is the single source of truth.
 */

export type KeyType = 'string' | 'int' | 'number' | 'bool' | 'cidrs' | 'optional-string';

export interface KeySpec {
  type: KeyType;
  default: unknown;
  min?: number;
  max?: number;
  /** Allowed values for strings. */
  oneOf?: readonly string[];
  doc: string;
}

const MiB = 1024 * 1024;

export const SCHEMA = {
  'http.host': { type: 'string', default: '127.0.0.1', doc: 'address the HTTP API listens on' },
  'http.port': { type: 'int', default: 8080, min: 0, max: 65535, doc: 'HTTP API port (0 picks a free one)' },
  mediaRoot: { type: 'string', default: './media', doc: 'folder of the media library' },
  recordingsRoot: { type: 'string', default: './recordings', doc: 'folder where recordings are written' },
  'cache.maxBytes': { type: 'int', default: 256 * MiB, min: 1 * MiB, max: 64 * 1024 * MiB, doc: 'bytes of packetized media held in memory' },
  'rtp.portMin': { type: 'int', default: 20000, min: 1024, max: 65534, doc: 'lowest local RTP port (even)' },
  'rtp.portMax': { type: 'int', default: 29999, min: 1025, max: 65535, doc: 'highest local port (RTCP of the last pair)' },
  'rtp.payloadBytes': { type: 'int', default: 1200, min: 200, max: 65000, doc: 'largest RTP payload (the MTU budget per packet)' },
  'rtp.rtcpIntervalMs': { type: 'int', default: 5000, min: 500, max: 60000, doc: 'interval of RTCP sender and receiver reports' },
  'pacing.spread': { type: 'number', default: 0.8, min: 0, max: 1, doc: 'fraction of the frame interval over which a video frame’s packets are spread' },
  'destinations.allow': { type: 'cidrs', default: ['127.0.0.0/8', '::1/128'], doc: 'CIDRs play sessions may send to' },
  'sources.allow': { type: 'cidrs', default: ['127.0.0.0/8', '::1/128'], doc: 'CIDRs record sessions accept packets from' },
  'api.token': { type: 'optional-string', default: undefined, doc: 'bearer token required on every route but /healthz' },
  'limits.maxSessions': { type: 'int', default: 1000, min: 1, max: 100000, doc: 'concurrent sessions' },
  'limits.uploadBytes': { type: 'int', default: 1024 * MiB, min: 1024, max: 64 * 1024 * MiB, doc: 'largest media upload' },
  'limits.uploads': { type: 'int', default: 4, min: 1, max: 1000, doc: 'concurrent media uploads (more get 503)' },
  'limits.uploadTimeoutMs': {
    type: 'int',
    default: 10 * 60 * 1000,
    min: 1000,
    max: 24 * 3600 * 1000,
    doc: 'longest an upload’s body may take to arrive (else 408)',
  },
  'limits.uploadIdleMs': { type: 'int', default: 30000, min: 100, max: 3600 * 1000, doc: 'longest pause in an upload’s body (else 408)' },
  'rtsp.port': { type: 'int', default: 8554, min: 0, max: 65535, doc: 'RTSP port, at http.host’s address (0: no RTSP)' },
  'rtsp.sessionTimeoutMs': {
    type: 'int',
    default: 60000,
    min: 100,
    max: 3600 * 1000,
    doc: 'an RTSP session without a request or RTCP report for this long is torn down (announced as Session timeout)',
  },
  'rtsp.requestTimeoutMs': {
    type: 'int',
    default: 10000,
    min: 100,
    max: 600 * 1000,
    doc: 'an RTSP request must arrive whole this long after its first byte (else 408, closed)',
  },
  'rtsp.maxConnections': {
    type: 'int',
    default: 500,
    min: 1,
    max: 100000,
    doc: 'RTSP connections open at once; one more is answered 503 and closed',
  },
  'offload.workers': { type: 'int', default: 1, min: 1, max: 64, doc: 'data-plane worker threads' },
  'offload.nativeSend': {
    type: 'bool',
    default: true,
    doc: 'pace and send UDP play tracks with the native engine (a C thread per worker) when the addon is built (else JavaScript and Node dgram)',
  },
  'record.idleTimeoutMs': { type: 'int', default: 30000, min: 100, max: 24 * 3600 * 1000, doc: 'a record session ends after this long without media' },
  'record.maxDurationMs': { type: 'int', default: 6 * 3600 * 1000, min: 1000, max: 7 * 24 * 3600 * 1000, doc: 'a record session ends after this long' },
  'record.reorderPackets': { type: 'int', default: 64, min: 1, max: 4096, doc: 'reorder buffer depth in packets' },
  'record.reorderMs': { type: 'int', default: 100, min: 0, max: 5000, doc: 'longest a packet waits for a gap before it' },
  'record.holdMs': {
    type: 'int',
    default: 500,
    min: 1,
    max: 10000,
    doc: "longest the offload holds a new flow's packets while the control plane decides on it (older ones are dropped and counted)",
  },
  'record.flushMs': { type: 'int', default: 500, min: 50, max: 1000, doc: 'interval at which recordings are flushed to disk' },
  'log.level': { type: 'string', default: 'info', oneOf: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], doc: 'log level' },
  'log.format': {
    type: 'string',
    default: 'auto',
    oneOf: ['auto', 'pretty', 'json'],
    doc: 'log lines: pretty (pino-pretty) for people, json for collectors; auto = pretty when stdout is a terminal',
  },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof SCHEMA;

/** `cache.maxBytes` -> `OFFCAST_CACHE_MAX_BYTES`. */
export function envName(key: string): string {
  return (
    'OFFCAST_' +
    key
      .split('.')
      .map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
      .join('_')
  );
}
