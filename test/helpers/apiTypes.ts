/**
 * What the tests read from the API's JSON answers. A loose view: ApiBody has every
 * field of every answer the tests look at (a session, a list, a recording, stats,
 * an error), so a test reads what its endpoint answers without a cast; a test that
 * reads a field its endpoint does not send gets undefined and fails its assertion.
 * Based on the server's own view types (server/sessions.ts, server/recordSessions.ts,
 * offload/channel.ts) and server/routes/schemas.ts.
 */
import type { ReceiverReportStats, RecordingSummary, RecordTrackStats, TrackStats } from '../../offload/channel.js';
import type { RecordSessionView } from '../../server/recordSessions.js';
import type { PlaySessionView, SessionTrack } from '../../server/sessions.js';

/** One track, as a play or record session, its stats or a recording lists it. */
export type ApiTrack = SessionTrack &
  RecordSessionView['tracks'][number] &
  TrackStats &
  RecordTrackStats & {
    codec: string;
    stats: ApiTrackStats;
    [field: string]: unknown;
  };

/** A track's stats as a session view shows them (play: server/sessions.ts render; record: RecordTrackStats). */
export type ApiTrackStats = Omit<TrackStats, 'rr' | 'lateness'> &
  RecordTrackStats & {
    senderReports: number;
    receiverReports: number;
    /** null until a receiver report arrives (the loose view lets a test read it after checking). */
    rtcp: Omit<ReceiverReportStats, 'receivedAt'>;
    lateness: NonNullable<TrackStats['lateness']>;
  };

/** A play or record session view, or the stats of one. */
export type ApiSession = Omit<PlaySessionView, 'state' | 'tracks' | 'media'> &
  Omit<RecordSessionView, 'state' | 'tracks' | 'mode' | 'recording'> & {
    mode: 'play' | 'record';
    state: string;
    media: string;
    tracks: ApiTrack[];
    loops: number;
    recording: RecordingSummary;
  };

/** One media file as GET /v1/media lists it. */
export interface ApiMedia {
  name: string;
  bytes: number;
  modified: string;
  [field: string]: unknown;
}

/** Any answer of the API the tests read. */
export type ApiBody = ApiSession &
  ApiMedia & {
    sessions: ApiSession[];
    media: ApiMedia[];
    recordings: ApiSession[];
    error: string;
    message: string;
    [field: string]: unknown;
  };

/** One body of /openapi.json, as test/server/docs.test.ts reads it. */
export interface ApiDocContent {
  example: string;
  examples: Record<string, { value: { mode: string } }>;
  schema: { required: string[] };
}

/** One operation of /openapi.json. */
export interface ApiDocOperation {
  summary: string;
  security: Record<string, string[]>[];
  requestBody: { content: Record<string, ApiDocContent> };
  responses: Record<string, { content: Record<string, ApiDocContent> }>;
}

/** /openapi.json, the parts the tests read. */
export interface ApiDoc {
  openapi: string;
  paths: Record<string, Record<string, ApiDocOperation>>;
  components: { securitySchemes: Record<string, unknown> };
  [field: string]: unknown;
}
