/** RTSP answers as the control plane builds them: a status, its reason phrase, headers, an optional body. */

export const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  453: 'Not Enough Bandwidth',
  454: 'Session Not Found',
  455: 'Method Not Valid in This State',
  457: 'Invalid Range',
  459: 'Aggregate Operation Not Allowed',
  461: 'Unsupported Transport',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  505: 'RTSP Version Not Supported',
};

export interface RtspReply {
  status: number;
  headers: [string, string][];
  body?: string;
  close?: boolean;
  /** An error's reason, written as a text/plain body when there is no other. */
  message?: string;
}

/** An RTSP error answer: thrown by method handlers, written by the service. */
export class RtspError extends Error {
  readonly status: number;
  readonly headers: [string, string][];
  constructor(status: number, message: string, headers: [string, string][] = []) {
    super(message);
    this.name = 'RtspError';
    this.status = status;
    this.headers = headers;
  }
}

export const reply = (status: number, headers: [string, string][] = [], body?: string): RtspReply =>
  body === undefined ? { status, headers } : { status, headers, body };
