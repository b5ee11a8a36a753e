/**
 * ADTS writer for AAC recordings: each access unit gets a 7-byte ADTS header
 * (storage/aac.ts) built from the SDP's AudioSpecificConfig, which makes a raw
 * .aac stream that players read from any frame on. ADTS has no timestamps: a lost
 * AU is simply absent (the stream gets shorter by 1024 samples per loss).
 */
import { ADTS_HEADER_BYTES, ADTS_MAX_FRAME_BYTES, adtsHeader, parseAudioSpecificConfig, type AudioSpecificConfig } from '../aac.js';
import type { ContainerWriter, FilePatch, RecordedFrame } from './types.js';

export interface AdtsWriterOptions {
  /** AudioSpecificConfig bytes (the SDP `config=` hex of RFC 3640 / RFC 6416). */
  audioSpecificConfig: Uint8Array;
}

export interface AdtsWriterStats {
  /** Access units written. */
  frames: number;
  /** Access units dropped: empty, or too long for an ADTS frame (13-bit length). */
  dropped: number;
}

/** Longest access unit an ADTS frame can carry. */
export const ADTS_MAX_AU_BYTES = ADTS_MAX_FRAME_BYTES - ADTS_HEADER_BYTES;

/**
 * Chunks returned by frame() are a fresh header and a view of the frame's bytes:
 * the caller copies them (DurableFile.write does) before the frame is reused.
 */
export class AdtsWriter implements ContainerWriter {
  readonly ext = 'aac';
  readonly contentType = 'audio/aac';
  readonly config: AudioSpecificConfig;
  readonly stats: AdtsWriterStats = { frames: 0, dropped: 0 };

  /**
   * Throws TypeError for a config that is not AAC, RangeError for one that ADTS
   * cannot express (object type above 4 after SBR/PS, explicit sample rate,
   * channelConfiguration above 7), so the caller finds out before recording.
   */
  constructor(opts: AdtsWriterOptions) {
    this.config = parseAudioSpecificConfig(opts.audioSpecificConfig);
    adtsHeader(this.config, 0); // throws when ADTS cannot express the config
  }

  begin(): Uint8Array[] {
    return [];
  }

  frame(f: RecordedFrame): Uint8Array[] {
    const au = f.data;
    // An AU holds at least an END element; longer than 13 bits cannot be framed.
    if (au.length === 0 || au.length > ADTS_MAX_AU_BYTES) {
      this.stats.dropped++;
      return [];
    }
    this.stats.frames++;
    return [adtsHeader(this.config, au.length), au];
  }

  flush(): Uint8Array[] {
    return [];
  }

  end(): { tail: Uint8Array[]; patches: FilePatch[] } {
    return { tail: [], patches: [] };
  }
}
