/** Media made in tests: WAV files written here, other formats made with ffmpeg. */
import { arpeggioWav } from '../../server/samples.js';

/** A PCM s16le WAV of a deterministic signal (not silence: every sample matters). */
export function makeWav(rate: number, channels: number, seconds: number): Buffer {
  return arpeggioWav(rate, channels, seconds);
}

/** The data chunk of a WAV written by makeWav (44-byte header). */
export function wavData(wav: Buffer): Buffer {
  return wav.subarray(44);
}
