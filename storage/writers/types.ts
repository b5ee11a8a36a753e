/**
 * Container writers for recordings: pure encoders that turn depacketized frames
 * into the bytes of a playable file. They do no I/O; the durable file
 * (storage/recording/file.ts) appends what they return, flushes it at least
 * once a second and applies the final patches (e.g. WAV sizes) before renaming.
 */

export interface RecordedFrame {
  /**
   * Extended RTP timestamp (32-bit wraps unwrapped by the caller: keeps growing past
   * 2^32), in the track's clock. Audio: increasing. H.264 with B-frames: may go back.
   */
  ts: number;
  /** Audio frame bytes (Opus packet, AAC AU, L16 little-endian PCM, G.711 bytes). */
  data: Uint8Array;
  /** H.264: the access unit's NAL units (no start codes). */
  nals?: Uint8Array[];
  keyframe: boolean;
}

export interface FilePatch {
  offset: number;
  bytes: Uint8Array;
}

export interface ContainerWriter {
  /** File extension of the playable file (without dot). */
  readonly ext: string;
  /** HTTP content type of the playable file. */
  readonly contentType: string;
  /** Bytes that start the file. */
  begin(): Uint8Array[];
  /** Bytes to append for one frame (may be empty while a page/packet is being collected). */
  frame(f: RecordedFrame): Uint8Array[];
  /** Called at every flush tick (<= 1 s): bytes that must reach the disk now (e.g. close the open Ogg page). */
  flush(): Uint8Array[];
  /** End of recording: last bytes, and patches to bytes written earlier (sizes in headers). */
  end(): { tail: Uint8Array[]; patches: FilePatch[] };
  /** Why no player can decode what was written (e.g. H.264 without SPS/PPS), or null. */
  unplayable?(): string | null;
}
