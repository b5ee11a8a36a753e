/**
 * A finished recording as media: the tracks' rtpdump files are depacketized
 * again into frames, timed as they were received, so a play session replays
 * all tracks with their original timing and A/V alignment.
 *
 * Timeline: a frame's presentation time is its RTP timestamp mapped to the
 * sender's wall clock through the sender's RTCP reports (kept in the rtpdump),
 * or through the arrival of the track's first packet when there were none;
 * the earliest frame of all tracks is time 0. Send times follow the arrival
 * times. `registerRecordingReader()` makes it the library's reader of the
 * 'recording' format.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { registerReader } from '../../storage/open.js';
import { CorruptMediaError } from '../../storage/errors.js';
import { readManifest, trackSpecOf, type ManifestTrack } from '../../storage/recording/manifest.js';
import { recordingProbe, recordingTrackInfo } from '../../storage/recording/probe.js';
import type { MediaReader, Probe, Sample, SampleOptions } from '../../storage/types.js';
import { createDepacketizer } from '../codecs/index.js';
import { TimestampUnwrapper } from './output.js';
import { openRtpdump, replayRtpdump } from './replay.js';
import { SenderClock } from '../rtcp.js';

interface TrackTiming {
  track: ManifestTrack;
  clock: SenderClock;
  /** Unix ms of the first packet's arrival, and its RTP timestamp. */
  firstArrival: number;
  firstTs: number;
  /** Earliest wall time of any packet's timestamp. */
  minWall: number;
  inband?: { sps: Uint8Array[]; pps: Uint8Array[] };
}

/** Pass 1 over a track: the sender clock, first arrival and earliest presentation wall time. */
async function timeTrack(dir: string, t: ManifestTrack): Promise<TrackTiming> {
  const file = await openRtpdump(path.join(dir, t.rtpdump));
  const clock = new SenderClock();
  const timing: TrackTiming = { track: t, clock, firstArrival: NaN, firstTs: 0, minWall: Infinity };
  const unwrap = new TimestampUnwrapper();
  const wants = t.codec === 'H264' && !(t.fmtp['sprop-parameter-sets'] ?? '').includes(',');
  const sps: Uint8Array[] = [];
  const pps: Uint8Array[] = [];
  try {
    const onReport = (sr: { unixMs: number; ntpSec: number; ntpFrac: number; rtpTs: number }): void => {
      if (!clock.hasReport) clock.update(sr.ntpSec, sr.ntpFrac, sr.rtpTs, sr.unixMs);
    };
    // SRs only map timestamps after they arrive; collect the packets' timestamps first.
    const tsList: number[] = [];
    for await (const p of replayRtpdump(file, onReport)) {
      if (Number.isNaN(timing.firstArrival)) {
        timing.firstArrival = p.unixMs;
        timing.firstTs = p.ts;
      }
      tsList.push(unwrap.unwrap(p.ts));
      if (wants && p.payload.length > 0) {
        const type = p.payload[0]! & 0x1f;
        if (type === 7 && sps.length === 0) sps.push(p.payload.slice());
        if (type === 8 && pps.length === 0) pps.push(p.payload.slice());
      }
    }
    const base = tsList.length > 0 ? tsList[0]! : 0;
    for (const ext of tsList) {
      const w = wallOf(timing, timing.firstTs + (ext - base), t.clockRate);
      if (w < timing.minWall) timing.minWall = w;
    }
  } finally {
    await file.close();
  }
  if (sps.length > 0 && pps.length > 0) timing.inband = { sps, pps };
  return timing;
}

/** Wall time (Unix ms) at which RTP timestamp `ts` (unwrapped relative to firstTs) was meant to play. */
function wallOf(timing: TrackTiming, ts: number, clockRate: number): number {
  if (timing.clock.hasReport) {
    // Map relative to the SR, as a signed distance (works across the 32-bit wrap).
    const delta = ts - timing.firstTs;
    return timing.clock.ntpMsOf(timing.firstTs >>> 0, clockRate) + (delta * 1000) / clockRate;
  }
  return timing.firstArrival + ((ts - timing.firstTs) * 1000) / clockRate;
}

export async function openRecording(dir: string): Promise<MediaReader> {
  let manifest;
  try {
    manifest = await readManifest(dir);
  } catch (err) {
    throw new CorruptMediaError(`recording ${path.basename(dir)}: unreadable manifest (${(err as Error).message})`);
  }
  if (manifest.state !== 'finished') throw new CorruptMediaError(`recording ${manifest.name} is ${manifest.state}, not finished`);
  const used = manifest.tracks.filter((t) => t.packets > 0);
  let bytes = 0;
  for (const t of used) bytes += (await stat(path.join(dir, t.rtpdump))).size;
  const timings = await Promise.all(used.map((t) => timeTrack(dir, t)));
  const probe: Probe = recordingProbe(manifest, bytes);
  probe.tracks = used.map((t, i) => recordingTrackInfo(trackSpecOf(t), i, t.durationMs, timings[i]!.inband));
  const zeroWall = Math.min(...timings.map((t) => t.minWall));
  const zeroArrival = Math.min(...timings.map((t) => t.firstArrival));
  let closed = false;

  async function* trackSamples(i: number): AsyncGenerator<Sample> {
    const timing = timings[i]!;
    const t = timing.track;
    const clock = t.clockRate;
    const dep = createDepacketizer(trackSpecOf(t));
    const unwrap = new TimestampUnwrapper();
    const file = await openRtpdump(path.join(dir, t.rtpdump));
    let pending: Sample | null = null;
    let base = NaN;
    let lastArrival = 0;
    const toSample = (f: { rtpTs: number; data: Uint8Array; nals?: Uint8Array[]; keyframe: boolean }, arrivalUnix: number): Sample => {
      const ext = unwrap.unwrap(f.rtpTs);
      if (Number.isNaN(base)) base = ext;
      const wall = wallOf(timing, timing.firstTs + (ext - base), clock);
      const pts = Math.max(0, Math.round(((wall - zeroWall) * clock) / 1000));
      const dts = Math.max(0, Math.round(((arrivalUnix - zeroArrival) * clock) / 1000));
      const s: Sample = { track: i, data: f.data, pts, dts, duration: 0, keyframe: t.kind === 'audio' ? true : f.keyframe };
      if (f.nals !== undefined) s.nals = f.nals;
      return s;
    };
    try {
      for await (const p of replayRtpdump(file)) {
        if (closed) return;
        lastArrival = p.unixMs;
        for (const f of dep.push(p.payload, p.ts, p.marker, p.lostBefore)) {
          const s = toSample(f, p.unixMs);
          if (pending !== null) {
            // Video: the decode-order interval (B-frames make pts differences meaningless); audio: pts step.
            pending.duration = Math.max(1, t.kind === 'video' ? s.dts - pending.dts : s.pts - pending.pts);
            yield pending;
          }
          pending = s;
        }
      }
      for (const f of dep.flush()) {
        const s = toSample(f, lastArrival);
        if (pending !== null) {
          pending.duration = Math.max(1, t.kind === 'video' ? s.dts - pending.dts : s.pts - pending.pts);
          yield pending;
        }
        pending = s;
      }
      if (pending !== null) {
        pending.duration = lastDuration(t, pending);
        yield pending;
      }
    } finally {
      await file.close();
    }
  }

  return {
    probe,
    async *samples(opts?: SampleOptions) {
      const want = opts?.tracks ?? probe.tracks.map((t) => t.index);
      for (const i of want) {
        if (i < 0 || i >= used.length) continue;
        yield* trackSamples(i);
      }
    },
    async close() {
      closed = true;
    },
  };
}

/** The last frame's duration: what its codec implies (the frame after it is unknown). */
function lastDuration(t: ManifestTrack, s: Sample): number {
  switch (t.codec) {
    case 'MPEG4-GENERIC':
      return 1024;
    case 'opus':
      return 960;
    case 'PCMU':
    case 'PCMA':
      return s.data.length;
    case 'L16':
      return s.data.length / (2 * (t.channels ?? 1));
    case 'H264':
      return Math.round(t.clockRate / 25);
  }
}

/**
 * Makes finished recordings readable through storage's library (`openMedia`,
 * `probeMedia`): storage cannot import this reader (layers point down), so
 * whoever opens recordings (the offload worker at start) registers it.
 */
export function registerRecordingReader(): void {
  registerReader('recording', (p) => openRecording(p));
}
