/**
 * Opens MP4s and reads them through, in a child process with a heap cap (see
 * mp4-hostile.test.ts): sends 'ready' once loaded, then for each path it is sent,
 * what the probe said or the error it answered.
 */
import { openMp4 } from '../../storage/mp4.js';

async function probe(path: string): Promise<unknown> {
  try {
    const reader = await openMp4(path);
    let samples = 0;
    try {
      for await (const s of reader.samples()) if (s.data.length > 0 || s.nals !== undefined) samples++;
    } finally {
      await reader.close();
    }
    return { probe: reader.probe, samples };
  } catch (err) {
    return { error: (err as Error).constructor.name, message: (err as Error).message };
  }
}

process.on('message', (path: string) => {
  void probe(path).then((out) => process.send!(out));
});
process.send!({ ready: true });
