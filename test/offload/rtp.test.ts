// The egress header writer must produce exactly what rtp.js serializes.
import t from 'tap';
import { packets } from 'rtp.js';
import { patchRtpHeader, writeRtpHeaderTemplate, ntpTime, ntpMiddle, RTP_HEADER_BYTES } from '../../offload/rtp.js';

function rtpJsHeader(pt: number, marker: boolean, seq: number, ts: number, ssrc: number): Buffer {
  const p = new packets.RtpPacket();
  p.setPayloadType(pt);
  p.setMarker(marker);
  p.setSequenceNumber(seq);
  p.setTimestamp(ts);
  p.setSsrc(ssrc);
  const ab = new ArrayBuffer(p.getByteLength());
  p.serialize(ab, 0);
  return Buffer.from(ab);
}

t.test('template + patch equals rtp.js serialization', async (t) => {
  const cases: [number, boolean, number, number, number][] = [
    [0, false, 0, 0, 0],
    [96, true, 65535, 0xffffffff, 0xffffffff],
    [127, false, 1, 1, 1],
    [8, true, 0x1234, 0x89abcdef, 0x01020304],
    [111, false, 40000, 3000000000, 2882400001],
  ];
  for (const [pt, marker, seq, ts, ssrc] of cases) {
    const buf = Buffer.alloc(RTP_HEADER_BYTES);
    writeRtpHeaderTemplate(buf, pt, ssrc);
    patchRtpHeader(buf, pt, marker, seq, ts);
    t.same(buf, rtpJsHeader(pt, marker, seq, ts, ssrc), `pt ${pt} m ${marker} seq ${seq} ts ${ts} ssrc ${ssrc}`);
  }
  // Patching again in place leaves no trace of the previous packet.
  const buf = Buffer.alloc(RTP_HEADER_BYTES);
  writeRtpHeaderTemplate(buf, 96, 42);
  patchRtpHeader(buf, 96, true, 1, 2);
  patchRtpHeader(buf, 96, false, 3, 4);
  t.same(buf, rtpJsHeader(96, false, 3, 4, 42), 'repatched header');
  // Seeded random sweep.
  let x = 12345;
  const rnd = (): number => (x = (x * 1103515245 + 12345) >>> 0);
  for (let i = 0; i < 2000; i++) {
    const pt = rnd() & 0x7f;
    const m = (rnd() & 1) === 1;
    const seq = rnd() & 0xffff;
    const ts = rnd();
    const ssrc = rnd();
    writeRtpHeaderTemplate(buf, pt, ssrc);
    patchRtpHeader(buf, pt, m, seq, ts);
    if (!buf.equals(rtpJsHeader(pt, m, seq, ts, ssrc))) {
      t.fail(`mismatch at ${pt} ${m} ${seq} ${ts} ${ssrc}`);
      return;
    }
  }
  t.pass('2000 random headers identical');
});

t.test('NTP time', async (t) => {
  const now = performance.now();
  const [sec, frac] = ntpTime(now);
  const unix = performance.timeOrigin + now;
  t.equal(sec, Math.floor(unix / 1000) + 2208988800, 'seconds since 1900');
  t.ok(Math.abs(frac / 2 ** 32 - (unix / 1000 - Math.floor(unix / 1000))) < 1e-6, 'fraction');
  t.equal(ntpMiddle(now), (((sec & 0xffff) << 16) | (frac >>> 16)) >>> 0, 'middle 32 bits');
});
