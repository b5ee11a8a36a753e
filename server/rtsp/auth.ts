/**
 * RTSP authentication (RFC 2326 uses HTTP's): when `api.token` is set, a
 * request needs it as the password of Digest (RFC 2617, MD5, with or without
 * qop=auth) or Basic; the user name is not checked. Nonces are stateless: a
 * random part and its HMAC under a key of this process, so any nonce we issued
 * verifies (also after a long keep-alive) and no store grows with clients.
 * Every comparison is in constant time.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const REALM = 'offcast';

export class RtspAuth {
  private readonly token: string | undefined;
  private readonly key = randomBytes(32);

  constructor(token: string | undefined) {
    this.token = token;
  }

  get required(): boolean {
    return this.token !== undefined;
  }

  /** WWW-Authenticate values of a 401: Digest first (players prefer the first they know), then Basic. */
  challenges(): string[] {
    const rand = randomBytes(12).toString('hex');
    const nonce = rand + this.mac(rand);
    return [`Digest realm="${REALM}", nonce="${nonce}", algorithm=MD5`, `Basic realm="${REALM}"`];
  }

  /** Whether the request's Authorization header carries the token (always true without a token). */
  check(method: string, authorization: string | undefined): boolean {
    if (this.token === undefined) return true;
    if (authorization === undefined) return false;
    const space = authorization.indexOf(' ');
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
    const rest = space < 0 ? '' : authorization.slice(space + 1).trim();
    if (scheme === 'basic') return this.basic(rest);
    if (scheme === 'digest') return this.digest(method, rest);
    return false;
  }

  private basic(b64: string): boolean {
    const text = Buffer.from(b64, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon < 0) return false;
    return sameSecret(text.slice(colon + 1), this.token!);
  }

  private digest(method: string, params: string): boolean {
    const p = parseAuthParams(params);
    const { username, realm, nonce, uri, response } = p;
    if (username === undefined || realm === undefined || nonce === undefined || uri === undefined || response === undefined) return false;
    if (realm !== REALM || !this.validNonce(nonce)) return false;
    if (p.algorithm !== undefined && p.algorithm.toUpperCase() !== 'MD5') return false;
    const ha1 = md5(`${username}:${realm}:${this.token!}`);
    const ha2 = md5(`${method}:${uri}`);
    let want: string;
    if (p.qop === undefined) want = md5(`${ha1}:${nonce}:${ha2}`);
    else if (p.qop === 'auth' && p.nc !== undefined && p.cnonce !== undefined) want = md5(`${ha1}:${nonce}:${p.nc}:${p.cnonce}:auth:${ha2}`);
    else return false;
    return sameSecret(response.toLowerCase(), want);
  }

  private validNonce(nonce: string): boolean {
    if (!/^[0-9a-f]{24}[0-9a-f]{32}$/.test(nonce)) return false;
    return sameSecret(nonce.slice(24), this.mac(nonce.slice(0, 24)));
  }

  private mac(rand: string): string {
    return createHmac('sha256', this.key).update(rand).digest('hex').slice(0, 32);
  }
}

function md5(s: string): string {
  return createHash('md5').update(s).digest('hex');
}

/** Equal strings, compared in constant time (hashes make the lengths equal). */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** `k1="v1", k2=v2` (quoted strings may hold commas and escaped quotes). */
export function parseAuthParams(s: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    if (m[0] === '') break;
    out[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  }
  return out;
}
