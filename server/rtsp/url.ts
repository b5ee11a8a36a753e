/**
 * Names in RTSP URLs: `rtsp://HOST:PORT/NAME` is a stream (media, a finished
 * recording, or a recording in progress: one namespace), and
 * `rtsp://HOST:PORT/NAME/trackID=N` one of its tracks (the `a=control` of the
 * DESCRIBE answer, relative to its Content-Base `rtsp://HOST:PORT/NAME/`).
 */

export interface RtspTarget {
  name: string;
  /** The track a control URL names, or null for the whole stream. */
  track: number | null;
}

/** Parses a request URI; null when it names no stream ('*', another scheme, no path). */
export function parseTarget(uri: string): RtspTarget | null {
  const p = parseStreamPath(uri);
  if (p === null) return null;
  if (p.rest === '') return { name: p.name, track: null };
  const m = /^trackID=([0-9]{1,3})$/.exec(p.rest);
  if (m === null) return null;
  return { name: p.name, track: Number(m[1]) };
}

/**
 * A request URI as a stream name and what follows it in the path (`rest`: ''
 * for the stream itself, else one more segment, e.g. a publisher's control
 * name such as `streamid=0`); null when it names no stream.
 */
export function parseStreamPath(uri: string): { name: string; rest: string } | null {
  let path: string;
  if (uri.startsWith('/')) path = uri;
  else {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return null;
    }
    if (url.protocol !== 'rtsp:' && url.protocol !== 'rtspu:') return null;
    path = url.pathname;
  }
  const q = path.search(/[?#]/);
  if (q >= 0) path = path.slice(0, q);
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.length > 2) return null;
  let name: string;
  try {
    name = decodeURIComponent(parts[0]!);
  } catch {
    return null;
  }
  return { name, rest: parts[1] ?? '' };
}

/** The Content-Base of a stream: the URL its tracks' control URLs are relative to. */
export function contentBase(host: string, port: number, name: string): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `rtsp://${h}:${port}/${encodeURIComponent(name)}/`;
}
