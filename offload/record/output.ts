/**
 * What becomes of a record track's packets once they are in order: each goes
 * to the rtpdump (lossless, with its arrival time), is depacketized, and the
 * frames go to the playable file's container writer. The same code rebuilds
 * a playable file from an rtpdump when a crashed recording is recovered.
 */
import type { TrackSpec } from '../../storage/types.js';
import type { DepacketizedFrame, RtpDepacketizer } from '../codecs/types.js';
import { createDepacketizer } from '../codecs/index.js';
import type { ContainerWriter, RecordedFrame } from '../../storage/writers/types.js';
import { AdtsWriter } from '../../storage/writers/adts.js';
import { AnnexBWriter } from '../../storage/writers/annexb.js';
import { OggOpusWriter } from '../../storage/writers/ogg.js';
import { WavWriter } from '../../storage/writers/wav.js';
import { spropParameterSets } from '../../storage/recording/probe.js';

export function createContainer(spec: TrackSpec): ContainerWriter {
  switch (spec.encoding) {
    case 'H264':
      return new AnnexBWriter(spropParameterSets(spec.fmtp));
    case 'opus':
      return new OggOpusWriter({ channels: spec.channels === 2 ? 2 : 1 });
    case 'PCMU':
      return new WavWriter({ codec: 'pcm_mulaw', sampleRate: 8000, channels: 1 });
    case 'PCMA':
      return new WavWriter({ codec: 'pcm_alaw', sampleRate: 8000, channels: 1 });
    case 'L16':
      return new WavWriter({ codec: 'pcm_s16le', sampleRate: spec.clockRate, channels: spec.channels ?? 1 });
    case 'MPEG4-GENERIC':
      return new AdtsWriter({ audioSpecificConfig: new Uint8Array(Buffer.from(spec.fmtp.config ?? '', 'hex')) });
  }
}

/** Unwraps 32-bit RTP timestamps into a growing (or, for B-frames, locally non-monotonic) number line. */
export class TimestampUnwrapper {
  private last = -1;
  private ext = 0;

  unwrap(ts: number): number {
    if (this.last < 0) {
      this.last = ts >>> 0;
      this.ext = this.last;
      return this.ext;
    }
    const delta = ((ts >>> 0) - this.last) | 0; // signed 32-bit distance
    this.ext += delta;
    this.last = ts >>> 0;
    return this.ext;
  }

  reset(): void {
    this.last = -1;
  }
}

/**
 * Depacketizes in-order payloads and feeds the frames to the container writer;
 * collects the bytes to append to the playable file.
 */
export class FrameOutput {
  readonly depacketizer: RtpDepacketizer;
  readonly container: ContainerWriter;
  private readonly unwrap = new TimestampUnwrapper();
  private readonly out: Uint8Array[] = [];
  firstTs = NaN;
  lastTs = NaN;
  frames = 0;

  constructor(spec: TrackSpec) {
    this.depacketizer = createDepacketizer(spec);
    this.container = createContainer(spec);
  }

  begin(): Uint8Array[] {
    return this.container.begin();
  }

  /** One in-order packet's payload; returns chunks for the playable file (a reused array). */
  push(payload: Uint8Array, rtpTs: number, marker: boolean, lostBefore: number): Uint8Array[] {
    this.out.length = 0;
    const frames = this.depacketizer.push(payload, rtpTs, marker, lostBefore);
    for (let i = 0; i < frames.length; i++) this.write(frames[i]!);
    return this.out;
  }

  private write(f: DepacketizedFrame): void {
    const ts = this.unwrap.unwrap(f.rtpTs);
    if (Number.isNaN(this.firstTs)) this.firstTs = ts;
    if (Number.isNaN(this.lastTs) || ts > this.lastTs) this.lastTs = ts;
    const frame: RecordedFrame = { ts, data: f.data, keyframe: f.keyframe };
    if (f.nals !== undefined) frame.nals = f.nals;
    const chunks = this.container.frame(frame);
    for (let i = 0; i < chunks.length; i++) this.out.push(chunks[i]!);
    this.frames++;
  }

  flush(): Uint8Array[] {
    return this.container.flush();
  }

  /** End: frames still held by the depacketizer, then the container's tail and patches. */
  end(): { tail: Uint8Array[]; patches: { offset: number; bytes: Uint8Array }[] } {
    this.out.length = 0;
    for (const f of this.depacketizer.flush()) this.write(f);
    const head = [...this.out];
    const { tail, patches } = this.container.end();
    return { tail: [...head, ...tail], patches };
  }

  /** Why the playable file cannot be decoded (H.264 without SPS/PPS), or null. */
  unplayable(): string | null {
    return this.container.unplayable?.() ?? null;
  }

  /** Media time covered, ms. */
  durationMs(clockRate: number): number {
    if (Number.isNaN(this.firstTs)) return 0;
    return ((this.lastTs - this.firstTs) * 1000) / clockRate;
  }
}

export function containerInfo(spec: TrackSpec): { ext: string; contentType: string } {
  const c = createContainer(spec);
  return { ext: c.ext, contentType: c.contentType };
}
