/**
 * H.264 Annex B writer for recordings: the SDP's parameter sets (sprop-parameter-sets)
 * first, then every access unit's NAL units, each after a 4-byte start code
 * (zero_byte + start code, allowed before any NAL unit: H.264 B.1.2). In-band
 * SPS/PPS are written wherever they come, also in the access units before the
 * first keyframe (whose other NAL units are dropped), so a sender that signals
 * them in-band only, or changes them, stays decodable. A file that never got
 * both an SPS and a PPS cannot be decoded: `unplayable()` says so. Raw H.264 has
 * no timestamps: players assume a frame rate.
 */
import type { ContainerWriter, FilePatch, RecordedFrame } from './types.js';

const START_CODE = Uint8Array.of(0, 0, 0, 1);
const NAL_SPS = 7;
const NAL_PPS = 8;

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
  /** An SPS and a PPS were written (from the SDP or in-band). */
  private sawSps = false;
  private sawPps = false;

  constructor(opts: AnnexBWriterOptions) {
    this.parameterSets = [...opts.sps, ...opts.pps].filter((nal) => nal.length > 0).map((nal) => nal.slice());
    for (const nal of this.parameterSets) this.note(nal);
  }

  private note(nal: Uint8Array): void {
    const type = nal[0]! & 0x1f;
    if (type === NAL_SPS) this.sawSps = true;
    else if (type === NAL_PPS) this.sawPps = true;
  }

  unplayable(): string | null {
    if (this.sawSps && this.sawPps) return null;
    const missing = this.sawSps ? 'PPS' : this.sawPps ? 'SPS' : 'SPS/PPS';
    return `no ${missing}: neither in the SDP (sprop-parameter-sets) nor in-band, so no decoder can read the H.264 file`;
  }

  begin(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const nal of this.parameterSets) out.push(START_CODE, nal);
    return out;
  }

  frame(f: RecordedFrame): Uint8Array[] {
    const nals = f.nals;
    if (nals === undefined || nals.length === 0) {
      this.stats.dropped++;
      return [];
    }
    if (!this.started && !f.keyframe) {
      // Dropped, but for its parameter sets: the keyframe to come needs them.
      this.stats.dropped++;
      let out: Uint8Array[] | null = null;
      for (let i = 0; i < nals.length; i++) {
        const nal = nals[i]!;
        const type = nal.length === 0 ? 0 : nal[0]! & 0x1f;
        if (type !== NAL_SPS && type !== NAL_PPS) continue;
        this.note(nal);
        (out ??= []).push(START_CODE, nal);
      }
      return out ?? [];
    }
    const out: Uint8Array[] = [];
    for (let i = 0; i < nals.length; i++) {
      const nal = nals[i]!;
      if (nal.length === 0) {
        this.stats.emptyNals++;
        continue;
      }
      out.push(START_CODE, nal);
      this.note(nal);
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
