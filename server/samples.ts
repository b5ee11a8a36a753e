/**
 * First start: an empty media library gets two generated WAV files, so a
 * newcomer can stream something within a minute without finding media:
 *   sample.wav     10 s arpeggio, 48 kHz stereo (plays as L16)
 *   sample-8k.wav  the same at 8 kHz mono (plays as PCMU/PCMA too)
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export async function ensureSampleMedia(root: string): Promise<string[]> {
  await mkdir(root, { recursive: true });
  const existing = (await readdir(root)).filter((n) => !n.startsWith('.'));
  if (existing.length > 0) return [];
  await writeFile(path.join(root, 'sample.wav'), arpeggioWav(48000, 2, 10));
  await writeFile(path.join(root, 'sample-8k.wav'), arpeggioWav(8000, 1, 10));
  return ['sample.wav', 'sample-8k.wav'];
}

/** A C-major arpeggio with soft envelopes, as a PCM s16le WAV file. */
export function arpeggioWav(rate: number, channels: number, seconds: number): Buffer {
  const frames = rate * seconds;
  const dataBytes = frames * channels * 2;
  const buf = Buffer.alloc(44 + dataBytes);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + dataBytes, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(channels, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * channels * 2, 28);
  buf.writeUInt16LE(channels * 2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(dataBytes, 40);
  const notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63];
  const noteLen = 0.25;
  for (let i = 0; i < frames; i++) {
    const t = i / rate;
    const n = Math.floor(t / noteLen);
    const f = notes[n % notes.length]!;
    const local = t - n * noteLen;
    const env = Math.min(1, local / 0.01) * Math.exp(-local * 6);
    const bass = 0.25 * Math.sin(2 * Math.PI * 130.81 * t) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 0.5 * t));
    const v = 0.45 * env * (Math.sin(2 * Math.PI * f * t) + 0.3 * Math.sin(4 * Math.PI * f * t)) + bass;
    const pan = channels === 2 ? 0.5 + 0.4 * Math.sin(2 * Math.PI * 0.2 * t) : 0.5;
    for (let c = 0; c < channels; c++) {
      const g = channels === 2 ? (c === 0 ? 1 - pan : pan) * 1.6 : 1;
      const s = Math.max(-1, Math.min(1, v * g));
      buf.writeInt16LE(Math.round(s * 26000), 44 + (i * channels + c) * 2);
    }
  }
  return buf;
}
