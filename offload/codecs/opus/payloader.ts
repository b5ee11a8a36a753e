/**
 * Opus payloader (RFC 7587): exactly one Opus packet per RTP payload, 48 kHz RTP
 * clock whatever the input rate. Opus packets cannot be fragmented, so one larger
 * than rtp.payloadBytes is an error for the whole track.
 */
import type { Sample } from '../../../storage/types.js';
import type { PacketEmit, PayloaderOptions, RtpPayloader } from '../types.js';

export const OPUS_CLOCK_RATE = 48000;

export class OpusPayloader implements RtpPayloader {
  readonly clockRate = OPUS_CLOCK_RATE;
  readonly payloadBytes: number;
  /**
   * Empty samples skipped: a 0-byte Ogg packet is not an Opus packet (RFC 6716
   * R1) and cannot be sent; the next packet's timestamp shows the hole.
   */
  emptySkipped = 0;

  constructor(opts: PayloaderOptions) {
    if (!(opts.payloadBytes >= 1)) throw new RangeError(`Opus: rtp.payloadBytes must be at least 1, got ${opts.payloadBytes}`);
    this.payloadBytes = opts.payloadBytes;
  }

  push(sample: Sample, emit: PacketEmit): void {
    const data = sample.data;
    if (data.length === 0) {
      this.emptySkipped++;
      return;
    }
    if (data.length > this.payloadBytes) {
      const seconds = (sample.pts / OPUS_CLOCK_RATE).toFixed(3);
      throw new RangeError(`Opus packet of ${data.length} bytes at ${seconds} s exceeds rtp.payloadBytes (${this.payloadBytes})`);
    }
    emit(data, sample.pts, false, sample.pts, true);
  }

  flush(_emit: PacketEmit): void {
    // Nothing is held: every sample is sent as it comes.
  }
}
