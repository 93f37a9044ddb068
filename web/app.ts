// The frontend's Hono application: middleware, then the feature areas, each a small module of its own.
// Every handler's result becomes a response in web/http.tsx; errors end in the 404 / 500 pages here.
import { Hono } from 'hono';
import { randomBytes } from 'node:crypto';
import { StoreError } from '../actors/session.js';
import { CSS, CSS_VERSION } from './assets.js';
import type { WebDeps, WebEnv } from './context.js';
import { errorResponse } from './http.js';
import { csrf, defaultHeaders, sessions } from './middleware.js';
import { accountRoutes } from './routes/accounts.js';

/** A feature area mounted under a path prefix (mail, drive, admin). */
export interface Feature {
  prefix: string;
  routes: (deps: WebDeps) => Hono<WebEnv>;
}

export function createApp(deps: WebDeps, features: Feature[] = []): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  app.get('/static/style.css', (c) => {
    c.header('cache-control', c.req.query('v') === CSS_VERSION ? 'public, max-age=31536000, immutable' : 'no-cache');
    return c.body(CSS, 200, { 'content-type': 'text/css; charset=utf-8' });
  });
  app.get('/healthz', (c) => c.text('ok'));

  app.use('*', defaultHeaders({ 'x-frame-options': 'DENY', 'x-content-type-options': 'nosniff', 'referrer-policy': 'same-origin', 'cache-control': 'no-store' }));
  app.use('*', sessions(deps));
  app.use('*', csrf());

  app.route('/', accountRoutes());
  for (const f of features) app.route(f.prefix, f.routes(deps));

  app.notFound((c) => errorResponse(c, 404, `There is no page at ${new URL(c.req.url).pathname}. Start again from the home page.`));
  app.onError((err, c) => {
    if (err instanceof StoreError && (err.code === 'unavailable' || err.code === 'unknown')) {
      deps.log.warn({ err: err.message, path: c.req.path }, 'store unavailable');
      return errorResponse(c, 503, 'The storage service is busy or recovering from a failure. Please try again in a moment.');
    }
    const ref = randomBytes(4).toString('hex');
    deps.log.error({ err, ref, method: c.req.method, path: c.req.path }, 'request failed');
    return errorResponse(c, 500, `Something went wrong on our side (reference ${ref}). Please try again.`);
  });
  return app;
}
