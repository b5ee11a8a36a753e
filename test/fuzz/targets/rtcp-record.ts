/** Sender reports and BYEs on a record session's RTCP port (offload/rtcp.ts). */
import { parseRtcp, readBye, readSenderInfo } from '../../../offload/rtcp.js';
import type { Target } from '../lib.js';
import { rtcpCompound, rtcpSeeds } from './rtcp.js';

export const target: Target = {
  name: 'rtcp-record',
  seeds: rtcpSeeds,
  arbitrary: rtcpCompound,
  run(input) {
    // As the record session does: parse once, read both; and from the raw bytes.
    const compound = parseRtcp(input);
    let n = 0;
    if (compound !== null) n += readSenderInfo(compound).length + readBye(compound).length;
    n += readSenderInfo(input).length + readBye(input).length;
    // Each SR is 28 bytes at least, each BYE SSRC 4: entries are bounded by the input.
    return n * 4;
  },
  // "peers' RTCP is input, not something to throw on": never throws.
  expected: () => false,
  outputRatio: 1,
};
