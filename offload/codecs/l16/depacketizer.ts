/**
 * L16 depacketizer: each RTP payload is a run of whole interleaved frames in
 * network byte order; it comes back as little-endian PCM, ready for a WAV file.
 * Audio packets are independent, so a gap loses nothing but the missing packets.
 */
import type { DepacketizedFrame, RtpDepacketizer } from '../types.js';
import { swapBytes16 } from './payloader.js';

export class L16Depacketizer implements RtpDepacketizer {
  readonly channels: number;
  readonly stats = { malformed: 0, dropped: 0 };
  readonly #frameBytes: number;

  constructor(format: { channels: number }) {
    const { channels } = format;
    if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`L16: channels must be a positive integer, got ${channels}`);
    this.channels = channels;
    this.#frameBytes = 2 * channels;
  }

  push(payload: Uint8Array, rtpTs: number, _marker: boolean, _lostBefore: number): DepacketizedFrame[] {
    if (payload.length === 0 || payload.length % this.#frameBytes !== 0) {
      this.stats.malformed++;
      return [];
    }
    const data = new Uint8Array(payload.length);
    swapBytes16(payload, 0, data, 0, payload.length);
    return [{ rtpTs, data, keyframe: true }];
  }

  flush(): DepacketizedFrame[] {
    return [];
  }
}
