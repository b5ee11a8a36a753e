/** Bearer-token check, compared in constant time (hashes make lengths equal). */
import { createHash, timingSafeEqual } from 'node:crypto';

export function tokenMatches(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  const given = createHash('sha256')
    .update(m ? m[1]! : '')
    .digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}
