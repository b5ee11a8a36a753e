/** Payloader for a track and an RTP encoding (the codec layer's one entry point for the cache). */
import type { TrackInfo } from '../../storage/types.js';
import type { Encoding } from '../channel.js';
import type { PayloaderOptions, RtpPayloader } from './types.js';
import { AacPayloader } from './aac/payloader.js';
import { G711Payloader } from './g711/payloader.js';
import { H264Payloader } from './h264/payloader.js';
import { L16Payloader } from './l16/payloader.js';
import { OpusPayloader } from './opus/payloader.js';

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
