// Sessions live in the store, so any frontend serves any user and a frontend restart logs nobody out.
//   row `session:<sid>`, column `s`: JSON {user, admin, expires}   (written at login, deleted at logout)
//   row `sessions:<user>`, one column `<expires ms, 15 digits>.<sid>` per session of that user (empty
//       value): the index that lets a login end the user's expired sessions (the sweep) and a password
//       change end all the others. Written before the session itself, removed after it.
// A session id is 128 random bits (base64url). A browser gets one on its first visit; it is only written
// to the store once someone logs in with it, and replaced by a fresh id at login (no session fixation).
// CSRF tokens are HMAC(cluster secret, sid): any frontend can check them without a store round trip.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StoreClient } from '../actors/session.js';
import { cputSure, deleteSure, eachLimited, putSure } from '../actors/store-writes.js';
import type { User } from './context.js';

export const SESSION_COOKIE = 'pc_sid';
const SID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}

export function isSessionId(s: string | undefined): s is string {
  return s !== undefined && SID_PATTERN.test(s);
}

/**
 * The session id in a Cookie header (the first `pc_sid`), or undefined. Ids are base64url, so no
 * decoding: anything else fails isSessionId and the browser gets a fresh id.
 */
export function sessionIdFromCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === SESSION_COOKIE) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

interface StoredSession {
  user: string;
  admin: boolean;
  expires: number; // ms since the epoch
}

const row = (sid: string): string => `session:${sid}`;

export async function loadSession(store: StoreClient, sid: string, now = Date.now()): Promise<User | null> {
  const raw = await store.get(row(sid), 's');
  if (raw === null) return null;
  let s: StoredSession;
  try {
    s = JSON.parse(Buffer.from(raw).toString('utf8')) as StoredSession;
  } catch {
    return null;
  }
  if (typeof s.user !== 'string' || typeof s.expires !== 'number') return null;
  if (s.expires <= now) {
    // An expired session found on use is removed (in the background: the page does not wait for it).
    store.delete(row(sid), 's').catch(() => {});
    return null;
  }
  return { name: s.user, admin: s.admin === true };
}

const indexRow = (user: string): string => `sessions:${user}`;
const indexCol = (expires: number, sid: string): string => `${String(Math.max(0, Math.floor(expires))).padStart(15, '0')}.${sid}`;
/** Live sessions one account may hold; a login beyond this ends the oldest. */
export const MAX_SESSIONS_PER_USER = 50;
/** Expired sessions one login removes at most. */
const MAX_SWEEP = 100;

export async function saveSession(store: StoreClient, sid: string, user: User, ttlMs: number, now = Date.now()): Promise<void> {
  const s: StoredSession = { user: user.name, admin: user.admin, expires: now + ttlMs };
  // The index first: a session it does not list could never be swept.
  await putSure(store, indexRow(user.name), indexCol(s.expires, sid), '');
  await putSure(store, row(sid), 's', JSON.stringify(s));
  // Housekeeping: the login stands even if the sweep fails (a later login sweeps again).
  await endSessions(store, user.name, { keep: sid, now }).catch(() => 0);
}

/**
 * Ends sessions of `user` listed in its index: the expired ones and the oldest beyond
 * MAX_SESSIONS_PER_USER, or with `all` every one but `keep`. Returns how many live ones it ended.
 */
export async function endSessions(store: StoreClient, user: string, o: { keep?: string; all?: boolean; now?: number } = {}): Promise<number> {
  const now = o.now ?? Date.now();
  const entries = (await store.cols(indexRow(user)))
    .map((col) => ({ col, expires: Number(col.slice(0, 15)), sid: col.slice(16) }))
    .filter((e) => e.col[15] === '.' && Number.isSafeInteger(e.expires) && isSessionId(e.sid))
    .sort((a, b) => a.expires - b.expires);
  const live = entries.filter((e) => e.expires > now && e.sid !== o.keep);
  const endLive = o.all ? live : live.slice(0, Math.max(0, live.length - (MAX_SESSIONS_PER_USER - 1)));
  // Bounded work per request: at most MAX_SWEEP expired entries now, the rest at a later login.
  const end = [...entries.filter((e) => e.expires <= now).slice(0, MAX_SWEEP), ...endLive];
  await eachLimited(end, 8, async (e) => {
    await deleteSure(store, row(e.sid), 's');
    await deleteSure(store, indexRow(user), e.col);
  });
  return endLive.length;
}

export async function deleteSession(store: StoreClient, sid: string): Promise<void> {
  const raw = await store.get(row(sid), 's');
  await deleteSure(store, row(sid), 's');
  if (raw === null) return;
  try {
    const s = JSON.parse(Buffer.from(raw).toString('utf8')) as StoredSession;
    if (typeof s.user === 'string' && typeof s.expires === 'number') await deleteSure(store, indexRow(s.user), indexCol(s.expires, sid));
  } catch {
    // an unreadable session has no index entry we could name; the row itself is gone
  }
}

/** CSRF tokens already computed, by secret and session id (an HMAC per page was ~3 % of a frontend's CPU). */
const tokenCache = new WeakMap<Buffer, Map<string, string>>();
/** Bound on one secret's cached tokens: the map is cleared when it is reached. */
const MAX_CACHED_TOKENS = 10_000;

export function csrfToken(secret: Buffer, sid: string): string {
  let tokens = tokenCache.get(secret);
  if (tokens === undefined) tokenCache.set(secret, (tokens = new Map()));
  let t = tokens.get(sid);
  if (t === undefined) {
    if (tokens.size >= MAX_CACHED_TOKENS) tokens.clear();
    t = createHmac('sha256', secret).update(`csrf:${sid}`).digest('base64url').slice(0, 32);
    tokens.set(sid, t);
  }
  return t;
}

export function csrfValid(secret: Buffer, sid: string, token: string | undefined): boolean {
  if (typeof token !== 'string' || token.length !== 32) return false;
  const want = Buffer.from(csrfToken(secret, sid));
  const got = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The cluster-wide secret: created once by whichever frontend comes first (CPUT), then read by all. */
export async function clusterSecret(store: StoreClient): Promise<Buffer> {
  const fresh = randomBytes(32);
  if (await cputSure(store, 'cluster', 'web_secret', null, fresh)) return fresh;
  const v = await store.get('cluster', 'web_secret');
  if (v === null || v.length !== 32) throw new Error('cluster web_secret is missing or corrupt');
  return Buffer.from(v);
}
