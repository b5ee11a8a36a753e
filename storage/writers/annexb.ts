/**
 * H.264 Annex B writer for recordings: the SDP's parameter sets (sprop-parameter-sets)
 * first, then every access unit's NAL units, each after a 4-byte start code
 * (zero_byte + start code, allowed before any NAL unit: H.264 B.1.2). In-band
 * SPS/PPS are written where they come, so a stream that changes its parameter
 * sets stays decodable. Raw H.264 has no timestamps: players assume a frame rate.
 */
import type { ContainerWriter, FilePatch, RecordedFrame } from './types.js';

const START_CODE = Uint8Array.of(0, 0, 0, 1);

export interface AnnexBWriterOptions {
  /** Parameter sets from the SDP, without start codes; may be empty (in-band only). */
  sps: Uint8Array[];
  pps: Uint8Array[];
}

export interface AnnexBWriterStats {
  /** Access units written. */
  frames: number;
  /**
   * Access units dropped: those before the first keyframe (a decoder cannot use
   * them: they reference pictures the recording never saw) and empty ones.
   */
  dropped: number;
  /** Empty NAL units skipped inside written access units. */
  emptyNals: number;
}

/**
 * Chunks returned by frame() are the shared start code and views of the frame's
 * NAL units: the caller copies them (DurableFile.write does) before the frame is
 * reused, and never writes into them.
 */
export class AnnexBWriter implements ContainerWriter {
  readonly ext = 'h264';
  readonly contentType = 'video/h264';
  readonly stats: AnnexBWriterStats = { frames: 0, dropped: 0, emptyNals: 0 };
  private readonly parameterSets: Uint8Array[];
  private started = false;

  constructor(opts: AnnexBWriterOptions) {
    this.parameterSets = [...opts.sps, ...opts.pps].filter((nal) => nal.length > 0).map((nal) => nal.slice());
  }

  begin(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const nal of this.parameterSets) out.push(START_CODE, nal);
    return out;
  }

  frame(f: RecordedFrame): Uint8Array[] {
    const nals = f.nals;
    if (nals === undefined || nals.length === 0 || (!this.started && !f.keyframe)) {
      this.stats.dropped++;
      return [];
    }
    const out: Uint8Array[] = [];
    for (let i = 0; i < nals.length; i++) {
      const nal = nals[i]!;
      if (nal.length === 0) {
        this.stats.emptyNals++;
        continue;
      }
      out.push(START_CODE, nal);
    }
    if (out.length === 0) {
      this.stats.dropped++;
      return out;
    }
    this.started = true;
    this.stats.frames++;
    return out;
  }

  flush(): Uint8Array[] {
    return [];
  }

  end(): { tail: Uint8Array[]; patches: FilePatch[] } {
    return { tail: [], patches: [] };
  }
}
