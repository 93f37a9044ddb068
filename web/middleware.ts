// Middleware every request passes through: the session (cookie -> user), CSRF checks on requests that
// change state, bounded form bodies, and the guards for pages that need a login or an admin.
import type { Context, MiddlewareHandler } from 'hono';
import { setCookie } from 'hono/cookie';
import type { User, WebDeps, WebEnv } from './context.js';
import { HttpError, errorResponse } from './http.js';
import { SESSION_COOKIE, csrfToken, csrfValid, deleteSession, isSessionId, loadSession, newSessionId, saveSession, sessionIdFromCookie } from './sessions.js';

/** Url-encoded forms larger than this are refused (413); files go through multipart streaming instead. */
export const MAX_FORM_BYTES = 1 << 20;

function setSessionCookie(c: Context<WebEnv>, sid: string, maxAgeS?: number): void {
  setCookie(c, SESSION_COOKIE, sid, { httpOnly: true, sameSite: 'Lax', path: '/', ...(maxAgeS ? { maxAge: maxAgeS } : {}) });
}

/** Reads the session cookie (or hands out a fresh id), and the user it is logged in as. */
export function sessions(deps: WebDeps): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    c.set('deps', deps);
    c.set('form', null);
    // The raw Node header: c.req.header() would first build a web Headers object of every header.
    const cookie = c.env?.incoming ? c.env.incoming.headers.cookie : c.req.header('cookie');
    let sid = sessionIdFromCookie(cookie);
    let user: User | null = null;
    if (isSessionId(sid)) {
      user = await loadSession(deps.store, sid);
    } else {
      sid = newSessionId();
      setSessionCookie(c, sid);
    }
    c.set('sid', sid);
    c.set('user', user);
    c.set('csrf', csrfToken(deps.secret, sid));
    await next();
  };
}

/** Logs `user` in: a new session id (never the one from before the login), stored, in the cookie. */
export async function startSession(c: Context<WebEnv>, user: User): Promise<void> {
  const { store, topo, secret } = c.get('deps');
  const sid = newSessionId();
  const ttlS = topo.web.sessionHours * 3600;
  await saveSession(store, sid, user, ttlS * 1000);
  setSessionCookie(c, sid, ttlS);
  c.set('sid', sid);
  c.set('user', user);
  c.set('csrf', csrfToken(secret, sid));
}

export async function endSession(c: Context<WebEnv>): Promise<void> {
  await deleteSession(c.get('deps').store, c.get('sid'));
  const sid = newSessionId();
  setSessionCookie(c, sid);
  c.set('sid', sid);
  c.set('user', null);
  c.set('csrf', csrfToken(c.get('deps').secret, sid));
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Reads a request body as text, refusing (413) one larger than `limit` without buffering the rest. */
async function readBounded(c: Context<WebEnv>, limit: number): Promise<string> {
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > limit) throw new HttpError(413, `The form is too large (over ${limit >> 10} KiB).`);
  const body = c.req.raw.body;
  if (!body) return '';
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `The form is too large (over ${limit >> 10} KiB).`);
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

/**
 * Requests that change state must carry the session's CSRF token: url-encoded forms as the `_csrf`
 * field, scripts as the `x-csrf-token` header, multipart (streamed) uploads as `?_csrf=` in the URL.
 */
export function csrf(): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    if (SAFE_METHODS.has(c.req.method)) return next();
    let token = c.req.header('x-csrf-token') ?? c.req.query('_csrf');
    const type = (c.req.header('content-type') ?? '').toLowerCase();
    if (type.startsWith('application/x-www-form-urlencoded')) {
      let form: URLSearchParams;
      try {
        form = new URLSearchParams(await readBounded(c, MAX_FORM_BYTES));
      } catch (e) {
        if (e instanceof HttpError) return errorResponse(c, e.status, e.message);
        throw e;
      }
      c.set('form', form);
      token ??= form.get('_csrf') ?? undefined;
    }
    if (!csrfValid(c.get('deps').secret, c.get('sid'), token)) {
      return errorResponse(c, 403, 'This form has expired or did not come from penncloud (missing or wrong CSRF token). Reload the page and try again.');
    }
    return next();
  };
}

/** The named fields of the request's url-encoded form ('' when absent). */
export async function formFields<K extends string>(c: Context<WebEnv>, names: K[]): Promise<Record<K, string>> {
  const form = c.get('form');
  if (!form) throw new HttpError(415, 'Expected a form (application/x-www-form-urlencoded).');
  const out = {} as Record<K, string>;
  for (const n of names) out[n] = form.get(n) ?? '';
  return out;
}

/** A local path to go to after login, or undefined (never another site: no open redirects). */
export function safeNext(next: string | undefined | null): string | undefined {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\') || next.length > 2000) return undefined;
  return next;
}

/** The logged-in user of a request behind mustLogIn(); a 401 if there is none after all. */
export function currentUser(c: Context<WebEnv>): User {
  const u = c.get('user');
  if (!u) throw new HttpError(401, 'Please log in first.');
  return u;
}

/** Pages behind this need a login: browsers are sent to the login form (and back after it). */
export function mustLogIn(): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    if (c.get('user')) return next();
    if (c.req.method === 'GET' || c.req.method === 'HEAD') {
      const url = new URL(c.req.url);
      return c.redirect(`/?next=${encodeURIComponent(url.pathname + url.search)}`, 303);
    }
    return errorResponse(c, 401, 'Please log in first.');
  };
}

/** Admin pages: logged-out users go to the login form, others get 403. */
export function mustBeAdmin(): MiddlewareHandler<WebEnv> {
  const login = mustLogIn();
  return async (c, next) => {
    const user = c.get('user');
    if (!user) return login(c, next);
    if (!user.admin) return errorResponse(c, 403, 'The admin console is only for administrators.');
    return next();
  };
}

/**
 * Adds `headers` to every response that does not set them itself. They go onto the response's own
 * headers: c.header() after the response exists would rebuild the whole Response (and its body
 * stream) once per call, which costs more than the rest of a page.
 */
export function defaultHeaders(headers: Record<string, string>): MiddlewareHandler<WebEnv> {
  const entries = Object.entries(headers);
  return async (c, next) => {
    await next();
    for (const [name, value] of entries) {
      if (c.res.headers.has(name)) continue;
      try {
        c.res.headers.set(name, value);
      } catch {
        c.header(name, value); // immutable headers (a fetched Response): let Hono copy it
      }
    }
  };
}
