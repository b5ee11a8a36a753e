/**
 * What arrives on a record port: demultiplexing (RFC 7983, RFC 5761 section 4)
 * and RTP header validation (RFC 3550 section 5.1 and appendix A.1).
 *
 * Runs once per datagram in the worker, so nothing here allocates or throws:
 * results are small integers, and the parsed header goes into a `RtpHeader`
 * the caller creates once per track and reuses.
 */

/** What a datagram is, from its first two bytes. */
export const Kind = {
  Garbage: 0,
  Rtp: 1,
  Rtcp: 2,
  Stun: 3,
  Dtls: 4,
  Zrtp: 5,
  Turn: 6,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Names of `Kind` values, indexed by value (for logs and metric labels). */
export const KIND_NAMES: readonly string[] = ['garbage', 'rtp', 'rtcp', 'stun', 'dtls', 'zrtp', 'turn'];

/**
 * RFC 7983 section 7 on the first byte, then RFC 5761 section 4 on the second:
 * RTCP packet types 192-223 are what RTP payload types 64-95 with the marker
 * bit would look like, which is why those payload types are never used with
 * rtcp-mux. An RTP-range datagram too short to have a second byte counts as
 * RTP, so validation reports it as 'short'.
 */
export function classify(buf: Uint8Array, len: number): number {
  if (len > buf.length) len = buf.length;
  if (len < 1) return Kind.Garbage;
  const b0 = buf[0]!;
  if (b0 >= 128) {
    if (b0 > 191) return Kind.Garbage;
    if (len < 2) return Kind.Rtp;
    const b1 = buf[1]!;
    return b1 >= 192 && b1 <= 223 ? Kind.Rtcp : Kind.Rtp;
  }
  if (b0 <= 3) return Kind.Stun;
  if (b0 >= 16 && b0 <= 19) return Kind.Zrtp;
  if (b0 >= 20 && b0 <= 63) return Kind.Dtls;
  if (b0 >= 64 && b0 <= 79) return Kind.Turn;
  return Kind.Garbage;
}

/** Why `validateRtp` refused a datagram; 0 means a valid RTP packet. */
export const Drop = {
  None: 0,
  /** Shorter than the 12-byte fixed header (or empty). */
  Short: 1,
  /** First byte 192-255: version 3. Versions 0 and 1 fall in other protocols' RFC 7983 ranges. */
  Version: 2,
  /** P bit set but the pad count is 0 or larger than what follows the header. */
  Padding: 3,
  /** The CSRC list runs past the end of the datagram. */
  Csrc: 4,
  /** The header extension (its 4-byte header or its declared length) runs past the end. */
  Extension: 5,
  Rtcp: 6,
  Stun: 7,
  Dtls: 8,
  Zrtp: 9,
  Turn: 10,
  /** First byte in an RFC 7983 range no protocol claims (4-15, 80-127). */
  Garbage: 11,
} as const;
export type Drop = (typeof Drop)[keyof typeof Drop];

/** Names of `Drop` values, indexed by value: one counter per name. */
export const DROP_REASONS: readonly string[] = ['none', 'short', 'version', 'padding', 'csrc', 'extension', 'rtcp', 'stun', 'dtls', 'zrtp', 'turn', 'garbage'];

/** The fields of a valid RTP header, filled in place by `validateRtp`. */
export class RtpHeader {
  marker = false;
  payloadType = 0;
  seq = 0;
  ts = 0;
  ssrc = 0;
  /** Offset of the payload: after the fixed header, CSRC list and extension. */
  payloadOffset = 0;
  /** Payload bytes, without padding. */
  payloadLength = 0;
  csrcCount = 0;
  hasExtension = false;
}

const FIXED_HEADER = 12;

/**
 * Checks a datagram as RTP and fills `out` when it is valid (returns
 * `Drop.None`); otherwise returns the reason and leaves `out` untouched. `len`
 * is the datagram's length in `buf` (clamped to `buf.length`).
 *
 * Payload type checks (known, negotiated) belong to the caller: it knows the
 * track. RTCP payload types 72-76 never reach that point: they classify as RTCP.
 */
export function validateRtp(buf: Uint8Array, len: number, out: RtpHeader): number {
  if (len > buf.length) len = buf.length;
  if (len < 1) return Drop.Short;
  switch (classify(buf, len)) {
    case Kind.Rtp:
      break;
    case Kind.Rtcp:
      return Drop.Rtcp;
    case Kind.Stun:
      return Drop.Stun;
    case Kind.Dtls:
      return Drop.Dtls;
    case Kind.Zrtp:
      return Drop.Zrtp;
    case Kind.Turn:
      return Drop.Turn;
    default:
      return buf[0]! >= 192 ? Drop.Version : Drop.Garbage;
  }
  if (len < FIXED_HEADER) return Drop.Short;
  const b0 = buf[0]!;
  const csrcCount = b0 & 0x0f;
  let headerEnd = FIXED_HEADER + 4 * csrcCount;
  if (headerEnd > len) return Drop.Csrc;
  const hasExtension = (b0 & 0x10) !== 0;
  if (hasExtension) {
    if (headerEnd + 4 > len) return Drop.Extension;
    // The length counts 32-bit words after the 4-byte extension header.
    headerEnd += 4 + 4 * ((buf[headerEnd + 2]! << 8) | buf[headerEnd + 3]!);
    if (headerEnd > len) return Drop.Extension;
  }
  let padding = 0;
  if ((b0 & 0x20) !== 0) {
    // The last octet counts the padding, itself included (RFC 3550 5.1).
    padding = buf[len - 1]!;
    if (padding === 0 || padding > len - headerEnd) return Drop.Padding;
  }
  const b1 = buf[1]!;
  out.marker = (b1 & 0x80) !== 0;
  out.payloadType = b1 & 0x7f;
  out.seq = (buf[2]! << 8) | buf[3]!;
  out.ts = ((buf[4]! << 24) | (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!) >>> 0;
  out.ssrc = ((buf[8]! << 24) | (buf[9]! << 16) | (buf[10]! << 8) | buf[11]!) >>> 0;
  out.payloadOffset = headerEnd;
  out.payloadLength = len - headerEnd - padding;
  out.csrcCount = csrcCount;
  out.hasExtension = hasExtension;
  return Drop.None;
}
