/**
 * The codec layer of the offload: payloaders turn storage Samples into RTP
 * payloads (codec fragmentation only; headers and sequence numbers are added
 * when sending), depacketizers turn received payloads back into frames.
 */
import type { Sample } from '../../storage/types.js';

/**
 * Receives one RTP payload. `payload` may be a view over a scratch buffer that the
 * payloader reuses: copy it before returning if you keep it.
 *  - rtpTs: RTP timestamp offset (clock units, relative to media start) = pts.
 *  - marker: the RTP marker bit for this packet.
 *  - sendTs: when to send it, same clock units (decode time, spread across the
 *    frame interval for multi-packet video frames); never decreasing.
 *  - sync: the packet starts a random access point (an IDR access unit, or any
 *    audio packet); seeking lands on such packets.
 */
export type PacketEmit = (payload: Uint8Array, rtpTs: number, marker: boolean, sendTs: number, sync: boolean) => void;

export interface PayloaderOptions {
  /** Upper bound for every payload's length in bytes (config rtp.payloadBytes). */
  payloadBytes: number;
  /**
   * Fraction (0..1) of the frame interval over which the packets of one video frame are
   * spread; 0 sends them back to back. Audio payloaders ignore it.
   */
  spread: number;
}

export interface RtpPayloader {
  /** RTP clock rate of the output timestamps. */
  readonly clockRate: number;
  /** Feed one sample (in decode order); emits zero or more payloads. */
  push(sample: Sample, emit: PacketEmit): void;
  /** End of input: emit anything buffered. */
  flush(emit: PacketEmit): void;
}

/** A frame recovered by a depacketizer. */
export interface DepacketizedFrame {
  /** RTP timestamp (32-bit, as received). */
  rtpTs: number;
  /** Audio: codec frame bytes. H.264: unused (empty); see nals. */
  data: Uint8Array;
  nals?: Uint8Array[];
  keyframe: boolean;
}

/** Per-packet input to a depacketizer: in sequence order, with gaps flagged. */
export interface RtpDepacketizer {
  /**
   * One packet's payload in sequence order. `lostBefore` > 0 says packets are
   * missing right before this one. Returns frames completed by this packet
   * (usually 0 or 1) — "need more packets" is the normal outcome, not an error.
   */
  push(payload: Uint8Array, rtpTs: number, marker: boolean, lostBefore: number): DepacketizedFrame[];
  /** End of stream: any complete frame still held. */
  flush(): DepacketizedFrame[];
  /** Counters: malformed payloads and incomplete frames dropped at gaps. */
  readonly stats: { malformed: number; dropped: number };
}
