// ffmpeg as the sender of record sessions for the audio codecs the H.264/Opus
// interop does not cover: AAC (mpeg4-generic), L16 and PCMU. Each session is
// made from ffmpeg's own SDP and ends on its BYE; the recording must count
// exactly what ffmpeg's final sender report says it sent, and hold it exactly.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { ffmpeg, hasFfmpeg, NO_FFMPEG, parseFrameMd5, startFfmpeg } from '../helpers/ffmpeg.js';
import { downloadTrack, senderReports, UdpTap } from '../helpers/record.js';
import { readRtpdumpRef } from '../helpers/rtpdump-ref.js';
import { waitUntil } from '../helpers/ready.js';
import { skipFile } from '../helpers/tools.js';
import type { ApiBody } from '../helpers/apiTypes.js';

if (!hasFfmpeg()) {
  skipFile(NO_FFMPEG);
} else {
  let server: TestServer;
  t.before(async () => {
    server = await startServer({ 'record.idleTimeoutMs': 10000 });
  });
  t.teardown(() => server.stop());

  /**
   * ffmpeg sends `src` encoded with `codec` (one audio output, real time, SR + BYE at the end): its SDP
   * (from a short dry run to a sink of ours) makes the session; returns the ended session's view, the
   * recording's folder and the RTP packets in its rtpdump.
   */
  async function record(
    name: string,
    src: string,
    codec: string[],
  ): Promise<{ view: ApiBody; dir: string; rtp: Buffer[]; sr: ReturnType<typeof senderReports> }> {
    const sink = await UdpTap.open(null, 1);
    const sdpFile = path.join(server.dir, `${name}.sdp`);
    try {
      await ffmpeg(['-i', src, '-t', '0.2', ...codec, '-f', 'rtp', `rtp://127.0.0.1:${sink.port}`, '-sdp_file', sdpFile], 20000);
    } finally {
      sink.close();
    }
    const sdp = await readFile(sdpFile, 'utf8');
    const res = await fetch(`${server.url}/v1/sessions?name=${name}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
    const s = (await res.json()) as ApiBody;
    if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(s)}`);
    const sender = startFfmpeg(['-re', '-i', src, ...codec, '-rtpflags', 'send_bye', '-f', 'rtp', `rtp://127.0.0.1:${s.tracks[0].port}`], 30000);
    const sent = await sender.done;
    if (sent.code !== 0) throw new Error(`ffmpeg sender: ${sent.stderr}`);
    let view!: ApiBody;
    await waitUntil(
      async () => {
        view = (await server.api('GET', `/v1/sessions/${s.id}`)).body;
        return view?.state === 'ended' && view.recording !== undefined;
      },
      15000,
      `${name} to end on ffmpeg's BYE`,
    );
    const dir = path.join(server.dir, 'recordings', name);
    const dump = readRtpdumpRef(await readFile(path.join(dir, view.recording.tracks[0].rtpdump)));
    const rtcp = dump.records.filter((r) => r.plen === 0);
    return {
      view,
      dir,
      rtp: dump.records.filter((r) => r.plen !== 0).map((r) => r.data),
      sr: rtcp.length === 0 ? [] : senderReports(rtcp[rtcp.length - 1]!.data),
    };
  }

  /** Concatenated RTP payloads (no CSRC, extension or padding in ffmpeg's packets: checked). */
  function payloads(rtp: Buffer[]): Buffer {
    for (const p of rtp) if ((p[0]! & 0x3f) !== 0 || p[0]! >> 6 !== 2) throw new Error('unexpected RTP header options');
    return Buffer.concat(rtp.map((p) => p.subarray(12)));
  }

  t.test('AAC (mpeg4-generic, AAC-hbr): every AU ffmpeg sent, byte for byte, in the ADTS file', async (t) => {
    const src = path.join(server.dir, 'src.m4a');
    await ffmpeg(['-f', 'lavfi', '-i', "aevalsrc='0.3*sin(2*PI*(300+200*t)*t)':s=48000", '-t', '3', '-c:a', 'aac', '-b:a', '128k', '-y', src]);
    const { view, rtp, sr } = await record('aac', src, ['-map', '0:a', '-c', 'copy']);
    t.match(view.tracks[0], { codec: 'MPEG4-GENERIC' });
    t.equal(view.reason, 'bye', 'ended by ffmpeg’s BYE');
    t.equal(sr.length, 1, 'ffmpeg’s final sender report is kept');
    t.match(view.recording.tracks[0], { packets: sr[0]?.packets, lost: 0 }, `${view.recording.tracks[0].packets} packets: as many as ffmpeg's report counts`);
    t.equal(
      rtp.reduce((n, p) => n + p.length - 12, 0),
      sr[0]?.octets,
      'payload octets equal the sender’s count',
    );
    // AUs sent: each packet's AU-headers-length (bits) / 16 (sizelength 13 + indexlength 3, RFC 3640 3.2.1).
    const sentAus = rtp.reduce((n, p) => n + p.readUInt16BE(12) / 16, 0);
    const file = path.join(server.dir, 'aac.aac');
    t.equal(await downloadTrack(server, 'aac', 0, file), 'audio/aac', 'served as ADTS');
    const got = parseFrameMd5((await ffmpeg(['-f', 'aac', '-i', file, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString());
    const adts = path.join(server.dir, 'src.adts');
    await ffmpeg(['-i', src, '-c:a', 'copy', '-f', 'adts', '-y', adts]);
    const want = parseFrameMd5((await ffmpeg(['-f', 'aac', '-i', adts, '-c:a', 'copy', '-f', 'framemd5', '-'])).toString());
    t.ok(sentAus > 100 && sentAus <= want.length, `ffmpeg sent ${sentAus} of the source's ${want.length} AUs`);
    t.equal(got.length, sentAus, 'the ADTS file holds every AU sent');
    t.same(
      got.map((f) => f.hash),
      want.slice(0, got.length).map((f) => f.hash),
      'each equal to the source’s (ADTS with ADTS), in order',
    );
  });

  t.test('L16 (44.1 kHz stereo, static payload type 10): the WAV holds every sample sent', async (t) => {
    const src = path.join(server.dir, 'src.wav');
    await ffmpeg([
      '-f',
      'lavfi',
      '-i',
      "aevalsrc='0.3*sin(2*PI*(300+200*t)*t)|0.2*sin(2*PI*(500+100*t)*t)':s=44100",
      '-t',
      '2',
      '-c:a',
      'pcm_s16le',
      '-y',
      src,
    ]);
    const { view, dir, rtp, sr } = await record('l16', src, ['-c:a', 'pcm_s16be']);
    t.match(view.tracks[0], { codec: 'L16', payloadType: 10, clockRate: 44100, channels: 2 });
    t.equal(view.reason, 'bye');
    t.match(view.recording.tracks[0], { packets: sr[0]?.packets, lost: 0 }, `${view.recording.tracks[0].packets} packets: as many as ffmpeg's report counts`);
    const sent = payloads(rtp);
    t.equal(sent.length, sr[0]?.octets, 'payload octets equal the sender’s count');
    const pcm = await ffmpeg(['-i', path.join(dir, view.recording.tracks[0].file), '-f', 's16be', '-']);
    t.equal(pcm.length, sent.length, `the WAV holds ${pcm.length / 4} frames, all that was sent`);
    t.ok(pcm.equals(sent), 'sample for sample');
    const source = await ffmpeg(['-i', src, '-f', 's16be', '-']);
    t.ok(sent.length >= source.length - 4 * 2048 && source.subarray(0, sent.length).equals(sent), 'which is the source’s PCM from its start');
  });

  t.test('PCMU (8 kHz): the WAV decodes to exactly what ffmpeg’s codes decode to', async (t) => {
    const src = path.join(server.dir, 'src8k.wav');
    await ffmpeg(['-f', 'lavfi', '-i', "aevalsrc='0.3*sin(2*PI*(300+200*t)*t)':s=8000", '-t', '2', '-c:a', 'pcm_s16le', '-y', src]);
    const { view, dir, rtp, sr } = await record('pcmu', src, ['-c:a', 'pcm_mulaw']);
    t.match(view.tracks[0], { codec: 'PCMU', payloadType: 0, clockRate: 8000 });
    t.equal(view.reason, 'bye');
    t.match(view.recording.tracks[0], { packets: sr[0]?.packets, lost: 0 }, `${view.recording.tracks[0].packets} packets: as many as ffmpeg's report counts`);
    const codes = payloads(rtp);
    t.equal(codes.length, sr[0]?.octets, 'payload octets equal the sender’s count');
    const codesFile = path.join(server.dir, 'sent.ulaw');
    await (await import('node:fs/promises')).writeFile(codesFile, codes);
    const want = await ffmpeg(['-f', 'mulaw', '-ar', '8000', '-ac', '1', '-i', codesFile, '-f', 's16le', '-']);
    const got = await ffmpeg(['-i', path.join(dir, view.recording.tracks[0].file), '-f', 's16le', '-']);
    t.equal(got.length, want.length, `${got.length / 2} samples, every code sent`);
    t.ok(got.equals(want), 'sample for sample');
  });
}
