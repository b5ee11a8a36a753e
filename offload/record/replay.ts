/**
 * Reading back a recording's rtpdump: RTP records in the order they were
 * written (already in sequence order), with the sequence gaps that the
 * recording saw, and the sender reports that came with them.
 */
import { openRtpdump, type RtpdumpFile } from '../../storage/rtpdump.js';
import { extendSeq } from './sequence.js';
import { RtpHeader, validateRtp } from './packet.js';
import { readSenderInfo } from '../rtcp.js';

export interface ReplayPacket {
  /** Arrival, ms since the start of the recording (rtpdump offset). */
  offsetMs: number;
  /** Unix ms of arrival. */
  unixMs: number;
  data: Uint8Array;
  payload: Uint8Array;
  ts: number;
  seq: number;
  marker: boolean;
  ssrc: number;
  /** Sequence numbers missing right before this packet. */
  lostBefore: number;
}

export interface ReplaySenderReport {
  unixMs: number;
  ssrc: number;
  ntpSec: number;
  ntpFrac: number;
  rtpTs: number;
}

export async function* replayRtpdump(file: RtpdumpFile, onReport?: (sr: ReplaySenderReport) => void): AsyncGenerator<ReplayPacket> {
  const startMs = file.header.start.sec * 1000 + file.header.start.usec / 1000;
  const hdr = new RtpHeader();
  let lastExt = -1;
  for await (const rec of file.records()) {
    const unixMs = startMs + rec.offsetMs;
    if (rec.rtcp) {
      if (onReport !== undefined) for (const sr of readSenderInfo(rec.data)) onReport({ unixMs, ...sr });
      continue;
    }
    if (validateRtp(rec.data, rec.data.length, hdr) !== 0) continue;
    const ext = lastExt < 0 ? hdr.seq : extendSeq(lastExt, hdr.seq);
    const lostBefore = lastExt < 0 ? 0 : Math.max(0, ext - lastExt - 1);
    if (lastExt >= 0 && ext <= lastExt) continue; // not after the previous one: not ours to reorder
    lastExt = ext;
    yield {
      offsetMs: rec.offsetMs,
      unixMs,
      data: rec.data,
      payload: rec.data.subarray(hdr.payloadOffset, hdr.payloadOffset + hdr.payloadLength),
      ts: hdr.ts,
      seq: hdr.seq,
      marker: hdr.marker,
      ssrc: hdr.ssrc,
      lostBefore,
    };
  }
}

export { openRtpdump };
