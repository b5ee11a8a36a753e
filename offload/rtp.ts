/**
 * RTP header arithmetic for the egress loop: a 12-byte header template written
 * once per track and patched in place per packet (marker, sequence number,
 * timestamp). rtp.js serializes the same bytes (test/offload/rtp.test.ts checks
 * it) but building a packet object per send costs ~0.75 µs, measurable at
 * 100k+ packets/s. Received RTP is parsed by our own code too
 * (offload/record/packet.ts: RFC 3550 validation in place, no object per
 * packet); RTCP, a few packets per second, is built and parsed with rtp.js
 * (offload/rtcp.ts), and the NTP clock helpers it needs are here.
 */

export const RTP_HEADER_BYTES = 12;

/** Writes version 2, no padding/extension/CSRC, payload type and SSRC. */
export function writeRtpHeaderTemplate(buf: Uint8Array, payloadType: number, ssrc: number): void {
  buf[0] = 0x80;
  buf[1] = payloadType & 0x7f;
  buf[2] = 0;
  buf[3] = 0;
  buf[4] = 0;
  buf[5] = 0;
  buf[6] = 0;
  buf[7] = 0;
  buf[8] = (ssrc >>> 24) & 0xff;
  buf[9] = (ssrc >>> 16) & 0xff;
  buf[10] = (ssrc >>> 8) & 0xff;
  buf[11] = ssrc & 0xff;
}

/** Patches marker+PT, sequence number and timestamp of a header written by the template. */
export function patchRtpHeader(buf: Uint8Array, payloadType: number, marker: boolean, seq: number, ts: number): void {
  patchRtpHeaderAt(buf, 0, payloadType, marker, seq, ts);
}

/** The same patch on a header at `off` of a larger buffer (the native sender's staging buffer). */
export function patchRtpHeaderAt(buf: Uint8Array, off: number, payloadType: number, marker: boolean, seq: number, ts: number): void {
  buf[off + 1] = marker ? 0x80 | payloadType : payloadType;
  buf[off + 2] = (seq >>> 8) & 0xff;
  buf[off + 3] = seq & 0xff;
  buf[off + 4] = (ts >>> 24) & 0xff;
  buf[off + 5] = (ts >>> 16) & 0xff;
  buf[off + 6] = (ts >>> 8) & 0xff;
  buf[off + 7] = ts & 0xff;
}

/** Seconds between the NTP epoch (1900) and the Unix epoch (1970). */
export const NTP_UNIX_OFFSET = 2208988800;

/** NTP timestamp of a performance.now() instant: [seconds, fraction], both uint32. */
export function ntpTime(perfNowMs: number): [number, number] {
  const unixMs = performance.timeOrigin + perfNowMs;
  const secs = Math.floor(unixMs / 1000);
  const frac = Math.floor(((unixMs - secs * 1000) / 1000) * 0x100000000);
  return [(secs + NTP_UNIX_OFFSET) >>> 0, frac >>> 0];
}

/** The middle 32 bits of an NTP timestamp (RFC 3550 LSR/DLSR units: 1/65536 s). */
export function ntpMiddle(perfNowMs: number): number {
  const [s, f] = ntpTime(perfNowMs);
  return (((s & 0xffff) << 16) | (f >>> 16)) >>> 0;
}
