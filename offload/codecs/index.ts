/** The codec layer's entry points: a payloader for the cache, a depacketizer for the record path. */
import type { TrackInfo } from '../../storage/types.js';
import type { Encoding } from '../../storage/types.js';
import type { PayloaderOptions, RtpDepacketizer, RtpPayloader } from './types.js';
import { AacDepacketizer } from './aac/depacketizer.js';
import { AacPayloader } from './aac/payloader.js';
import { G711Depacketizer } from './g711/depacketizer.js';
import { G711Payloader } from './g711/payloader.js';
import { H264Depacketizer } from './h264/depacketizer.js';
import { H264Payloader } from './h264/payloader.js';
import { L16Depacketizer } from './l16/depacketizer.js';
import { L16Payloader } from './l16/payloader.js';
import { OpusDepacketizer } from './opus/depacketizer.js';
import { OpusPayloader } from './opus/payloader.js';

/** What a depacketizer needs to know of a received track. */
export interface DepacketizerSpec {
  encoding: Encoding;
  channels?: number;
  /** fmtp parameters, names lower-cased. */
  fmtp: Record<string, string>;
}

export function createPayloader(encoding: Encoding, track: TrackInfo, opts: PayloaderOptions): RtpPayloader {
  switch (encoding) {
    case 'L16':
      if (track.codec !== 'pcm_s16le') break;
      return new L16Payloader({ clockRate: track.clockRate, channels: track.channels ?? 1 }, opts);
    case 'PCMU':
    case 'PCMA':
      if (track.codec !== 'pcm_s16le' && track.codec !== 'pcm_mulaw' && track.codec !== 'pcm_alaw') break;
      return new G711Payloader(encoding, track.codec, opts, { clockRate: track.clockRate, channels: track.channels ?? 1 });
    case 'opus':
      if (track.codec !== 'opus') break;
      return new OpusPayloader(opts);
    case 'H264':
      if (track.codec !== 'h264' || track.h264 === undefined) break;
      return new H264Payloader(track.h264, opts);
    case 'MPEG4-GENERIC':
      if (track.codec !== 'aac' || track.aac === undefined) break;
      return new AacPayloader(track.aac, opts);
  }
  throw new TypeError(`cannot send ${track.codec} as ${encoding}`);
}

/** Depacketizer for a received track (record path, recording reader, recovery). */
export function createDepacketizer(spec: DepacketizerSpec): RtpDepacketizer {
  switch (spec.encoding) {
    case 'H264':
      return new H264Depacketizer();
    case 'opus':
      return new OpusDepacketizer();
    case 'PCMU':
    case 'PCMA':
      return new G711Depacketizer();
    case 'L16':
      return new L16Depacketizer({ channels: spec.channels ?? 1 });
    case 'MPEG4-GENERIC':
      return new AacDepacketizer({
        sizeLength: Number(spec.fmtp.sizelength ?? 13),
        indexLength: Number(spec.fmtp.indexlength ?? 3),
        indexDeltaLength: Number(spec.fmtp.indexdeltalength ?? 3),
      });
  }
}
