/**
 * Errors storage raises for media it cannot use. They carry the HTTP status the
 * control plane answers with, so a route can pass them through unchanged.
 * Low-level parsers throw TypeError (not this format) and RangeError (inconsistent
 * lengths); readers turn those into these two.
 */

export class MediaError extends Error {
  readonly statusCode: number;
  readonly code: string;
  constructor(statusCode: number, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MediaError';
    this.statusCode = statusCode;
    this.code = code;
  }
}

/** 415: the file is readable but not a format or codec offcast streams. */
export class UnsupportedMediaError extends MediaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(415, 'OFFCAST_UNSUPPORTED_MEDIA', message, options);
    this.name = 'UnsupportedMediaError';
  }
}

/** 422: the file claims a supported format but is truncated or corrupt. */
export class CorruptMediaError extends MediaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(422, 'OFFCAST_CORRUPT_MEDIA', message, options);
    this.name = 'CorruptMediaError';
  }
}

/** Use after close (mediasoup's InvalidStateError, without a class of its own here). */
export function closedError(format: string): Error {
  const err = new Error(`${format} reader is closed`);
  err.name = 'InvalidStateError';
  return err;
}
