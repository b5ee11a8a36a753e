/**
 * The Transport header (RFC 2326 12.39): the client lists what it accepts,
 * most preferred first; the first we can serve wins. Served: unicast
 * RTP/AVP over UDP with client_port, and RTP/AVP/TCP with interleaved
 * channels. Anything else (multicast, RTP/SAVP, raw UDP) is skipped; if
 * nothing is left, the answer is 461 Unsupported Transport.
 */

export type TransportSpec =
  { kind: 'udp'; rtpPort: number; rtcpPort: number; mode: 'play' | 'record' } | { kind: 'tcp'; channel: number; mode: 'play' | 'record' };

export function chooseTransport(header: string): TransportSpec | null {
  for (const alt of header.split(',')) {
    const t = parseOne(alt.trim());
    if (t !== null) return t;
  }
  return null;
}

function parseOne(spec: string): TransportSpec | null {
  const [proto, ...params] = spec.split(';').map((p) => p.trim());
  const profile = proto?.toUpperCase();
  let lower: 'udp' | 'tcp';
  if (profile === 'RTP/AVP' || profile === 'RTP/AVP/UDP') lower = 'udp';
  else if (profile === 'RTP/AVP/TCP') lower = 'tcp';
  else return null;
  let clientPort: [number, number] | null = null;
  let interleaved: [number, number] | null = null;
  let mode: 'play' | 'record' = 'play';
  for (const p of params) {
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? '' : p.slice(eq + 1).trim();
    if (key === 'multicast') return null;
    if (key === 'client_port') clientPort = range(value, 1, 65535);
    else if (key === 'interleaved') interleaved = range(value, 0, 255);
    else if (key === 'mode') {
      const m = value.replace(/"/g, '').toLowerCase();
      if (m === 'record' || m === 'receive') mode = 'record';
      else if (m !== 'play') return null;
    }
  }
  if (lower === 'udp') {
    if (clientPort === null) return null;
    // RTCP on the next port, the only layout our sockets accept reports from.
    if (clientPort[1] !== clientPort[0] + 1 || clientPort[1] > 65535) return null;
    return { kind: 'udp', rtpPort: clientPort[0], rtcpPort: clientPort[1], mode };
  }
  // Without a channel the server picks one (RFC 2326 12.39): the caller assigns it.
  if (interleaved === null) return { kind: 'tcp', channel: -1, mode };
  if (interleaved[1] !== interleaved[0] + 1 || interleaved[1] > 255) return null;
  return { kind: 'tcp', channel: interleaved[0], mode };
}

/** `a-b` or `a` (then b = a + 1), both within [min, max]. */
function range(v: string, min: number, max: number): [number, number] | null {
  const m = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(v);
  if (m === null) return null;
  const a = Number(m[1]);
  const b = m[2] === undefined ? a + 1 : Number(m[2]);
  if (a < min || a > max || b < min || b > max + 1) return null;
  return [a, b];
}
