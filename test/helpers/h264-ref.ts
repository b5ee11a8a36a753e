/**
 * Reference H.264 RTP payload checks for tests (RFC 6184), independent of
 * offload/codecs/h264: whether a packet starts an IDR picture.
 */
const IDR = 5;
const STAP_A = 24;
const FU_A = 28;

/** A single IDR NAL, a STAP-A holding one, or the first fragment (S bit) of an FU-A of one. */
export function startsIdrRef(payload: Uint8Array): boolean {
  if (payload.length < 1) return false;
  const type = payload[0]! & 0x1f;
  if (type === IDR) return true;
  if (type === FU_A) return payload.length >= 2 && (payload[1]! & 0x80) !== 0 && (payload[1]! & 0x1f) === IDR;
  if (type === STAP_A) {
    for (let o = 1; o + 2 < payload.length;) {
      const size = (payload[o]! << 8) | payload[o + 1]!;
      if ((payload[o + 2]! & 0x1f) === IDR) return true;
      o += 2 + size;
    }
  }
  return false;
}
