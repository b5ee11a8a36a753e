/**
 * G.711 payloader (RFC 3551 4.5.14: PCMU and PCMA, 8000 Hz mono, one byte per
 * sample). Packets hold 20 ms (160 samples), or fewer when rtp.payloadBytes is
 * smaller. The source may be s16le PCM (encoded here), the same law (bytes pass
 * through) or the other law (transcoded through linear). Partial packets carry
 * over between input blocks.
 */
import type { Sample } from '../../../storage/types.js';
import type { PacketEmit, PayloaderOptions, RtpPayloader } from '../types.js';
import { encodeAlaw, encodeUlaw, transcodeAlawToUlaw, transcodeUlawToAlaw } from './g711.js';

export type G711Encoding = 'PCMU' | 'PCMA';
export type G711SourceCodec = 'pcm_s16le' | 'pcm_mulaw' | 'pcm_alaw';

export const G711_CLOCK_RATE = 8000;
/** 20 ms at 8000 Hz. */
export const G711_SAMPLES_PER_PACKET = 160;

/**
 * Why a source cannot be sent as G.711 (it must already be 8000 Hz mono: offcast
 * does not resample or downmix), or null when it can.
 */
export function checkG711Source(clockRate: number, channels: number, encoding: G711Encoding = 'PCMU'): string | null {
  if (clockRate === G711_CLOCK_RATE && channels === 1) return null;
  return (
    `${encoding} needs 8000 Hz mono audio; this file is ${clockRate} Hz ${channelsName(channels)}` +
    ' — use L16, or convert it: ffmpeg -i in.wav -ar 8000 -ac 1 out.wav'
  );
}

function channelsName(channels: number): string {
  if (channels === 1) return 'mono';
  if (channels === 2) return 'stereo';
  return `${channels}-channel`;
}

type Convert = (src: Uint8Array, out: Uint8Array) => number;

function copyBytes(src: Uint8Array, out: Uint8Array): number {
  out.set(src);
  return src.length;
}

export class G711Payloader implements RtpPayloader {
  readonly clockRate = G711_CLOCK_RATE;
  readonly encoding: G711Encoding;
  readonly sourceCodec: G711SourceCodec;
  readonly samplesPerPacket: number;
  /** Source bytes per sample: 2 for s16le, 1 for a G.711 source. */
  readonly #sourceBytes: number;
  readonly #convert: Convert;
  readonly #scratch: Uint8Array;
  #filled = 0;
  #packetTs = 0;

  /**
   * `format`, when given (from the probe), is checked with checkG711Source and
   * a mismatch throws RangeError. Without it, each sample's byte count is still
   * checked against its duration, which catches stereo but not a wrong rate.
   */
  constructor(encoding: G711Encoding, sourceCodec: G711SourceCodec, opts: PayloaderOptions, format?: { clockRate: number; channels: number }) {
    if (encoding !== 'PCMU' && encoding !== 'PCMA') throw new RangeError(`G.711: unknown encoding ${String(encoding)}`);
    if (format) {
      const problem = checkG711Source(format.clockRate, format.channels, encoding);
      if (problem !== null) throw new RangeError(problem);
    }
    const samples = Math.min(G711_SAMPLES_PER_PACKET, Math.floor(opts.payloadBytes));
    if (!(samples >= 1)) throw new RangeError(`G.711: rtp.payloadBytes (${opts.payloadBytes}) cannot hold one sample`);
    this.encoding = encoding;
    this.sourceCodec = sourceCodec;
    this.samplesPerPacket = samples;
    this.#scratch = new Uint8Array(samples);
    switch (sourceCodec) {
      case 'pcm_s16le':
        this.#sourceBytes = 2;
        this.#convert = encoding === 'PCMU' ? encodeUlaw : encodeAlaw;
        break;
      case 'pcm_mulaw':
        this.#sourceBytes = 1;
        this.#convert = encoding === 'PCMU' ? copyBytes : transcodeUlawToAlaw;
        break;
      case 'pcm_alaw':
        this.#sourceBytes = 1;
        this.#convert = encoding === 'PCMA' ? copyBytes : transcodeAlawToUlaw;
        break;
      default:
        throw new RangeError(`G.711: cannot make ${encoding} from ${String(sourceCodec)}`);
    }
  }

  push(sample: Sample, emit: PacketEmit): void {
    const data = sample.data;
    const sourceBytes = this.#sourceBytes;
    if (data.length !== sample.duration * sourceBytes) {
      throw new RangeError(
        `G.711: sample at pts ${sample.pts} has ${data.length} bytes for ${sample.duration} frames; ` +
          `${this.encoding} needs 8000 Hz mono ${this.sourceCodec} (${sourceBytes} byte${sourceBytes > 1 ? 's' : ''} per frame)`,
      );
    }
    const scratch = this.#scratch;
    if (this.#filled > 0 && sample.pts !== this.#packetTs + this.#filled) this.#emitPending(emit);
    if (this.#filled === 0) this.#packetTs = sample.pts;

    const total = sample.duration;
    let done = 0;
    while (done < total) {
      const take = Math.min(scratch.length - this.#filled, total - done);
      const src = data.subarray(done * sourceBytes, (done + take) * sourceBytes);
      this.#convert(src, scratch.subarray(this.#filled, this.#filled + take));
      this.#filled += take;
      done += take;
      if (this.#filled === scratch.length) this.#emitPending(emit);
    }
  }

  flush(emit: PacketEmit): void {
    if (this.#filled > 0) this.#emitPending(emit);
  }

  #emitPending(emit: PacketEmit): void {
    const ts = this.#packetTs;
    const payload = this.#filled === this.#scratch.length ? this.#scratch : this.#scratch.subarray(0, this.#filled);
    this.#packetTs = ts + this.#filled;
    this.#filled = 0;
    emit(payload, ts, false, ts, true);
  }
}
