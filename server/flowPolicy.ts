/**
 * The record path's slow-path policy: what the control plane decides when a
 * record track's offload asks about a new flow (address, port, SSRC). It owns
 * the rules that need configuration or the session's request: the source
 * allow list, the sender the session named, and the negotiated payload type.
 *
 * The offload owns the rest and the control plane does not check it again:
 * the header's validity (`validateRtp` runs before a query is sent) and the
 * latch (a track's `FlowTable` refuses a second flow, at query time and at
 * install time).
 */

/** What the control plane knows when a record track's offload asks about a new flow. */
export interface FlowQuery {
  /** The recording's source policy (allow list) admits this address. */
  sourceAllowed: boolean;
  /** The sender the recording was set up for, if it named one. */
  expectedSource?: { host: string; port?: number };
  address: string;
  port: number;
  payloadType: number;
  negotiatedPayloadTypes: readonly number[];
}

export type FlowDecisionReason = 'ok' | 'source-not-allowed' | 'source-mismatch' | 'payload-type';

export interface FlowDecision {
  accept: boolean;
  reason: FlowDecisionReason;
}

/** '::ffff:10.0.0.1' and '10.0.0.1' are one sender (dual-stack sockets report the former). */
function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}

/**
 * The decision on a slow-path query, checks in this order: source policy,
 * expected sender (host, and port when given), negotiated payload type. The
 * expected host must be an address: resolve names before calling.
 */
export function decideFlow(query: FlowQuery): FlowDecision {
  if (!query.sourceAllowed) return { accept: false, reason: 'source-not-allowed' };
  const expected = query.expectedSource;
  if (expected !== undefined) {
    if (normalizeAddress(expected.host) !== normalizeAddress(query.address)) return { accept: false, reason: 'source-mismatch' };
    if (expected.port !== undefined && expected.port !== query.port) return { accept: false, reason: 'source-mismatch' };
  }
  if (!query.negotiatedPayloadTypes.includes(query.payloadType)) return { accept: false, reason: 'payload-type' };
  return { accept: true, reason: 'ok' };
}
