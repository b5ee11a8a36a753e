/**
 * Probing media in the offload, off the control plane's thread: what a file
 * holds (the probe), and for an upload whether playing it will work. The
 * control plane asks with `media.probe` and gets the probe back; it never opens
 * a media file itself.
 *
 * A probe made for a play keeps its opened reader (the parsed sample tables) for
 * a few seconds, so the cache load that follows on this worker reads the file
 * without parsing it again.
 */
import { openMedia } from '../storage/open.js';
import { CorruptMediaError } from '../storage/errors.js';
import type { MediaReader, Probe, TrackInfo } from '../storage/types.js';
import type { MediaProbeParams } from './channel.js';
import type { Encoding } from '../storage/types.js';
import { checkPacket } from './cache.js';
import { createPayloader } from './codecs/index.js';
import { toOffloadError } from './load.js';

/** How long a reader kept by a probe waits for its load. */
const KEEP_MS = 10_000;
/** Readers kept at once (each holds a file handle and its sample tables). */
const KEEP_MAX = 8;

/** Readers opened by probes, by the key the control plane gave, waiting for their load. */
export class ProbedReaders {
  private readonly kept = new Map<string, { reader: MediaReader; timer: NodeJS.Timeout }>();

  keep(key: string, reader: MediaReader): void {
    this.drop(key);
    if (this.kept.size >= KEEP_MAX) this.drop(this.kept.keys().next().value!);
    const timer = setTimeout(() => this.drop(key), KEEP_MS);
    timer.unref();
    this.kept.set(key, { reader, timer });
  }

  /** The kept reader for `key`, now the caller's to close; undefined if none. */
  take(key: string): MediaReader | undefined {
    const k = this.kept.get(key);
    if (k === undefined) return undefined;
    clearTimeout(k.timer);
    this.kept.delete(key);
    return k.reader;
  }

  get size(): number {
    return this.kept.size;
  }

  private drop(key: string): void {
    const reader = this.take(key);
    if (reader !== undefined) void reader.close().catch(() => undefined);
  }
}

/**
 * The probe of `params.path`. With `validate` (uploads), every sample of every
 * supported track is read and packetized as a play would, packets discarded:
 * a file that would fail when played fails here (422), and media with no
 * samples at all is refused. Errors are OffloadErrors with the HTTP status.
 */
export async function probeFile(params: MediaProbeParams, kept: ProbedReaders): Promise<Probe> {
  let reader: MediaReader;
  try {
    reader = await openMedia(params.path, params.frameRate === undefined ? {} : { frameRate: params.frameRate });
  } catch (err) {
    throw toOffloadError(err);
  }
  let keep = false;
  try {
    if (params.validate) await validate(reader);
    if (params.keep !== undefined) {
      kept.keep(params.keep, reader);
      keep = true;
    }
    return reader.probe;
  } catch (err) {
    throw toOffloadError(err);
  } finally {
    if (!keep) await reader.close().catch(() => undefined);
  }
}

/** The encoding a play uses by default for a source codec (as the control plane plans it). */
function defaultEncoding(t: TrackInfo): Encoding | null {
  switch (t.codec) {
    case 'pcm_s16le':
      return 'L16';
    case 'pcm_mulaw':
      return 'PCMU';
    case 'pcm_alaw':
      return 'PCMA';
    case 'opus':
      return 'opus';
    case 'h264':
      return 'H264';
    case 'aac':
      return 'MPEG4-GENERIC';
    default:
      return null;
  }
}

/** Packet sizes for validation: the smallest budget config allows fragments the most. */
const VALIDATE_OPTIONS = { payloadBytes: 1200, spread: 0 };

async function validate(reader: MediaReader): Promise<void> {
  const probe = reader.probe;
  const tracks = probe.tracks.filter((t) => t.supported && defaultEncoding(t) !== null);
  if (tracks.length === 0) return; // The probe says so; planning a play answers 415.
  const payloaders = new Map(tracks.map((t) => [t.index, createPayloader(defaultEncoding(t)!, t, VALIDATE_OPTIONS)]));
  let samples = 0;
  let packets = 0;
  const emit = (payload: Uint8Array, rtpTs: number, _marker: boolean, sendTs: number): void => {
    checkPacket(payload, rtpTs, sendTs);
    packets++;
  };
  for await (const sample of reader.samples({ tracks: tracks.map((t) => t.index) })) {
    const p = payloaders.get(sample.track);
    if (p === undefined) continue;
    samples++;
    p.push(sample, emit);
  }
  for (const p of payloaders.values()) p.flush(emit);
  if (samples === 0 || packets === 0) {
    throw new CorruptMediaError(`${probe.format}: the media holds no samples (${tracks.map((t) => `${t.kind} ${t.codec}`).join(', ')} empty)`);
  }
}
