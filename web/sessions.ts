// Sessions live in the store, so any frontend serves any user and a frontend restart logs nobody out.
//   row `session:<sid>`, column `s`: JSON {user, admin, expires}   (written at login, deleted at logout)
// A session id is 128 random bits (base64url). A browser gets one on its first visit; it is only written
// to the store once someone logs in with it, and replaced by a fresh id at login (no session fixation).
// CSRF tokens are HMAC(cluster secret, sid): any frontend can check them without a store round trip.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StoreClient } from '../actors/session.js';
import { cputSure, deleteSure, putSure } from '../actors/store-writes.js';
import type { User } from './context.js';

export const SESSION_COOKIE = 'pc_sid';
const SID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}

export function isSessionId(s: string | undefined): s is string {
  return s !== undefined && SID_PATTERN.test(s);
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

export async function saveSession(store: StoreClient, sid: string, user: User, ttlMs: number): Promise<void> {
  const s: StoredSession = { user: user.name, admin: user.admin, expires: Date.now() + ttlMs };
  await putSure(store, row(sid), 's', JSON.stringify(s));
}

export async function deleteSession(store: StoreClient, sid: string): Promise<void> {
  await deleteSure(store, row(sid), 's');
}

export function csrfToken(secret: Buffer, sid: string): string {
  return createHmac('sha256', secret).update(`csrf:${sid}`).digest('base64url').slice(0, 32);
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
