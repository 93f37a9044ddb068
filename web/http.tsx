// The one place where a handler's result becomes an HTTP response. Handlers return an Outcome (a page,
// a redirect, JSON, or a ready Response for streams) or throw an HttpError; `handle` does the rest, so
// status codes, headers and error pages are decided here and nowhere else.
import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { WebEnv } from './context.js';
import { ErrorPage, Layout } from './views/layout.js';

export type Outcome =
  | { kind: 'page'; title: string; body: Child; status?: ContentfulStatusCode }
  | { kind: 'redirect'; to: string }
  | { kind: 'json'; data: unknown; status?: ContentfulStatusCode }
  | { kind: 'response'; response: Response };

export const page = (title: string, body: Child, status?: ContentfulStatusCode): Outcome => ({ kind: 'page', title, body, ...(status ? { status } : {}) });
/** 303 See Other: after a POST, the browser GETs `to`. */
export const redirect = (to: string): Outcome => ({ kind: 'redirect', to });
export const json = (data: unknown, status?: ContentfulStatusCode): Outcome => ({ kind: 'json', data, ...(status ? { status } : {}) });
export const raw = (response: Response): Outcome => ({ kind: 'response', response });

/** A request the handler refuses: shown to the user as an error page (HTML) or `{error}` (JSON). */
export class HttpError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    /** Where the error page's link leads. */
    readonly back: string = '/',
  ) {
    super(message);
  }
}

export type Handler = (c: Context<WebEnv>) => Outcome | Promise<Outcome>;

/** Turns a handler into a Hono handler. */
export function handle(fn: Handler): (c: Context<WebEnv>) => Promise<Response> {
  return async (c) => {
    let outcome: Outcome;
    try {
      outcome = await fn(c);
    } catch (e) {
      if (e instanceof HttpError) return errorResponse(c, e.status, e.message, e.back);
      throw e; // app.onError: a 500 page that leaks nothing
    }
    return respond(c, outcome);
  };
}

export function respond(c: Context<WebEnv>, o: Outcome): Response | Promise<Response> {
  switch (o.kind) {
    case 'page':
      return htmlResponse(c, <Layout title={o.title} user={c.get('user')} csrf={c.get('csrf')}>{o.body}</Layout>, o.status ?? 200);
    case 'redirect':
      return c.redirect(o.to, 303);
    case 'json':
      return c.json(o.data as object, o.status ?? 200);
    case 'response':
      return o.response;
  }
}

/** Browsers get a page; scripts (Accept: application/json) get `{error}`. */
export function errorResponse(c: Context<WebEnv>, status: ContentfulStatusCode, message: string, back = '/'): Response | Promise<Response> {
  if ((c.req.header('accept') ?? '').includes('application/json') && !(c.req.header('accept') ?? '').includes('text/html')) {
    return c.json({ error: message }, status);
  }
  return htmlResponse(
    c,
    <Layout title={`${status}`} user={c.get('user') ?? null} csrf={c.get('csrf') ?? ''}>
      <ErrorPage status={status} message={message} back={back} />
    </Layout>,
    status,
  );
}

/** A whole page as one plain string (our JSX runtime renders each element as it is built: web/jsx). */
export function renderPage(element: Child): string {
  return `<!doctype html>${String(element)}`;
}

/** A plain string body lets @hono/node-server write it directly, without a web ReadableStream. */
function htmlResponse(c: Context<WebEnv>, element: Child, status: ContentfulStatusCode): Response {
  return c.html(renderPage(element), status);
}
