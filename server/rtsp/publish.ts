/**
 * Publishing over RTSP (ANNOUNCE + RECORD, RFC 2326 10.3 and 10.11): a client
 * that sends an SDP and then media creates a record session named by the URL.
 *
 * Not served yet: both methods answer 501 Not Implemented. This is the place
 * for them (the handlers below), over the same listener, connections,
 * interleaved channels and RTSP sessions as reading (`reader.ts`).
 */
import type { MethodHandler } from './service.js';

/** Methods of this file, for OPTIONS' Public header (empty until they are served). */
export const PUBLISH_METHODS: readonly string[] = [];

export function publishMethods(): [string, MethodHandler][] {
  const notYet: MethodHandler = () => ({ status: 501, headers: [] });
  return [
    ['ANNOUNCE', notYet],
    ['RECORD', notYet],
  ];
}
