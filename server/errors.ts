/**
 * HTTP errors of the control plane, each built once with a code and a status.
 * Responses are `{statusCode, code, message}`; a 5xx never carries internals.
 */

export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  constructor(statusCode: number, code: string, message: string) {
    super(message);
    this.name = 'HttpError';
    this.statusCode = statusCode;
    this.code = code;
  }
}

export const badRequest = (message: string): HttpError => new HttpError(400, 'OFFCAST_BAD_REQUEST', message);
export const unauthorized = (): HttpError => new HttpError(401, 'OFFCAST_UNAUTHORIZED', 'missing or wrong bearer token');
export const forbiddenDestination = (host: string): HttpError =>
  new HttpError(403, 'OFFCAST_DESTINATION_FORBIDDEN', `destination ${host} is outside destinations.allow`);
export const forbiddenSource = (host: string): HttpError => new HttpError(403, 'OFFCAST_SOURCE_FORBIDDEN', `source ${host} is outside sources.allow`);
export const crossOrigin = (origin: string): HttpError =>
  new HttpError(
    403,
    'OFFCAST_CROSS_ORIGIN',
    `requests from origin ${JSON.stringify(origin.slice(0, 200))} are refused: only this server's own origin may call the API`,
  );
export const mediaNotFound = (name: string): HttpError => new HttpError(404, 'OFFCAST_MEDIA_NOT_FOUND', `no media named ${JSON.stringify(name)}`);
export const sessionNotFound = (id: string): HttpError => new HttpError(404, 'OFFCAST_SESSION_NOT_FOUND', `no session ${JSON.stringify(id)}`);
export const recordingNotFound = (name: string): HttpError => new HttpError(404, 'OFFCAST_RECORDING_NOT_FOUND', `no recording named ${JSON.stringify(name)}`);
export const conflict = (message: string): HttpError => new HttpError(409, 'OFFCAST_CONFLICT', message);
export const tooLarge = (limit: number): HttpError => new HttpError(413, 'OFFCAST_UPLOAD_TOO_LARGE', `upload exceeds limits.uploadBytes (${limit} bytes)`);
export const unavailable = (code: string, message: string): HttpError => new HttpError(503, code, message);
export const invalidName = (what: string, name: string): HttpError =>
  new HttpError(
    400,
    'OFFCAST_INVALID_NAME',
    `invalid ${what} name ${JSON.stringify(name.slice(0, 200))}: use 1-128 characters A-Z a-z 0-9 . _ -, starting with a letter or digit`,
  );

/** The error body schema shared by every route's non-2xx responses. */
export const errorSchema = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    message: { type: 'string' },
  },
  required: ['statusCode', 'code', 'message'],
} as const;
