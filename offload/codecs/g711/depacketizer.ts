/**
 * G.711 depacketizer: a PCMU or PCMA payload is one code byte per sample, which
 * a recording stores as-is (WAV format 7 or 6). Audio packets are independent,
 * so a gap loses nothing but the missing packets.
 */
import type { DepacketizedFrame, RtpDepacketizer } from '../types.js';

export class G711Depacketizer implements RtpDepacketizer {
  readonly stats = { malformed: 0, dropped: 0 };

  push(payload: Uint8Array, rtpTs: number, _marker: boolean, _lostBefore: number): DepacketizedFrame[] {
    if (payload.length === 0) {
      this.stats.malformed++;
      return [];
    }
    // A copy: the caller's buffer is reused for the next datagram.
    return [{ rtpTs, data: payload.slice(), keyframe: true }];
  }

  flush(): DepacketizedFrame[] {
    return [];
  }
}
