/**
 * A recording's manifest (storage/recording/manifest.ts readManifest) as start-up
 * recovery and the media list read it after a crash, then turned into a probe
 * (storage/recording/probe.ts) as listing a finished recording does.
 */
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST, readManifest } from '../../../storage/recording/manifest.js';
import { recordingProbe } from '../../../storage/recording/probe.js';
import { bytesOf, isA, text, type Target } from '../lib.js';
import { scratchDir } from './scratch.js';

let dir = '';

function track(i: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    index: i,
    kind: 'video',
    codec: 'H264',
    payloadType: 96,
    clockRate: 90000,
    fmtp: { 'packetization-mode': '1', 'sprop-parameter-sets': 'Z2QACqzZRHsBEAAAAwAQAAADAUDxIllg,aO+Pyw==', 'profile-level-id': '64000A' },
    file: `track${i}.h264`,
    contentType: 'video/h264',
    rtpdump: `track${i}.rtpdump`,
    packets: 120,
    bytes: 50000,
    lost: 0,
    duplicates: 0,
    reordered: 0,
    late: 0,
    durationMs: 4000,
    ...over,
  };
}

function manifest(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    name: 'cam1',
    state: 'finished',
    createdAt: '2026-12-02T10:00:00.000Z',
    finishedAt: '2026-12-02T10:00:04.000Z',
    reason: 'stopped',
    durationMs: 4000,
    tracks: [
      track(0),
      track(1, {
        kind: 'audio',
        codec: 'MPEG4-GENERIC',
        payloadType: 97,
        clockRate: 8000,
        channels: 1,
        fmtp: { mode: 'AAC-hbr', config: '158856E500', sizelength: '13' },
        file: 'track1.aac',
      }),
      track(2, { kind: 'audio', codec: 'opus', payloadType: 111, clockRate: 48000, channels: 2, fmtp: {}, file: 'track2.ogg' }),
      track(3, { kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000, fmtp: {}, file: 'track3.wav' }),
    ],
    ...over,
  };
}

const json = (v: unknown): Uint8Array => text(JSON.stringify(v, null, 2) + '\n');
const anyValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 12 }),
  fc.constant([]),
  fc.constant({}),
  fc.array(fc.integer(), { maxLength: 3 }),
);
const fields = ['index', 'kind', 'codec', 'payloadType', 'clockRate', 'channels', 'fmtp', 'file', 'contentType', 'rtpdump', 'packets', 'bytes', 'durationMs'];

export const target: Target = {
  name: 'manifest',
  seeds: () => [
    json(manifest()),
    json(manifest({ state: 'recording', finishedAt: undefined, tracks: [track(0, { packets: 0 })] })),
    json(manifest({ tracks: [] })),
  ],
  arbitrary: fc.oneof(
    // A good manifest with one field of one track (or of the top) replaced by any JSON value.
    fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(...fields), anyValue).map(([i, k, v]) => {
      const m = manifest();
      (m.tracks as Record<string, unknown>[])[i]![k] = v;
      return json(m);
    }),
    fc.tuple(fc.constantFrom('version', 'state', 'tracks', 'durationMs', 'name'), anyValue).map(([k, v]) => json(manifest({ [k]: v }))),
    fc.tuple(anyValue, fc.array(anyValue, { maxLength: 3 })).map(([a, tracks]) => json(manifest({ tracks: [a, ...tracks] }))),
    fc.json().map(text),
  ),
  async setup() {
    dir = mkdtempSync(join(scratchDir(), 'offcast-fuzz-manifest-'));
  },
  async teardown() {
    rmSync(dir, { recursive: true, force: true });
  },
  async run(input, slot) {
    const folder = join(dir, String(slot));
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, MANIFEST), input);
    const m = await readManifest(folder);
    return bytesOf(recordingProbe(m, input.length));
  },
  // readManifest: TypeError for what is not an offcast manifest.
  expected: (err) => isA(err, 'TypeError'),
  outputRatio: 8,
  concurrency: 4,
};
