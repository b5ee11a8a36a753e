/** The RTSP parser: messages split anywhere give the same result; limits and malformed input give their status. */
import t from 'tap';
import { RtspParser, RtspParseError, type RtspLimits } from '../../../offload/rtsp/parser.js';

type Item = { request: { method: string; uri: string; headers: Record<string, string>; body: string } } | { frame: { channel: number; data: string } };

function parse(chunks: Buffer[], limits?: RtspLimits): Item[] {
  const out: Item[] = [];
  const p = new RtspParser(
    {
      request: (r) => out.push({ request: { method: r.method, uri: r.uri, headers: Object.fromEntries(r.headers), body: r.body.toString('latin1') } }),
      frame: (channel, buf, off, len) => out.push({ frame: { channel, data: buf.toString('hex', off, off + len) } }),
    },
    limits,
  );
  for (const c of chunks) p.feed(c);
  return out;
}

const stream = Buffer.concat([
  Buffer.from('OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n'),
  Buffer.from([0x24, 1, 0, 3, 0xaa, 0xbb, 0xcc]),
  Buffer.from('\r\n'),
  Buffer.from('SET_PARAMETER rtsp://h/a RTSP/1.0\nCSeq: 2\nX-A: one\nx-a: two\nX-Fold: a\n  b\nContent-Length: 5\n\nhello'),
  Buffer.from([0x24, 0, 0, 0]),
]);
const expected: Item[] = [
  { request: { method: 'OPTIONS', uri: 'rtsp://h/a', headers: { cseq: '1' }, body: '' } },
  { frame: { channel: 1, data: 'aabbcc' } },
  { request: { method: 'SET_PARAMETER', uri: 'rtsp://h/a', headers: { cseq: '2', 'x-a': 'one, two', 'x-fold': 'a b', 'content-length': '5' }, body: 'hello' } },
  { frame: { channel: 0, data: '' } },
];

t.test('requests and frames, pipelined, in one segment', async (t) => {
  t.same(parse([stream]), expected);
});

t.test('the same stream split at every offset, and byte by byte', async (t) => {
  for (let at = 1; at < stream.length; at++) {
    const got = parse([stream.subarray(0, at), stream.subarray(at)]);
    if (JSON.stringify(got) !== JSON.stringify(expected)) t.fail(`split at ${at}: ${JSON.stringify(got)}`);
  }
  t.same(parse([...stream].map((b) => Buffer.from([b]))), expected);
  t.pass('every split gives the same messages');
});

t.test('a frame split across segments is gathered; one whole in a segment is a view of it', async (t) => {
  const frame = Buffer.concat([Buffer.from([0x24, 7, 0x01, 0x00]), Buffer.alloc(256, 0x5a)]);
  const views: boolean[] = [];
  const p = new RtspParser({ request: () => undefined, frame: (_c, buf) => views.push(buf === frame) });
  p.feed(frame);
  p.feed(frame.subarray(0, 100));
  p.feed(frame.subarray(100));
  t.same(views, [true, false]);
});

const small: RtspLimits = { requestLine: 64, head: 256, headerCount: 4, body: 16 };
const cases: [string, string, number][] = [
  ['a request line over the limit', `DESCRIBE rtsp://h/${'a'.repeat(80)} RTSP/1.0\r\n\r\n`, 400],
  ['a request line over the limit, not yet ended', `DESCRIBE rtsp://h/${'a'.repeat(80)}`, 400],
  ['headers over the limit', `OPTIONS * RTSP/1.0\r\n${'A: 0123456789012345678901234567890123456789\r\n'.repeat(8)}`, 400],
  ['too many headers', `OPTIONS * RTSP/1.0\r\n${'A: b\r\n'.repeat(5)}\r\n`, 400],
  ['a body over the limit', 'ANNOUNCE * RTSP/1.0\r\nContent-Length: 17\r\n\r\n', 413],
  ['a negative Content-Length', 'ANNOUNCE * RTSP/1.0\r\nContent-Length: -1\r\n\r\n', 400],
  ['two spaces in the request line', 'OPTIONS  * RTSP/1.0\r\n\r\n', 400],
  ['a control character in the URI', 'OPTIONS rtsp://h/\x01 RTSP/1.0\r\n\r\n', 400],
  ['a method that is no token', 'OPT(IONS * RTSP/1.0\r\n\r\n', 400],
  ['a header without a colon', 'OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n', 400],
  ['a continuation line first', 'OPTIONS * RTSP/1.0\r\n folded\r\n\r\n', 400],
  ['RTSP/2.0', 'OPTIONS * RTSP/2.0\r\n\r\n', 505],
  ['HTTP', 'GET / HTTP/1.1\r\n\r\n', 505],
  ['no version', 'OPTIONS * XYZ\r\n\r\n', 400],
];
t.test('malformed and oversized input: RtspParseError with the status; the parser is dead after it', async (t) => {
  for (const [what, text, status] of cases) {
    const p = new RtspParser({ request: () => undefined, frame: () => undefined }, small);
    let got: unknown = null;
    try {
      p.feed(Buffer.from(text));
    } catch (e) {
      got = e;
    }
    t.ok(got instanceof RtspParseError && got.status === status, `${what}: ${status} (${String(got)})`);
    let after: unknown = null;
    try {
      p.feed(Buffer.from('OPTIONS * RTSP/1.0\r\n\r\n'));
    } catch (e) {
      after = e;
    }
    t.ok(after instanceof RtspParseError, `${what}: then nothing more`);
  }
});
