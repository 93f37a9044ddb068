// The admin console (/admin, admins only): every node's state, the storage nodes' load, the tablet map
// (page + the JSON it polls), raw data paging per node and tablet, and Stop / Restart of storage nodes.
import { Hono, type Context } from 'hono';
import { StoreClient } from '../../actors/session.js';
import type { Cursor, StatusRep } from '../../transport/messages.js';
import { cursorToken, parseCursor, parseTrail, trailToken, type Start } from '../admin/cursor.js';
import { LIVE_SCRIPT } from '../admin/live-script.js';
import { gatherStatus, type AdminStatus } from '../admin/overview.js';
import { readPage } from '../admin/raw-data.js';
import { balancerServices } from '../admin/services.js';
import { strandedIfStopped } from '../admin/tablets.js';
import type { WebDeps, WebEnv } from '../context.js';
import { handle, HttpError, json, page, redirect } from '../http.js';
import { formFields, mustBeAdmin } from '../middleware.js';
import { AdminPage, ConfirmStopPage, liveParts } from '../views/admin.js';
import { DataPage } from '../views/admin-data.js';

/** Deadline of the console's own store requests: a stopped or dead node must not stall the page. */
const ADMIN_TIMEOUT_MS = 2000;
/** Highest page number accepted in a raw data URL. */
const MAX_PAGE = 1_000_000_000;

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export function adminRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  // Its own session actor: short deadlines and no retries, unlike the one user pages use.
  const store = StoreClient.fromTopology(deps.topo, { timeoutMs: ADMIN_TIMEOUT_MS, maxAttempts: 1 });
  const services = balancerServices(deps.topo);
  const storageNames = deps.topo.storage.map((s) => s.name);

  app.use('*', mustBeAdmin());

  async function masterStatus(): Promise<StatusRep> {
    try {
      return await store.status();
    } catch (e) {
      throw new HttpError(503, `The master did not answer (${why(e)}). The console shows nothing it cannot ask the master about; try again in a moment.`, '/admin');
    }
  }

  async function status(): Promise<AdminStatus> {
    return gatherStatus(await masterStatus(), store, services, deps.topo, deps.node);
  }

  function storageName(raw: string | undefined): string {
    const name = raw ?? storageNames[0] ?? '';
    if (!storageNames.includes(name)) throw new HttpError(404, `There is no storage node with that name. The storage nodes are ${storageNames.join(', ')}.`, '/admin');
    return name;
  }

  app.get(
    '/',
    handle(async (c) => {
      const s = await status();
      const done = c.req.query('done');
      const node = c.req.query('node');
      let ok: string | undefined;
      if (node !== undefined && storageNames.includes(node)) {
        if (done === 'stop') ok = `${node} stopped: it now behaves as crashed, and its tablets fail over to their other replicas.`;
        if (done === 'restart') ok = `${node} is restarting: it recovers from its log and catches up, then shows as alive.`;
      }
      return page('Admin', <AdminPage status={s} csrf={c.get('csrf')} ok={ok} script={LIVE_SCRIPT} />);
    }),
  );

  app.get(
    '/api/status',
    handle(async (c) => {
      const s = await status();
      if (c.req.query('html') !== '1') return json(s);
      const html: Record<string, string> = {};
      for (const [id, el] of Object.entries(liveParts(s, c.get('csrf')))) html[id] = String(await el);
      return json({ ...s, html });
    }),
  );

  app.post(
    '/nodes/:name/:action{stop|restart}',
    handle(async (c) => {
      const name = storageName(c.req.param('name'));
      const action = c.req.param('action') === 'stop' ? 'stop' : 'restart';
      const f = await formFields(c, ['confirm']);
      if (action === 'stop' && f.confirm !== '1') {
        const st = await masterStatus();
        const stranded = strandedIfStopped(st.map, new Map(st.nodes.map((n) => [n.name, n.state])), name);
        if (stranded.length > 0) return page(`Stop ${name}?`, <ConfirmStopPage node={name} stranded={stranded} csrf={c.get('csrf')} />, 409);
      }
      try {
        await store.admin(name, action);
      } catch (e) {
        throw new HttpError(502, `${name} did not carry out '${action}': ${why(e)}`, '/admin');
      }
      deps.log.warn({ node: name, action, by: c.get('user')?.name }, 'admin fault injection');
      return redirect(`/admin?done=${action}&node=${encodeURIComponent(name)}`);
    }),
  );

  /** The node, tablet and page start of a raw data request, checked. */
  async function dataQuery(c: Context<WebEnv>): Promise<{ node: string; tablet: number; after: Start; tablets: number; status: StatusRep }> {
    const node = storageName(c.req.query('node'));
    const st = await masterStatus();
    const tablets = st.map.tablets;
    const rawTablet = c.req.query('tablet');
    let tablet: number;
    if (rawTablet === undefined || rawTablet === '') {
      tablet = st.map.assignments.find((a) => a.replicas.includes(node))?.id ?? 0;
    } else {
      if (!/^\d{1,9}$/.test(rawTablet) || Number(rawTablet) >= tablets) throw new HttpError(400, `The tablet must be a number from 0 to ${tablets - 1}.`, '/admin/data');
      tablet = Number(rawTablet);
    }
    const after = parseCursor(c.req.query('after'));
    if (after === undefined) throw new HttpError(400, 'That page link is damaged (bad cursor). Start again from the first page.', `/admin/data?node=${encodeURIComponent(node)}&tablet=${tablet}`);
    return { node, tablet, after, tablets, status: st };
  }

  async function fetchPage(node: string, tablet: number, after: Cursor | null) {
    try {
      return await readPage(store, node, tablet, after);
    } catch (e) {
      throw new HttpError(503, `${node} could not show tablet ${tablet}: ${why(e)}`, `/admin/data?node=${encodeURIComponent(node)}`);
    }
  }

  app.get(
    '/api/data',
    handle(async (c) => {
      const q = await dataQuery(c);
      const p = await fetchPage(q.node, q.tablet, q.after);
      return json({ node: q.node, tablet: q.tablet, cells: p.cells, next: p.next === null ? null : cursorToken(p.next) });
    }),
  );

  app.get(
    '/data',
    handle(async (c) => {
      const q = await dataQuery(c);
      const trail = parseTrail(c.req.query('trail'));
      const rawPage = c.req.query('page') ?? '1';
      const pageNo = /^\d{1,10}$/.test(rawPage) ? Math.min(MAX_PAGE, Math.max(1, Number(rawPage))) : 1;
      if (trail === undefined) throw new HttpError(400, 'That page link is damaged (bad trail). Start again from the first page.', `/admin/data?node=${encodeURIComponent(q.node)}&tablet=${q.tablet}`);
      const roles = new Map<number, string>();
      for (const a of q.status.map.assignments) if (a.replicas.includes(q.node)) roles.set(a.id, a.primary === q.node ? 'primary' : 'replica');
      const base = `/admin/data?node=${encodeURIComponent(q.node)}&tablet=${q.tablet}`;
      const href = (start: Start, t: Start[], n: number): string =>
        `${base}${start ? `&after=${cursorToken(start)}` : ''}${t.length > 0 ? `&trail=${trailToken(t)}` : ''}${n > 1 ? `&page=${n}` : ''}`;
      let cells = null;
      let error: string | undefined;
      let next: Cursor | null = null;
      try {
        const p = await fetchPage(q.node, q.tablet, q.after);
        cells = p.cells;
        next = p.next;
      } catch (e) {
        if (!(e instanceof HttpError)) throw e;
        error = e.message;
      }
      // "Previous" starts where the page before did; when the trail was cut short it ends at page 1.
      const prevHref = pageNo <= 1 && q.after === null ? null : trail.length > 0 ? href(trail[trail.length - 1]!, trail.slice(0, -1), pageNo - 1) : href(null, [], 1);
      const nextHref = next === null ? null : href(next, [...trail, q.after], pageNo + 1);
      const body = (
        <DataPage nodes={storageNames} tablets={q.tablets} node={q.node} tablet={q.tablet} roles={roles} cells={cells} page={pageNo} prevHref={prevHref} nextHref={nextHref} error={error} />
      );
      return page('Raw data', body, error ? 503 : 200);
    }),
  );

  return app;
}
