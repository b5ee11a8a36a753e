/**
 * SDP for sessions (RFC 4566, written with sdp-transform). The control plane
 * builds it from track descriptions only: codec parameters such as H.264
 * parameter sets or the AAC config are metadata of the probe, not media payload.
 */
import sdpTransform from 'sdp-transform';
import type { MediaDescription, SessionDescription } from 'sdp-transform';
import type { Encoding, TrackInfo, TrackSpec } from '../storage/types.js';

/** A track as an SDP describes it: the spec (its fmtp comes from `info`), where it goes. */
export interface SdpTrack extends Omit<TrackSpec, 'fmtp'> {
  /** Destination RTP port of this track. */
  port: number;
  /** The probe's description, for fmtp parameters. */
  info: TrackInfo;
}

export interface SdpSession {
  id: string;
  name: string;
  /** Where the packets go (c= line). */
  destination: { address: string; family: 4 | 6 };
  /** Our address for o= (the sender). */
  origin: string;
  tracks: SdpTrack[];
  /** RTCP on the RTP port (RFC 5761): `a=rtcp-mux` instead of `a=rtcp:port+1`. */
  rtcpMux?: boolean;
}

/** rtpmap encoding/clock[/channels] parameters as RFC 3551 / 7587 / 6184 / 3640 want them. */
export function rtpmap(t: Pick<SdpTrack, 'encoding' | 'clockRate' | 'channels' | 'payloadType'>): {
  payload: number;
  codec: string;
  rate: number;
  encoding?: number;
} {
  switch (t.encoding) {
    case 'opus':
      // RFC 7587 7: always opus/48000/2, whatever the channel count.
      return { payload: t.payloadType, codec: 'opus', rate: 48000, encoding: 2 };
    case 'H264':
      return { payload: t.payloadType, codec: 'H264', rate: 90000 };
    case 'PCMU':
    case 'PCMA':
      return { payload: t.payloadType, codec: t.encoding, rate: 8000 };
    default: {
      const out: { payload: number; codec: string; rate: number; encoding?: number } = { payload: t.payloadType, codec: t.encoding, rate: t.clockRate };
      if ((t.channels ?? 1) > 1 || t.encoding === 'MPEG4-GENERIC') out.encoding = t.channels ?? 1;
      return out;
    }
  }
}

/** fmtp parameters for a track, or null. */
export function fmtp(t: Pick<SdpTrack, 'encoding' | 'channels' | 'info'>): string | null {
  switch (t.encoding) {
    case 'opus':
      return (t.channels ?? 1) > 1 ? 'sprop-stereo=1;stereo=1' : 'sprop-stereo=0';
    case 'H264': {
      const h = t.info.h264;
      if (h === undefined) return 'packetization-mode=1';
      const sets = [...h.sps, ...h.pps].map((b) => Buffer.from(b).toString('base64')).join(',');
      return `packetization-mode=1;profile-level-id=${h.profileLevelId};sprop-parameter-sets=${sets}`;
    }
    case 'MPEG4-GENERIC': {
      const a = t.info.aac;
      const config = a === undefined ? '' : Buffer.from(a.audioSpecificConfig).toString('hex');
      return `streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=${config}`;
    }
    default:
      return null;
  }
}

/** Static payload types of RFC 3551 where one applies, else null (use a dynamic one). */
export function staticPayloadType(encoding: Encoding, clockRate: number, channels: number): number | null {
  if (encoding === 'PCMU') return 0;
  if (encoding === 'PCMA') return 8;
  if (encoding === 'L16' && clockRate === 44100) return channels === 2 ? 10 : channels === 1 ? 11 : null;
  return null;
}

export function buildSdp(s: SdpSession): string {
  const ipVer = s.destination.family;
  const media: MediaDescription[] = s.tracks.map((t) => {
    const m: MediaDescription = {
      type: t.kind,
      port: t.port,
      protocol: 'RTP/AVP',
      payloads: String(t.payloadType),
      rtp: [rtpmap(t)],
      fmtp: [],
    };
    if (s.rtcpMux === true) m.rtcpMux = 'rtcp-mux';
    else m.rtcp = { port: t.port + 1 };
    const f = fmtp(t);
    if (f !== null) m.fmtp = [{ payload: t.payloadType, config: f }];
    return m;
  });
  const doc: SessionDescription = {
    version: 0,
    origin: {
      username: '-',
      sessionId: sessionNumber(s.id),
      sessionVersion: 1,
      netType: 'IN',
      ipVer,
      address: s.origin,
    },
    name: `offcast ${s.name}`,
    connection: { version: ipVer, ip: s.destination.address },
    timing: { start: 0, stop: 0 },
    media,
  };
  return sdpTransform.write(doc);
}

/** A numeric o= session id derived from the session's id. */
function sessionNumber(id: string): string {
  const hex = id.replace(/[^0-9a-f]/gi, '').slice(0, 12) || '1';
  return String(parseInt(hex, 16));
}
