// Media the scenarios play, generated with ffmpeg into the run's temp folder.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { runBounded } from './proc.mjs';

/**
 * @typedef {object} BenchMedia
 * @property {string} opusName     Ogg Opus, 20 ms frames (50 packets/s), stereo 64 kbit/s, 30 s
 * @property {string} opusPath
 * @property {number} opusBytes
 * @property {string} videoName    H.264 (MP4) of noise: nearly every RTP packet is full
 * @property {string} videoPath
 * @property {number} videoBytes
 */

/**
 * Writes the media into `dir` (the server's media root) unless already there.
 * @param {string} dir
 * @returns {Promise<BenchMedia>}
 */
export async function makeMedia(dir) {
  const opusName = 'bench-tone.opus';
  const videoName = 'bench-noise.mp4';
  const opusPath = path.join(dir, opusName);
  const videoPath = path.join(dir, videoName);
  // A chord rather than silence: the encoder must spend its bitrate on every frame.
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=554:sample_rate=48000',
    '-filter_complex',
    '[0][1]amerge=inputs=2',
    '-t',
    '30',
    '-ac',
    '2',
    '-c:a',
    'libopus',
    '-b:a',
    '64k',
    '-vbr',
    'off',
    '-frame_duration',
    '20',
    opusPath,
  ]);
  // Random luma at near-lossless quality: ~24 Mbit/s, so frames span ~100 full packets each.
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    "nullsrc=s=320x240:r=25,geq=lum='random(1)*255':cb=128:cr=128",
    '-t',
    '4',
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-qp',
    '1',
    '-pix_fmt',
    'yuv420p',
    '-g',
    '25',
    '-movflags',
    '+faststart',
    videoPath,
  ]);
  return {
    opusName,
    opusPath,
    opusBytes: (await stat(opusPath)).size,
    videoName,
    videoPath,
    videoBytes: (await stat(videoPath)).size,
  };
}

/** @param {string[]} args */
async function ffmpeg(args) {
  const r = await runBounded('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed (code ${r.code}): ${r.stderr.slice(-1000)}`);
}
