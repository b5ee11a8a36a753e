/** Every fuzz target, by name; each module exports `target`. Loaded lazily: a run loads only its own. */
import type { Target } from '../lib.js';

export const TARGETS: Record<string, () => Promise<{ target: Target }>> = {
  rtp: () => import('./rtp.js'),
  'rtcp-play': () => import('./rtcp-play.js'),
  'rtcp-record': () => import('./rtcp-record.js'),
  sdp: () => import('./sdp.js'),
  wav: () => import('./wav.js'),
  ogg: () => import('./ogg.js'),
  mp4: () => import('./mp4.js'),
  annexb: () => import('./annexb.js'),
  sps: () => import('./sps.js'),
  adts: () => import('./adts.js'),
  'aac-config': () => import('./aac-config.js'),
  rtpdump: () => import('./rtpdump.js'),
  manifest: () => import('./manifest.js'),
  'h264-depacketizer': () => import('./h264-depacketizer.js'),
  'aac-depacketizer': () => import('./aac-depacketizer.js'),
  rtsp: () => import('./rtsp.js'),
};

export async function loadTarget(name: string): Promise<Target> {
  const load = TARGETS[name];
  if (load === undefined) throw new Error(`no fuzz target ${JSON.stringify(name)} (targets: ${Object.keys(TARGETS).join(', ')})`);
  return (await load()).target;
}
