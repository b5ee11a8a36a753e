/**
 * Cache misses: read a media file from storage once, packetize each planned
 * track with its codec's payloader and put the packets in one shared buffer.
 */
import { openMedia } from '../storage/open.js';
import { MediaError } from '../storage/errors.js';
import type { MediaReader } from '../storage/types.js';
import type { CacheLoadParams } from './channel.js';
import { OffloadError } from './channel.js';
import { finishMedia, PacketTrackBuilder, type MediaPackets } from './cache.js';
import { createPayloader } from './codecs/index.js';

/** `opened`: the reader a probe on this worker kept for this load (its tables already parsed). */
export async function loadMediaPackets(params: CacheLoadParams, opened?: MediaReader): Promise<MediaPackets> {
  let reader = opened;
  try {
    reader ??= await openMedia(params.path, params.frameRate === undefined ? {} : { frameRate: params.frameRate });
  } catch (err) {
    throw toOffloadError(err);
  }
  try {
    const probe = reader.probe;
    const payloaders = params.tracks.map((plan) => {
      const info = probe.tracks[plan.source];
      if (info === undefined || !info.supported) {
        throw new OffloadError('OFFCAST_BAD_TRACK', `media has no supported track ${plan.source}`, 422);
      }
      return createPayloader(plan.encoding, info, { payloadBytes: params.payloadBytes, spread: params.spread });
    });
    const builders = params.tracks.map((_, i) => new PacketTrackBuilder(payloaders[i]!.clockRate));
    const slot = new Map<number, number>();
    params.tracks.forEach((plan, i) => slot.set(plan.source, i));
    for await (const sample of reader.samples({ tracks: params.tracks.map((t) => t.source) })) {
      const i = slot.get(sample.track);
      if (i === undefined) continue;
      const builder = builders[i]!;
      payloaders[i]!.push(sample, builder.emit);
      const end = scaleTs(sample.pts + sample.duration, probe.tracks[sample.track]!.clockRate, builder.clockRate);
      if (end > builder.endTs) builder.endTs = end;
    }
    payloaders.forEach((p, i) => p.flush(builders[i]!.emit));
    const media = finishMedia(params.key, builders);
    // Nothing to send (a file with no samples, put in the library by hand): a loop over it would spin.
    if (media.tracks.every((t) => t.count === 0)) throw new OffloadError('OFFCAST_CORRUPT_MEDIA', `${probe.format}: the media holds no samples`, 422);
    return media;
  } catch (err) {
    throw toOffloadError(err);
  } finally {
    await reader.close().catch(() => undefined);
  }
}

function scaleTs(ts: number, from: number, to: number): number {
  return from === to ? ts : Math.round((ts * to) / from);
}

/** Storage and parser errors as OffloadErrors carrying their HTTP status. */
export function toOffloadError(err: unknown): Error {
  if (err instanceof OffloadError) return err;
  if (err instanceof MediaError) return new OffloadError(err.code, err.message, err.statusCode);
  if (err instanceof RangeError || err instanceof TypeError) return new OffloadError('OFFCAST_CORRUPT_MEDIA', err.message, 422);
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return new OffloadError('OFFCAST_MEDIA_NOT_FOUND', 'media file disappeared', 404);
  return new OffloadError('OFFCAST_LOAD_FAILED', `loading media failed: ${e.message}`, 500);
}
