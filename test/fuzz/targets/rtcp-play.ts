/** Receiver reports on a play session's RTCP port (offload/rtcp.ts readReceptionReport). */
import { readReceptionReport } from '../../../offload/rtcp.js';
import type { Target } from '../lib.js';
import { rtcpCompound, rtcpSeeds } from './rtcp.js';

export const target: Target = {
  name: 'rtcp-play',
  seeds: rtcpSeeds,
  arbitrary: rtcpCompound,
  run(input) {
    const r = readReceptionReport(input, 0x11223344, 90000, 1_700_000_000_500);
    if (r !== null && !(r.fractionLost >= 0 && r.fractionLost < 1 && Number.isFinite(r.jitterMs))) throw new Error(`nonsense report ${JSON.stringify(r)}`);
    readReceptionReport(input, 0, 8000, 0);
    return 0;
  },
  // "anything that isn't well-formed RTCP returns null": never throws.
  expected: () => false,
};
