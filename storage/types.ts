/**
 * What storage tells the rest of offcast about a media file, and the unit it
 * streams: one codec frame (a Sample) at a time, in decode order.
 */

export type TrackKind = 'audio' | 'video';

/** RTP encodings offcast sends and records (SDP rtpmap encoding names). */
export type Encoding = 'L16' | 'PCMU' | 'PCMA' | 'opus' | 'H264' | 'MPEG4-GENERIC';

/**
 * One RTP track as negotiated: what a record session is asked to receive (JSON
 * or SDP), what the offload depacketizes and writes, what a recording's
 * manifest keeps, what an SDP describes. Declared once, here, the lowest layer
 * that needs it.
 */
export interface TrackSpec {
  kind: TrackKind;
  encoding: Encoding;
  payloadType: number;
  clockRate: number;
  channels?: number;
  /** fmtp parameters, names lower-cased (H.264 parameter sets stay base64 text). */
  fmtp: Record<string, string>;
}

/** What a record track counts (RFC 3550 A.1 tracking and the reorder buffer), live and in the final summary. */
export interface RecordCounts {
  packets: number;
  bytes: number;
  lost: number;
  duplicates: number;
  reordered: number;
  late: number;
}

/**
 * A recorded track's result: its files and counts. A record session answers
 * with these; the manifest keeps them with the track's spec (ManifestTrack).
 */
export interface RecordedTrack extends RecordCounts {
  index: number;
  kind: TrackKind;
  codec: Encoding;
  /** Playable file name in the folder (e.g. track0.h264). */
  file: string;
  rtpdump: string;
  contentType: string;
  /** Media time covered by the track's timestamps, ms. */
  durationMs: number;
  /** Set when the recording ends: false when no player can decode the file (H.264 without any SPS/PPS), with the reason. */
  playable?: boolean;
  unplayableReason?: string;
}

/** Source codecs the readers know. RTP encodings are chosen later (offload/codecs). */
export type SourceCodec =
  | 'pcm_s16le' // WAV PCM, little-endian
  | 'pcm_mulaw' // WAV format 7 (G.711 mu-law), as recordings write it
  | 'pcm_alaw' //  WAV format 6 (G.711 A-law)
  | 'opus'
  | 'h264'
  | 'aac';

export interface OpusParams {
  /** OpusHead fields (RFC 7845 5.1). */
  channels: number;
  preSkip: number;
  inputSampleRate: number;
  outputGain: number;
  channelMappingFamily: number;
}

export interface H264Params {
  /** Parameter sets without start codes. */
  sps: Uint8Array[];
  pps: Uint8Array[];
  /** profile_idc, constraint flags, level_idc as 6 hex digits (RFC 6184 profile-level-id). */
  profileLevelId: string;
  width: number;
  height: number;
  /** From SPS VUI timing when present, else undefined. */
  frameRate?: number;
}

export interface AacParams {
  /** AudioSpecificConfig bytes (ISO 14496-3), as in the SDP `config=` hex. */
  audioSpecificConfig: Uint8Array;
  objectType: number;
  sampleRate: number;
  channels: number;
}

export interface TrackInfo {
  /** Position of the track in the probe (and in the session: port + 2*index). */
  index: number;
  kind: TrackKind;
  /** Source codec; for an unsupported track the container's codec name (e.g. "hvc1"). */
  // eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents -- names the codecs offcast knows, for readers
  codec: SourceCodec | string;
  /** false for tracks listed in the probe that offcast cannot stream. */
  supported: boolean;
  /** Clock rate of `Sample.pts/dts/duration`: sample rate for audio, 90000 for video. */
  clockRate: number;
  channels?: number;
  durationMs: number;
  opus?: OpusParams;
  h264?: H264Params;
  aac?: AacParams;
}

export type MediaFormat = 'wav' | 'ogg' | 'h264' | 'mp4' | 'recording';

export interface Probe {
  format: MediaFormat;
  /** File size on disk (for a recording: the sum of its files). */
  bytes: number;
  durationMs: number;
  tracks: TrackInfo[];
}

/**
 * One codec frame. Timestamps are integers in the track's clockRate, relative to
 * the start of the media (the first sample of the earliest track is at 0 or later;
 * B-frame video may have pts > dts).
 */
export interface Sample {
  track: number;
  /**
   * Audio: the frame bytes (PCM: a whole number of interleaved frames, as stored
   * in the file; Opus: one Opus packet; AAC: one raw access unit without ADTS).
   * Video (H.264): unused (empty); see `nals`.
   */
  data: Uint8Array;
  /** H.264 only: the NAL units of one access unit, without start codes or lengths. */
  nals?: Uint8Array[];
  pts: number;
  dts: number;
  /** In clockRate units; for PCM the number of sample frames in `data`. */
  duration: number;
  /** Video: an IDR access unit. Audio: always true. */
  keyframe: boolean;
}

export interface SampleOptions {
  /** Only these tracks (by index); default all supported tracks. */
  tracks?: number[];
}

/** An opened media file. Streams with bounded memory. */
export interface MediaReader {
  readonly probe: Probe;
  /** Samples of the selected tracks, each track in decode order (tracks may interleave). */
  samples(opts?: SampleOptions): AsyncIterable<Sample>;
  close(): Promise<void>;
}
