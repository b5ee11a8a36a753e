/**
 * Opus depacketizer (RFC 7587): each payload is one Opus packet. Packets that
 * break RFC 6716 3.4 (R1-R7) are counted and dropped, so a recording holds only
 * packets a decoder accepts. Audio packets are independent, so a gap loses
 * nothing but the missing packets.
 */
import type { DepacketizedFrame, RtpDepacketizer } from '../types.js';
import { opusPacketError } from '../../../storage/opus/toc.js';

export class OpusDepacketizer implements RtpDepacketizer {
  readonly stats = { malformed: 0, dropped: 0 };
  /** Why the most recent malformed packet was rejected, for a rate-limited log. */
  lastError: string | null = null;

  push(payload: Uint8Array, rtpTs: number, _marker: boolean, _lostBefore: number): DepacketizedFrame[] {
    const error = opusPacketError(payload);
    if (error !== null) {
      this.stats.malformed++;
      this.lastError = error;
      return [];
    }
    // A copy: the caller's buffer is reused for the next datagram.
    return [{ rtpTs, data: payload.slice(), keyframe: true }];
  }

  flush(): DepacketizedFrame[] {
    return [];
  }
}
