/**
 * What a record session is asked to receive: tracks with codec, payload type,
 * clock rate and fmtp, from a JSON body or from the sender's SDP (whose ports
 * are ignored: offcast picks the local ports). Validation happens here, before
 * anything reaches the offload.
 */
import sdpTransform from 'sdp-transform';
import type { Encoding, TrackSpec } from '../storage/types.js';
import { adtsHeader, parseAudioSpecificConfig } from '../storage/aac.js';
import { badRequest, HttpError } from './errors.js';

/** Tracks one record session may have, from JSON or SDP (each takes two ports and two files). */
export const MAX_RECORD_TRACKS = 8;

export interface RecordRequest {
  name: string;
  tracks: TrackSpec[];
  source?: { host: string; port?: number };
}

export interface RecordJsonBody {
  mode: 'record';
  name: string;
  tracks: { kind: string; codec: string; payloadType: number; clockRate: number; channels?: number; fmtp?: string | Record<string, string | number> }[];
  source?: { host: string; port?: number };
}

const CODECS: Record<string, Encoding> = {
  h264: 'H264',
  opus: 'opus',
  pcmu: 'PCMU',
  pcma: 'PCMA',
  l16: 'L16',
  aac: 'MPEG4-GENERIC',
  'mpeg4-generic': 'MPEG4-GENERIC',
};

export function parseFmtp(fmtp: string | Record<string, string | number> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (fmtp === undefined) return out;
  if (typeof fmtp === 'string') {
    for (const part of fmtp.split(';')) {
      const s = part.trim();
      if (s === '') continue;
      const eq = s.indexOf('=');
      if (eq === -1) out[s.toLowerCase()] = '';
      else out[s.slice(0, eq).trim().toLowerCase()] = s.slice(eq + 1).trim();
    }
  } else {
    for (const [k, v] of Object.entries(fmtp)) out[k.toLowerCase()] = String(v);
  }
  return out;
}

/** Checks one track; returns it normalized or throws 400/415 naming the problem. */
export function checkTrack(
  t: { kind: string; codec: string; payloadType: number; clockRate: number; channels?: number; fmtp?: string | Record<string, string | number> },
  i: number,
): TrackSpec {
  const encoding = CODECS[t.codec.toLowerCase()];
  if (encoding === undefined) {
    throw new HttpError(
      415,
      'OFFCAST_UNSUPPORTED_CODEC',
      `track ${i}: codec ${JSON.stringify(t.codec)} cannot be recorded (H264, opus, PCMU, PCMA, L16, AAC/mpeg4-generic can)`,
    );
  }
  const kind = encoding === 'H264' ? 'video' : 'audio';
  if (t.kind !== kind) throw badRequest(`track ${i}: ${encoding} is ${kind}, not ${t.kind}`);
  if (!Number.isInteger(t.payloadType) || t.payloadType < 0 || t.payloadType > 127) throw badRequest(`track ${i}: payloadType must be 0-127`);
  if (t.payloadType >= 72 && t.payloadType <= 76) throw badRequest(`track ${i}: payload types 72-76 collide with RTCP (RFC 5761)`);
  const fmtp = parseFmtp(t.fmtp);
  const channels = t.channels ?? 1;
  const want = (rate: number): void => {
    if (t.clockRate !== rate) throw badRequest(`track ${i}: ${encoding} has a ${rate} Hz clock, not ${t.clockRate}`);
  };
  switch (encoding) {
    case 'H264':
      want(90000);
      if (fmtp['packetization-mode'] !== undefined && !['0', '1'].includes(fmtp['packetization-mode'])) {
        throw new HttpError(
          415,
          'OFFCAST_UNSUPPORTED_CODEC',
          `track ${i}: H.264 packetization-mode ${fmtp['packetization-mode']} is not supported (0 and 1 are)`,
        );
      }
      break;
    case 'opus':
      want(48000);
      break;
    case 'PCMU':
    case 'PCMA':
      want(8000);
      if (channels !== 1) throw badRequest(`track ${i}: ${encoding} is mono`);
      break;
    case 'L16':
      if (t.clockRate < 8000 || t.clockRate > 48000) throw badRequest(`track ${i}: L16 clock rate must be 8000-48000`);
      if (channels !== 1 && channels !== 2) throw badRequest(`track ${i}: L16 must be mono or stereo`);
      break;
    case 'MPEG4-GENERIC':
      if ((fmtp.mode ?? '').toLowerCase() !== 'aac-hbr')
        throw new HttpError(415, 'OFFCAST_UNSUPPORTED_CODEC', `track ${i}: mpeg4-generic needs fmtp mode=AAC-hbr`);
      if (!/^(?:[0-9a-f]{2}){2,}$/i.test(fmtp.config ?? '')) throw badRequest(`track ${i}: mpeg4-generic needs fmtp config=<AudioSpecificConfig hex>`);
      checkAudioSpecificConfig(fmtp.config!, i);
      // AAC-hbr fixes the AU-header layout (RFC 3640 3.3.6): 13-bit sizes, 3-bit indexes.
      for (const [key, want] of [
        ['sizelength', '13'],
        ['indexlength', '3'],
        ['indexdeltalength', '3'],
      ] as const) {
        if (fmtp[key] !== undefined && fmtp[key] !== want)
          throw new HttpError(415, 'OFFCAST_UNSUPPORTED_CODEC', `track ${i}: AAC ${key} must be ${want} (AAC-hbr), not ${fmtp[key]}`);
      }
      if (t.clockRate < 7350 || t.clockRate > 96000) throw badRequest(`track ${i}: AAC clock rate out of range`);
      break;
  }
  const out: TrackSpec = { kind, encoding, payloadType: t.payloadType, clockRate: t.clockRate, fmtp };
  if (kind === 'audio') out.channels = encoding === 'opus' ? (fmtp['sprop-stereo'] === '1' || channels === 2 ? 2 : 1) : channels;
  return out;
}

/**
 * The AAC config must be one the recorder can write as ADTS: the same checks
 * the ADTS writer makes, here, so a bad fmtp is the client's 400/415 and not
 * the offload's 500.
 */
function checkAudioSpecificConfig(hex: string, i: number): void {
  let config;
  try {
    config = parseAudioSpecificConfig(new Uint8Array(Buffer.from(hex, 'hex')));
  } catch (err) {
    throw badRequest(`track ${i}: fmtp config ${hex} is not an AudioSpecificConfig (${(err as Error).message})`);
  }
  try {
    adtsHeader(config, 0);
  } catch (err) {
    throw new HttpError(415, 'OFFCAST_UNSUPPORTED_CODEC', `track ${i}: AAC config ${hex} cannot be recorded as ADTS (${(err as Error).message})`);
  }
}

export function fromJson(body: RecordJsonBody): RecordRequest {
  if (body.tracks.length === 0) throw badRequest('a record session needs at least one track');
  const req: RecordRequest = { name: body.name, tracks: body.tracks.map((t, i) => checkTrack(t, i)) };
  if (body.source !== undefined) req.source = body.source;
  return req;
}

/** The sender's SDP (e.g. ffmpeg's -sdp_file): codecs, payload types and fmtp per m= line; ports ignored. */
export function fromSdp(name: string, text: string): RecordRequest {
  let doc: ReturnType<typeof sdpTransform.parse>;
  try {
    doc = sdpTransform.parse(text);
  } catch (err) {
    throw badRequest(`the SDP does not parse: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc.media) || doc.media.length === 0) throw badRequest('the SDP has no m= lines');
  if (doc.media.length > MAX_RECORD_TRACKS) throw badRequest(`the SDP has ${doc.media.length} m= lines; a record session takes at most ${MAX_RECORD_TRACKS}`);
  const tracks: TrackSpec[] = [];
  doc.media.forEach((m, i) => {
    if (m.type !== 'audio' && m.type !== 'video') throw badRequest(`m= line ${i}: media type ${m.type} cannot be recorded`);
    // sdp-transform turns numeric fields into numbers ("m=audio 5004 RTP/AVP 0" gives payloads 0), whatever its types say.
    const pts = String(m.payloads ?? '')
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
    if (pts.length === 0) throw badRequest(`m= line ${i} lists no payload type`);
    if (new Set(pts).size !== pts.length) throw badRequest(`m= line ${i} lists a payload type twice`);
    const pt = pts[0]!;
    if (!Number.isInteger(pt) || pt < 0 || pt > 127) throw badRequest(`m= line ${i}: payload type ${String(pt)} is not 0-127`);
    if ((m.rtp ?? []).filter((r) => r.payload === pt).length > 1) throw badRequest(`m= line ${i}: payload type ${pt} has two rtpmap lines`);
    const map = (m.rtp ?? []).find((r) => r.payload === pt);
    const fmtp = (m.fmtp ?? []).find((f) => f.payload === pt)?.config;
    let codec: string;
    let clockRate: number;
    let channels: number | undefined;
    if (map !== undefined) {
      // sdp-transform turns numeric-looking fields into numbers ("a=rtpmap:97 2" gives codec 2).
      codec = String(map.codec);
      clockRate = map.rate ?? 0;
      if (map.encoding !== undefined) channels = Number(map.encoding);
    } else if (pt === 0 || pt === 8) {
      // Static payload types need no rtpmap (RFC 3551).
      codec = pt === 0 ? 'PCMU' : 'PCMA';
      clockRate = 8000;
    } else if (pt === 10 || pt === 11) {
      codec = 'L16';
      clockRate = 44100;
      channels = pt === 10 ? 2 : 1;
    } else {
      throw badRequest(`m= line ${i}: payload type ${pt} has no rtpmap`);
    }
    const spec: { kind: string; codec: string; payloadType: number; clockRate: number; channels?: number; fmtp?: string } = {
      kind: m.type,
      codec,
      payloadType: pt,
      clockRate,
    };
    if (channels !== undefined) spec.channels = codec.toLowerCase() === 'opus' ? 1 : channels;
    if (fmtp !== undefined) spec.fmtp = String(fmtp);
    tracks.push(checkTrack(spec, i));
  });
  const req: RecordRequest = { name, tracks };
  // The SDP's c= address is not used: it is the sender's idea of where to send; sources are policed by sources.allow.
  return req;
}
