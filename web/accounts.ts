// Accounts in the store.
//   row `user:<name>`, column `account`: JSON {name, hash, created}     (created with CPUT: names are unique)
//   row `user:<name>`, column `login_failures`: JSON {count, since}      (rate limit on failed logins)
//   row `cluster`, column `first_user`: the first account signed up     (the admin when web.admins is empty)
// Passwords are kept only as salted scrypt hashes: `scrypt$N$r$p$<salt b64>$<hash b64>`.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { StoreClient } from '../actors/session.js';
import { cputSure, deleteSure, updateJson } from '../actors/store-writes.js';
import type { Topology } from '../transport/topology.js';
import type { User } from './context.js';

const scrypt = (pw: string, salt: Buffer, len: number, opts: ScryptOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => scryptCb(pw, salt, len, opts, (e, key) => (e ? reject(e) : resolve(key))));

const SCRYPT = { N: 16384, r: 8, p: 1 };
const KEY_LEN = 32;

/** Usernames are also mailbox names (`name@domain`): lowercase, 3-32 characters. */
export const USERNAME_RULES = '3 to 32 characters: lowercase letters, digits, dot, dash or underscore, starting with a letter';
const USERNAME = /^[a-z][a-z0-9._-]{2,31}$/;
const RESERVED = new Set(['admin-console', 'postmaster', 'mailer-daemon', 'root', 'abuse', 'noreply']);
export const PASSWORD_RULES = '8 to 256 characters';

export function usernameProblem(name: string): string | null {
  if (!USERNAME.test(name) || name.includes('..') || name.endsWith('.')) return `A username has ${USERNAME_RULES} (no '..', not ending in '.').`;
  if (RESERVED.has(name)) return `'${name}' is reserved; pick another name.`;
  return null;
}

export function passwordProblem(pw: string): string | null {
  if (pw.length < 8 || pw.length > 256) return `A password has ${PASSWORD_RULES}.`;
  return null;
}

export async function hashPassword(pw: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(pw, salt, KEY_LEN, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(pw: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  const got = await scrypt(pw, salt, want.length, { N, r, p, maxmem: 256 * N * r + (1 << 20) });
  return timingSafeEqual(got, want);
}

interface Account {
  name: string;
  hash: string;
  created: number;
}

const userRow = (name: string): string => `user:${name}`;

async function readAccount(store: StoreClient, name: string): Promise<{ raw: Uint8Array; account: Account } | null> {
  const raw = await store.get(userRow(name), 'account');
  if (raw === null) return null;
  return { raw, account: JSON.parse(Buffer.from(raw).toString('utf8')) as Account };
}

export async function accountExists(store: StoreClient, name: string): Promise<boolean> {
  return (await store.get(userRow(name), 'account')) !== null;
}

export type SignUpResult = { ok: true; user: User } | { ok: false; problem: string };

export async function signUp(store: StoreClient, topo: Topology, name: string, pw: string): Promise<SignUpResult> {
  const problem = usernameProblem(name) ?? passwordProblem(pw);
  if (problem) return { ok: false, problem };
  const account: Account = { name, hash: await hashPassword(pw), created: Date.now() };
  // Atomic: of two sign-ups racing for one name (on any frontends), exactly one CPUT wins.
  if (!(await cputSure(store, userRow(name), 'account', null, JSON.stringify(account)))) {
    return { ok: false, problem: `The name '${name}' is taken; pick another.` };
  }
  if (topo.web.admins.length === 0) await cputSure(store, 'cluster', 'first_user', null, name);
  return { ok: true, user: { name, admin: await isAdmin(store, topo, name) } };
}

export async function isAdmin(store: StoreClient, topo: Topology, name: string): Promise<boolean> {
  if (topo.web.admins.length > 0) return topo.web.admins.includes(name);
  const first = await store.get('cluster', 'first_user');
  return first !== null && Buffer.from(first).toString('utf8') === name;
}

interface Failures {
  count: number;
  since: number;
}

export type LoginResult = { ok: true; user: User } | { ok: false; problem: string; status: 401 | 429 };

const WRONG = 'Wrong username or password.';

export async function logIn(store: StoreClient, topo: Topology, name: string, pw: string, now = Date.now()): Promise<LoginResult> {
  if (usernameProblem(name) !== null || pw.length > 256) return { ok: false, problem: WRONG, status: 401 };
  const windowMs = topo.web.loginWindowS * 1000;
  const failRaw = await store.get(userRow(name), 'login_failures');
  const fails = failRaw === null ? null : (JSON.parse(Buffer.from(failRaw).toString('utf8')) as Failures);
  if (fails && fails.count >= topo.web.loginAttempts && now - fails.since < windowMs) {
    const wait = Math.ceil((fails.since + windowMs - now) / 60_000);
    return { ok: false, problem: `Too many failed attempts for this account; try again in ${wait} minute${wait === 1 ? '' : 's'}.`, status: 429 };
  }
  const found = await readAccount(store, name);
  // An unknown name costs a hash too, so timing does not tell which names exist.
  const good = found ? await verifyPassword(pw, found.account.hash) : (await hashPassword(pw), false);
  if (!good) {
    if (found) await recordFailure(store, name, windowMs, now);
    return { ok: false, problem: WRONG, status: 401 };
  }
  if (failRaw !== null) await deleteSure(store, userRow(name), 'login_failures');
  return { ok: true, user: { name, admin: await isAdmin(store, topo, name) } };
}

/** Counts a failed login (a CPUT loop: concurrent failures on several frontends are all counted). */
async function recordFailure(store: StoreClient, name: string, windowMs: number, now: number): Promise<void> {
  await updateJson<Failures>(store, userRow(name), 'login_failures', (cur) => (cur && now - cur.since < windowMs ? { count: cur.count + 1, since: cur.since } : { count: 1, since: now }));
}

export type ChangeResult = { ok: true } | { ok: false; problem: string };

export async function changePassword(store: StoreClient, name: string, oldPw: string, newPw: string): Promise<ChangeResult> {
  const problem = passwordProblem(newPw);
  if (problem) return { ok: false, problem };
  const found = await readAccount(store, name);
  if (!found || !(await verifyPassword(oldPw, found.account.hash))) return { ok: false, problem: 'The current password is wrong.' };
  const next: Account = { ...found.account, hash: await hashPassword(newPw) };
  // CPUT against what we verified: a concurrent change is not silently overwritten.
  if (!(await cputSure(store, userRow(name), 'account', found.raw, JSON.stringify(next)))) {
    return { ok: false, problem: 'The password was changed elsewhere at the same moment; try again.' };
  }
  return { ok: true };
}
