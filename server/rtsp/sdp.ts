/**
 * The SDP a DESCRIBE answers (RFC 2326 C.1): the tracks as an HTTP session's
 * SDP describes them, with no destination (`c=IN IP4 0.0.0.0`, port 0: the
 * transport is chosen by SETUP) and `a=control:trackID=N` per track, relative
 * to the Content-Base of the answer.
 */
import sdpTransform from 'sdp-transform';
import type { MediaDescription, SessionDescription } from 'sdp-transform';
import { fmtp, rtpmap, type SdpTrack } from '../sdp.js';

export interface DescribedTrack extends Omit<SdpTrack, 'port'> {
  /** The track's number in control URLs (`trackID=N`). */
  control: number;
}

export function describeSdp(name: string, origin: { address: string; family: 4 | 6 }, tracks: readonly DescribedTrack[], durationMs: number): string {
  const media: MediaDescription[] = tracks.map((t) => {
    const m: MediaDescription = {
      type: t.kind,
      port: 0,
      protocol: 'RTP/AVP',
      payloads: String(t.payloadType),
      rtp: [rtpmap(t)],
      fmtp: [],
      control: `trackID=${t.control}`,
    };
    const f = fmtp(t);
    if (f !== null) m.fmtp = [{ payload: t.payloadType, config: f }];
    return m;
  });
  const doc: SessionDescription = {
    version: 0,
    origin: { username: '-', sessionId: 0, sessionVersion: 1, netType: 'IN', ipVer: origin.family, address: origin.address },
    name: `offcast ${name}`,
    connection: { version: origin.family, ip: origin.family === 6 ? '::' : '0.0.0.0' },
    timing: { start: 0, stop: 0 },
    control: '*',
    media,
  };
  // A file has a length (players show a seek bar); a live feed has none.
  if (durationMs > 0) doc.invalid = [{ value: `range:npt=0-${(durationMs / 1000).toFixed(3)}` }];
  return sdpTransform.write(doc);
}
