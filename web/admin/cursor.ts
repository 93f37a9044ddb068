// Scan cursors in URLs, for the admin console's raw data pages. A cursor (the last row/column of a page)
// travels as base64url JSON; "previous" works from a trail of the cursors of the pages before, kept in
// the URL too and bounded in size (the oldest entries go first: "previous" then ends at the first page).
import { MAX_NAME_LENGTH, type Cursor } from '../../transport/messages.js';

/** Longest trail kept in a URL, in characters of its token. */
export const MAX_TRAIL_CHARS = 6000;
/** Longest token accepted (a cursor of two maximal names, in base64url of JSON with escapes). */
const MAX_TOKEN_CHARS = 4 * 6 * MAX_NAME_LENGTH * 2;

/** A page's starting point: null is the first page. */
export type Start = Cursor | null;

function encode(v: unknown): string {
  return Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
}

function decode(token: string): unknown {
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]*$/.test(token)) return undefined;
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isCursor(v: unknown): v is Cursor {
  return Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'string' && x.length <= MAX_NAME_LENGTH);
}

export function cursorToken(c: Cursor): string {
  return encode(c);
}

/** The cursor of a token; null for an empty token; undefined when it is not a valid one. */
export function parseCursor(token: string | undefined): Start | undefined {
  if (token === undefined || token === '') return null;
  const v = decode(token);
  return isCursor(v) ? v : undefined;
}

/** The starts of the pages before the current one, oldest first, as a token ('' when empty). */
export function trailToken(trail: Start[]): string {
  let kept = trail;
  let token = kept.length === 0 ? '' : encode(kept);
  while (token.length > MAX_TRAIL_CHARS && kept.length > 0) {
    kept = kept.slice(1);
    token = kept.length === 0 ? '' : encode(kept);
  }
  return token;
}

export function parseTrail(token: string | undefined): Start[] | undefined {
  if (token === undefined || token === '') return [];
  if (token.length > MAX_TRAIL_CHARS * 2) return undefined;
  const v = decode(token);
  if (!Array.isArray(v) || !v.every((x) => x === null || isCursor(x))) return undefined;
  return v as Start[];
}
