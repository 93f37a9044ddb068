// What every web handler can reach: the store (through the session actor), the topology, and the
// per-request state the middleware sets up (the session id, the logged-in user, the CSRF token).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { StoreClient } from '../actors/session.js';
import type { Topology } from '../transport/topology.js';

/** The logged-in user of a request (null when logged out). */
export interface User {
  name: string;
  admin: boolean;
}

export interface WebDeps {
  store: StoreClient;
  topo: Topology;
  /** This frontend's name in the topology. */
  node: string;
  log: Logger;
  /** Cluster-wide secret (kept in the store) that CSRF tokens are derived from. */
  secret: Buffer;
}

/** Hono's environment: the variables middleware sets on every request. */
export interface WebEnv {
  /** The raw Node request and response (@hono/node-server), for streaming bodies. */
  Bindings: { incoming: IncomingMessage; outgoing: ServerResponse };
  Variables: {
    deps: WebDeps;
    /** The session id from the cookie (a fresh one when the browser sent none). */
    sid: string;
    user: User | null;
    /** The CSRF token for this session: forms carry it as `_csrf`, scripts as the `x-csrf-token` header. */
    csrf: string;
    /** The fields of a url-encoded form POST (read and size-checked by the CSRF middleware). */
    form: URLSearchParams | null;
  };
}
