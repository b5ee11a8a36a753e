/** JSON schemas shared by routes (responses are serialized through them: no stray fields). */
import { errorSchema } from '../errors.js';

export const errors = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  413: errorSchema,
  415: errorSchema,
  422: errorSchema,
  500: errorSchema,
  503: errorSchema,
} as const;

export const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 1024 } },
  required: ['name'],
} as const;

export const idParams = {
  type: 'object',
  properties: { id: { type: 'string', maxLength: 200 } },
  required: ['id'],
} as const;

export const trackInfoSchema = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    kind: { type: 'string' },
    codec: { type: 'string' },
    supported: { type: 'boolean' },
    clockRate: { type: 'integer' },
    channels: { type: 'integer' },
    durationMs: { type: 'number' },
    width: { type: 'integer' },
    height: { type: 'integer' },
    frameRate: { type: 'number' },
    profileLevelId: { type: 'string' },
    sampleRate: { type: 'integer' },
    preSkip: { type: 'integer' },
  },
} as const;

export const probeSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    format: { type: 'string' },
    bytes: { type: 'integer' },
    durationMs: { type: 'number' },
    modified: { type: 'string' },
    tracks: { type: 'array', items: trackInfoSchema },
  },
} as const;

const rtcpSchema = {
  type: ['object', 'null'],
  properties: {
    fractionLost: { type: 'number' },
    totalLost: { type: 'integer' },
    jitter: { type: 'integer' },
    jitterMs: { type: 'number' },
    rttMs: { type: ['number', 'null'] },
    highestSeq: { type: 'integer' },
  },
} as const;

export const sessionTrackSchema = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    kind: { type: 'string' },
    codec: { type: 'string' },
    payloadType: { type: 'integer' },
    clockRate: { type: 'integer' },
    channels: { type: 'integer' },
    ssrc: { type: 'integer' },
    port: { type: 'integer' },
    sourcePort: { type: 'integer' },
    fmtp: { type: 'string' },
    stats: {
      type: 'object',
      properties: {
        packets: { type: 'integer' },
        octets: { type: 'integer' },
        sendErrors: { type: 'integer' },
        senderReports: { type: 'integer' },
        receiverReports: { type: 'integer' },
        rtcpRejected: { type: 'integer' },
        rtcp: rtcpSchema,
        // play side: send lateness of this track, cumulative (bucket upper bounds in ms; counts per bucket, the last one above them all)
        lateness: {
          type: 'object',
          properties: {
            buckets: { type: 'array', items: { type: 'number' } },
            counts: { type: 'array', items: { type: 'number' } },
            sum: { type: 'number' },
            count: { type: 'number' },
          },
        },
        // record side
        bytes: { type: 'integer' },
        lost: { type: 'integer' },
        duplicates: { type: 'integer' },
        reordered: { type: 'integer' },
        slowPath: { type: 'integer' },
        fastPath: { type: 'integer' },
        drops: { type: 'object', additionalProperties: { type: 'integer' } },
        jitterMs: { type: 'number' },
      },
    },
  },
} as const;

export const sessionSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    mode: { type: 'string' },
    state: { type: 'string' },
    media: { type: 'string' },
    live: { type: 'string' },
    name: { type: 'string' },
    destination: { type: 'object', properties: { host: { type: 'string' }, port: { type: 'integer' } } },
    source: { type: 'object', properties: { host: { type: 'string' }, port: { type: 'integer' } } },
    loop: { type: 'boolean' },
    speed: { type: ['number', 'string'] },
    durationMs: { type: 'number' },
    positionMs: { type: 'number' },
    createdAt: { type: 'string' },
    tracks: { type: 'array', items: sessionTrackSchema },
    sdp: { type: 'string' },
    error: { type: 'string' },
    reason: { type: 'string' },
    warnings: { type: 'array', items: { type: 'string' } },
    recording: { type: 'object', additionalProperties: true },
    rtsp: { type: 'object', properties: { session: { type: 'string' }, transport: { type: 'string' } } },
  },
} as const;

export const recordingTrackSchema = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    kind: { type: 'string' },
    codec: { type: 'string' },
    file: { type: 'string' },
    rtpdump: { type: 'string' },
    contentType: { type: 'string' },
    payloadType: { type: 'integer' },
    clockRate: { type: 'integer' },
    channels: { type: 'integer' },
    packets: { type: 'integer' },
    bytes: { type: 'integer' },
    lost: { type: 'integer' },
    duplicates: { type: 'integer' },
    reordered: { type: 'integer' },
    late: { type: 'integer' },
    durationMs: { type: 'number' },
    playable: { type: 'boolean' },
    unplayableReason: { type: 'string' },
  },
} as const;

export const recordingSummarySchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    state: { type: 'string' },
    reason: { type: 'string' },
    error: { type: 'string' },
    recovered: { type: 'boolean' },
    createdAt: { type: 'string' },
    finishedAt: { type: 'string' },
    durationMs: { type: 'number' },
    tracks: { type: 'array', items: recordingTrackSchema },
  },
} as const;

export const recordingResultSchema = {
  type: 'object',
  properties: { recording: recordingSummarySchema },
  required: ['recording'],
} as const;
