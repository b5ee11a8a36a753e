/**
 * A finished recording seen as media: its probe comes from the manifest (codec
 * parameters from the SDP's fmtp), so listing and describing recordings reads
 * no media bytes.
 */
import { parseAudioSpecificConfig } from '../aac.js';
import { h264ParamsFromParameterSets } from '../h264/sps.js';
import type { Encoding, Probe, SourceCodec, TrackInfo, TrackSpec } from '../types.js';
import { trackSpecOf, type Manifest } from './manifest.js';

/** SPS and PPS from an H.264 fmtp sprop-parameter-sets (base64, comma-separated). */
export function spropParameterSets(fmtp: Record<string, string>): { sps: Uint8Array[]; pps: Uint8Array[] } {
  const sps: Uint8Array[] = [];
  const pps: Uint8Array[] = [];
  for (const b64 of (fmtp['sprop-parameter-sets'] ?? '').split(',')) {
    if (b64.trim() === '') continue;
    const nal = new Uint8Array(Buffer.from(b64.trim(), 'base64'));
    if (nal.length === 0) continue;
    const type = nal[0]! & 0x1f;
    if (type === 7) sps.push(nal);
    else if (type === 8) pps.push(nal);
  }
  return { sps, pps };
}

const SOURCE: Record<Encoding, SourceCodec> = {
  H264: 'h264',
  opus: 'opus',
  PCMU: 'pcm_mulaw',
  PCMA: 'pcm_alaw',
  L16: 'pcm_s16le',
  'MPEG4-GENERIC': 'aac',
};

/** The track as storage describes media; `inband` supplies H.264 parameter sets when the SDP had none. */
export function recordingTrackInfo(t: TrackSpec, index: number, durationMs: number, inband?: { sps: Uint8Array[]; pps: Uint8Array[] }): TrackInfo {
  const info: TrackInfo = {
    index,
    kind: t.kind,
    codec: SOURCE[t.encoding],
    supported: true,
    clockRate: t.clockRate,
    durationMs,
  };
  if (t.kind === 'audio') info.channels = t.channels ?? 1;
  if (t.encoding === 'H264') {
    let sets = spropParameterSets(t.fmtp);
    if ((sets.sps.length === 0 || sets.pps.length === 0) && inband !== undefined) sets = inband;
    if (sets.sps.length > 0 && sets.pps.length > 0) {
      try {
        info.h264 = h264ParamsFromParameterSets(sets.sps, sets.pps);
      } catch {
        info.h264 = { sps: sets.sps, pps: sets.pps, profileLevelId: t.fmtp['profile-level-id'] ?? '42e01f', width: 0, height: 0 };
      }
    } else info.supported = false;
  }
  if (t.encoding === 'opus') {
    info.opus = { channels: t.channels ?? 1, preSkip: 0, inputSampleRate: 48000, outputGain: 0, channelMappingFamily: 0 };
  }
  if (t.encoding === 'MPEG4-GENERIC') {
    const asc = new Uint8Array(Buffer.from(t.fmtp.config ?? '', 'hex'));
    try {
      const c = parseAudioSpecificConfig(asc);
      info.aac = { audioSpecificConfig: asc, objectType: c.objectType, sampleRate: c.sampleRate, channels: c.channels };
      info.channels = c.channels;
    } catch {
      info.supported = false;
    }
  }
  return info;
}

export function recordingProbe(m: Manifest, bytes: number): Probe {
  const tracks = m.tracks.filter((t) => t.packets > 0).map((t, i) => recordingTrackInfo(trackSpecOf(t), i, t.durationMs));
  return { format: 'recording', bytes, durationMs: m.durationMs, tracks };
}
