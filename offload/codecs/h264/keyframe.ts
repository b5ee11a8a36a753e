/**
 * H.264 over RTP (RFC 6184) as the live relay sees it: whether a payload
 * starts a keyframe, and a STAP-A (5.7.1) carrying parameter sets to send
 * ahead of the first keyframe a subscriber gets.
 */

const NAL_IDR = 5;
const NAL_SPS = 7;
const TYPE_STAP_A = 24;
const TYPE_FU_A = 28;

/** Does this H.264 payload start a keyframe (IDR, or parameter sets ahead of one)? */
export function startsKeyframe(p: Uint8Array, off: number, len: number): boolean {
  if (len < 1) return false;
  const type = p[off]! & 0x1f;
  if (type === NAL_IDR || type === NAL_SPS) return true;
  if (type === TYPE_STAP_A) {
    let i = off + 1;
    const end = off + len;
    while (i + 2 < end) {
      const size = (p[i]! << 8) | p[i + 1]!;
      const t = p[i + 2]! & 0x1f;
      if (t === NAL_IDR || t === NAL_SPS) return true;
      i += 2 + size;
    }
    return false;
  }
  if (type === TYPE_FU_A && len >= 2) return (p[off + 1]! & 0x80) !== 0 && (p[off + 1]! & 0x1f) === NAL_IDR;
  return false;
}

/** One STAP-A payload carrying `nals` (each under 64 KiB), NRI the highest of theirs; null for none. */
export function buildStapA(nals: readonly Uint8Array[]): Buffer | null {
  if (nals.length === 0) return null;
  let nri = 0;
  let size = 1;
  for (const n of nals) {
    nri = Math.max(nri, n[0]! & 0x60);
    size += 2 + n.length;
  }
  const out = Buffer.alloc(size);
  out[0] = nri | TYPE_STAP_A;
  let o = 1;
  for (const n of nals) {
    out.writeUInt16BE(n.length, o);
    out.set(n, o + 2);
    o += 2 + n.length;
  }
  return out;
}
