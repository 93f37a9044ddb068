// The admin console over real HTTP: a replicated store, two frontends, an SMTP node and a balancer, each its own
// process. Who may open it, the page and the JSON it polls, per-node metrics, raw data paging (every
// cell of a tablet exactly once), Stop / Restart of storage nodes and the confirmation before
// stopping the last live in-sync replica.
import { beforeAll, describe, expect, it } from 'vitest';
import { tabletOf } from '../transport/partition.js';
import type { AdminStatus } from '../web/admin/overview.js';
import type { ShownCell } from '../web/admin/raw-data.js';
import { useCluster } from './support/cluster.js';
import { WebClient } from './support/web-client.js';
import { until } from './support/wait.js';

const PW = 'correct horse';
const TABLETS = 8;
const TABLET = 5; // the tablet whose raw data is paged through

type StatusJson = AdminStatus & { html?: Record<string, string> };

describe('admin console over HTTP', () => {
  const env = useCluster({
    basePort: 27000,
    storageNodes: 3,
    replication: 3,
    tablets: TABLETS,
    frontends: 2,
    smtp: 1,
    balancer: true,
    extraToml: '[web]\nheartbeat_ms = 200\nadmins = ["boss"]\n',
  });
  const { cluster } = env;
  let admin: WebClient;
  beforeAll(async () => {
    // The admin (named in [web] admins) works through web2.
    admin = new WebClient(cluster.url('web2'));
    expect((await admin.signUp('boss', PW)).text).toContain('href="/admin"');
  });

  async function statusJson(c: WebClient = admin): Promise<StatusJson> {
    const res = await c.raw('GET', '/admin/api/status', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    return JSON.parse(res.text) as StatusJson;
  }
  const nodeOf = (s: AdminStatus, name: string) => s.nodes.find((n) => n.name === name)!;

  it('sends logged-out visitors to the login page', async () => {
    const anon = new WebClient(cluster.url('web1'));
    for (const path of ['/admin', '/admin/api/status', '/admin/data?node=s1']) {
      const res = await anon.raw('GET', path);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe(`/?next=${encodeURIComponent(path)}`);
    }
  });

  it('refuses accounts that are not admins (403), pages and JSON and buttons alike', async () => {
    const carol = new WebClient(cluster.url('web1'));
    expect((await carol.signUp('carol', PW)).text).toContain('Hello, carol');
    const page = await carol.get('/admin');
    expect(page.status).toBe(403);
    expect(page.text).toContain('only for administrators');
    const api = await carol.raw('GET', '/admin/api/status', { headers: { accept: 'application/json' } });
    expect(api.status).toBe(403);
    expect(JSON.parse(api.text)).toEqual({ error: expect.stringContaining('administrators') });
    expect((await carol.get('/admin/data?node=s1&tablet=0')).status).toBe(403);
    const stop = await carol.postForm('/admin/nodes/s1/stop', { confirm: '1' }, false);
    expect(stop.status).toBe(403);
    expect(nodeOf(await statusJson(), 's1').state).not.toBe('stopped');
  });

  it('shows the admin every node, with states from the master and the balancer', async () => {
    const page = await admin.get('/admin');
    expect(page.status).toBe(200);
    for (const name of ['master', 's1', 's2', 's3', 'web1', 'web2', 'smtp1', 'balancer']) expect(page.text).toContain(`data-node="${name}"`);
    expect(page.text).toContain('Tablet map');
    expect(page.text).toContain("fetch('/admin/api/status?html=1'"); // the polling script, not HTML-escaped

    // The frontends and the SMTP node show up once the balancer has heard their heartbeats. (Every
    // node is polled to 'alive': on a loaded machine a heartbeat can come late and a node flap.)
    const s = await until('every node alive', async () => {
      const st = await statusJson();
      return st.nodes.every((n) => n.state === 'alive') && st.problems.length === 0 ? st : undefined;
    });
    expect(s.nodes.map((n) => n.kind)).toEqual(['master', 'storage', 'storage', 'storage', 'balancer', 'frontend', 'frontend', 'smtp']);
    expect(nodeOf(s, 'master').state).toBe('alive');
    for (const n of ['s1', 's2', 's3']) {
      const node = nodeOf(s, n);
      expect(node.state).toBe('alive');
      expect(node.address).toMatch(/^tcp:\/\/127\.0\.0\.1:270\d0$/);
      expect(node.pid).toBe(cluster.pid(n));
      expect(node.lastHeartbeatMs).toBeLessThan(2000);
      expect(node.storage!.held).toBe(TABLETS); // replication 3 on 3 nodes: everyone holds everything
      expect(node.storage!.metrics!.ops).toHaveLength(60);
    }
    expect(s.nodes.filter((n) => n.kind === 'storage').reduce((sum, n) => sum + n.storage!.primaries, 0)).toBe(TABLETS);
    const web1 = nodeOf(s, 'web1');
    expect(web1.pid).toBe(cluster.pid('web1'));
    expect(web1.load).toEqual(expect.objectContaining({ inflight: expect.any(Number), served: expect.any(Number) }));
    expect(web1.lastHeartbeatMs).toBeLessThan(2000);
    const smtp = nodeOf(s, 'smtp1');
    expect(smtp.pid).toBe(cluster.pid('smtp1'));
    expect(smtp.address).toBe('smtp://127.0.0.1:27701');
    expect(smtp.load).toEqual(expect.objectContaining({ inflight: 0 }));
    expect(nodeOf(s, 'balancer')).toEqual(expect.objectContaining({ state: 'alive', pid: cluster.pid('balancer') }));
    expect(s.problems).toEqual([]);

    expect(s.tabletMap).toHaveLength(TABLETS);
    for (const t of s.tabletMap) {
      expect(t.available).toBe(true);
      expect(t.replicas.map((r) => r.node).sort()).toEqual(['s1', 's2', 's3']);
      expect(t.replicas.filter((r) => r.primary).map((r) => r.node)).toEqual([t.primary]);
      for (const r of t.replicas) expect(r.inSync).toBe(true);
    }
    // The page's script asks for server-rendered parts too.
    const withHtml = await admin.raw('GET', '/admin/api/status?html=1', { headers: { accept: 'application/json' } });
    const parts = (JSON.parse(withHtml.text) as StatusJson).html!;
    expect(Object.keys(parts).sort()).toEqual(['live-load', 'live-nodes', 'live-problems', 'live-tablets', 'live-updated']);
    expect(parts['live-tablets']).toContain('data-tablet="7"');
  });

  it('shows a frontend that stops heartbeating as dead, from the balancer’s view, and alive again after a restart', async () => {
    await cluster.kill('web1');
    const down = await until('web1 dead at the balancer', async () => {
      const st = await statusJson();
      return nodeOf(st, 'web1').state === 'dead' ? st : undefined;
    });
    expect(nodeOf(down, 'web1').lastHeartbeatMs).toBeGreaterThan(0);
    expect(nodeOf(down, 'web2').state).toBe('alive');
    cluster.startNode('web1');
    await cluster.waitHttp('web1');
    const up = await until('web1 alive again', async () => {
      const st = await statusJson();
      return nodeOf(st, 'web1').state === 'alive' ? st : undefined;
    });
    expect(nodeOf(up, 'web1').pid).toBe(cluster.pid('web1')); // the new process
  });

  it('reports each storage node’s requests per second and p99 latency of the last minute', async () => {
    const store = env.client;
    for (let i = 0; i < 200; i++) await store.put(`load-${i}`, 'c', 'x');
    const s = await until('the writes counted in the metrics', async () => {
      const st = await statusJson();
      const total = st.nodes.filter((n) => n.kind === 'storage').reduce((sum, n) => sum + n.storage!.metrics!.minuteOps, 0);
      return total >= 200 ? st : undefined;
    });
    const busiest = s.nodes.filter((n) => n.kind === 'storage').sort((a, b) => b.storage!.metrics!.minuteOps - a.storage!.metrics!.minuteOps)[0]!;
    const m = busiest.storage!.metrics!;
    expect(m.minuteP99Ms).toBeGreaterThan(0);
    expect(m.ops.reduce((a, b) => a + b, 0)).toBe(m.minuteOps);
    expect(m.p99Ms.some((p) => p !== null && p > 0)).toBe(true);
    const page = await admin.get('/admin');
    expect(page.text).toMatch(/<svg class="spark ops"[^>]*>.*<polyline points="[\d., ]+"/s);
  });

  it('pages through every cell of a tablet exactly once, ten at a time, via the JSON and the pages', async () => {
    const store = env.client;
    // Known cells of tablet TABLET: plain text, a long value, a binary one, and hostile names.
    const written = new Map<string, string>();
    const rows: string[] = [];
    for (let i = 0; rows.length < 14; i++) if (tabletOf(`raw-${i}`, TABLETS) === TABLET) rows.push(`raw-${i}`);
    let hostile = '';
    for (let i = 0; !hostile; i++) if (tabletOf(`<script>alert(${i})</script>`, TABLETS) === TABLET) hostile = `<script>alert(${i})</script>`;
    for (const r of rows) {
      for (const col of ['a', 'b', 'c']) {
        await store.put(r, col, `${r}/${col}`);
        written.set(`${r}\u0000${col}`, `${r}/${col}`);
      }
    }
    await store.put(rows[0]!, 'long', 'L'.repeat(5000));
    await store.put(rows[0]!, 'bin', new Uint8Array([0, 1, 2, 0xff, 0xfe, 0x80, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34]));
    await store.put(hostile, '<b>col</b>', '<img src=x onerror=alert(1)>');

    // Ground truth: the node's own cells of that tablet, read directly in large pages.
    const truth: Array<[string, string]> = [];
    for (let after: [string, string] | null = null; ; ) {
      const page = await store.scan('s1', TABLET, after, 1000);
      truth.push(...page.cells.map(([r, c]): [string, string] => [r, c]));
      if (page.next === null) break;
      after = page.next;
    }
    expect(truth.length).toBeGreaterThanOrEqual(written.size + 3);

    // Through the JSON, as scripts would.
    const seen: ShownCell[] = [];
    let pages = 0;
    for (let after = ''; ; pages++) {
      const res = await admin.raw('GET', `/admin/api/data?node=s1&tablet=${TABLET}${after ? `&after=${after}` : ''}`, { headers: { accept: 'application/json' } });
      expect(res.status).toBe(200);
      const body = JSON.parse(res.text) as { cells: ShownCell[]; next: string | null };
      expect(body.cells.length).toBeLessThanOrEqual(10);
      if (body.next !== null) expect(body.cells).toHaveLength(10);
      seen.push(...body.cells);
      if (body.next === null) break;
      after = body.next;
    }
    expect(pages).toBe(Math.ceil(truth.length / 10) - 1);
    expect(seen.map((c) => [c.row, c.col])).toEqual(truth);
    for (const c of seen) {
      const want = written.get(`${c.row}\u0000${c.col}`);
      if (want !== undefined) expect(c.value).toEqual({ kind: 'text', text: want, size: want.length, cut: false });
    }
    const long = seen.find((c) => c.col === 'long')!.value;
    expect(long).toEqual({ kind: 'text', text: 'L'.repeat(200), size: 5000, cut: true });
    const bin = seen.find((c) => c.col === 'bin')!.value;
    expect(bin).toEqual({ kind: 'binary', hex: expect.stringMatching(/^00 01 02 ff fe 80 07 08/), size: 34, cut: true });

    // Through the pages, following Next on another node (a replica holds the same cells), then back with Previous.
    const onS2: string[] = [];
    const links: string[] = [];
    let html = (await admin.get(`/admin/data?node=s2&tablet=${TABLET}`)).text;
    let allPages = '';
    for (let i = 1; ; i++) {
      allPages += html;
      expect(html).toContain(`s2, tablet ${TABLET}: page ${i}`);
      onS2.push(...[...html.matchAll(/<tr><td class="muted">(\d+)<\/td>/g)].map((m) => m[1]!));
      const next = /<a class="button secondary" rel="next" href="([^"]+)"/.exec(html);
      if (!next) break;
      links.push(next[1]!.replaceAll('&amp;', '&'));
      html = (await admin.get(links[links.length - 1]!)).text;
    }
    expect(onS2).toEqual(truth.map((_, i) => String(i + 1)));
    expect(allPages).toContain('&lt;script&gt;alert(');
    expect(allPages).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(allPages).not.toContain('<script>alert(');
    expect(allPages).not.toContain('<img src=x');
    for (let i = links.length; i >= 1; i--) {
      const prev = /<a class="button secondary" rel="prev" href="([^"]+)"/.exec(html)!;
      html = (await admin.get(prev[1]!.replaceAll('&amp;', '&'))).text;
      expect(html).toContain(`s2, tablet ${TABLET}: page ${i}`);
    }
    expect(html).not.toContain('rel="prev"');
  });

  it('turns bad raw data requests into clear errors', async () => {
    const noNode = await admin.get('/admin/data?node=..%2F..%2Fetc');
    expect(noNode.status).toBe(404);
    expect(noNode.text).toContain('The storage nodes are s1, s2, s3');
    expect((await admin.get('/admin/data?node=s1&tablet=99')).status).toBe(400);
    expect((await admin.get('/admin/data?node=s1&tablet=-1')).status).toBe(400);
    expect((await admin.get('/admin/data?node=s1&tablet=1&after=%%%')).status).toBe(400);
    expect((await admin.get(`/admin/data?node=s1&tablet=1&after=${Buffer.from('"x"').toString('base64url')}`)).status).toBe(400);
    expect((await admin.get('/admin/data?node=s1&tablet=1&trail=nope!')).status).toBe(400);
    expect((await admin.postForm('/admin/nodes/s9/stop', { confirm: '1' }, false)).status).toBe(404);
    expect((await admin.postForm('/admin/nodes/s1/explode', {}, false)).status).toBe(404);
    // Without the CSRF token nothing happens.
    const forged = await admin.raw('POST', '/admin/nodes/s1/stop', { body: 'confirm=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(forged.status).toBe(403);
    expect(nodeOf(await statusJson(), 's1').state).not.toBe('stopped');
  });

  it('stops and restarts a storage node; the state and the tablet map follow', async () => {
    const before = await statusJson();
    const victim = before.nodes.filter((n) => n.kind === 'storage').sort((a, b) => b.storage!.primaries - a.storage!.primaries)[0]!.name;
    const led = before.tabletMap.filter((t) => t.primary === victim).map((t) => t.id);
    expect(led.length).toBeGreaterThan(0);

    await admin.get('/admin');
    const stop = await admin.postForm(`/admin/nodes/${victim}/stop`, {}, false);
    expect(stop.status).toBe(303);
    expect(stop.headers.get('location')).toBe(`/admin?done=stop&node=${victim}`);
    expect((await admin.get(stop.headers.get('location')!)).text).toContain(`${victim} stopped`);

    const stopped = await until(`${victim} stopped and its tablets failed over`, async () => {
      const s = await statusJson();
      return nodeOf(s, victim).state === 'stopped' && s.tabletMap.every((t) => t.primary !== null && t.primary !== victim) ? s : undefined;
    });
    for (const id of led) {
      const t = stopped.tabletMap[id]!;
      expect(t.available).toBe(true);
      expect(t.replicas.find((r) => r.node === victim)!.health).toBe('down');
    }
    expect(stopped.html).toBeUndefined();
    expect(nodeOf(stopped, victim).storage!.strandedIfStopped).toEqual([]);
    // Its raw data is not readable while it is stopped: a clear error, not a hang.
    const data = await admin.get(`/admin/data?node=${victim}&tablet=0`);
    expect(data.status).toBe(503);
    expect(data.text).toContain(`${victim} could not show tablet 0`);
    // The user-facing store keeps working.
    await env.client.put('during-stop', 'c', 'v');
    expect(Buffer.from((await env.client.get('during-stop', 'c'))!).toString()).toBe('v');

    const restart = await admin.postForm(`/admin/nodes/${victim}/restart`, {}, false);
    expect(restart.status).toBe(303);
    const seen = new Set<string>();
    await until(`${victim} alive and in sync again`, async () => {
      const s = await statusJson();
      seen.add(nodeOf(s, victim).state);
      const inSync = s.tabletMap.every((t) => t.replicas.find((r) => r.node === victim)!.inSync);
      return nodeOf(s, victim).state === 'alive' && inSync ? s : undefined;
    });
    expect([...seen].every((st) => ['stopped', 'recovering', 'alive'].includes(st))).toBe(true);
    // It caught up on the write it missed.
    const t = tabletOf('during-stop', TABLETS);
    const caught = await env.client.scan(victim, t, null, 1000);
    expect(caught.cells.some(([r]) => r === 'during-stop')).toBe(true);
  });

  it('asks for confirmation before stopping the last live in-sync replica of a tablet', async () => {
    await admin.get('/admin');
    expect((await admin.postForm('/admin/nodes/s1/stop', {}, false)).status).toBe(303);
    await until('s1 stopped', async () => (nodeOf(await statusJson(), 's1').state === 'stopped' ? true : undefined));
    expect((await admin.postForm('/admin/nodes/s2/stop', {}, false)).status).toBe(303);
    const s = await until('s2 stopped and s3 the last in-sync replica', async () => {
      const st = await statusJson();
      const failedOver = st.tabletMap.every((t) => t.primary === 's3');
      return nodeOf(st, 's2').state === 'stopped' && failedOver && nodeOf(st, 's3').storage!.strandedIfStopped.length === TABLETS ? st : undefined;
    });
    expect(s.tabletMap.every((t) => t.available && t.replicas.filter((r) => r.health !== 'down').map((r) => r.node).join() === 's3')).toBe(true);
    // The page carries the list for the browser's confirm() ...
    const page = await admin.get('/admin');
    expect(page.text).toMatch(/action="\/admin\/nodes\/s3\/stop" data-node="s3" data-stranded="0,1,2,3,4,5,6,7"/);
    // ... and the server asks too when the form comes without confirm=1.
    const ask = await admin.postForm('/admin/nodes/s3/stop', {}, false);
    expect(ask.status).toBe(409);
    expect(ask.text).toContain('s3 is the last live in-sync replica of tablets');
    expect(ask.text).toContain('name="confirm" value="1"');
    expect(nodeOf(await statusJson(), 's3').state).not.toBe('stopped');

    for (const n of ['s1', 's2']) expect((await admin.postForm(`/admin/nodes/${n}/restart`, {}, false)).status).toBe(303);
    await until('every node alive and in sync', async () => {
      const st = await statusJson();
      const ok = ['s1', 's2', 's3'].every((n) => nodeOf(st, n).state === 'alive') && st.tabletMap.every((t) => t.replicas.every((r) => r.inSync));
      return ok ? true : undefined;
    });
  });

  it('says so when the master does not answer, instead of guessing states', async () => {
    await cluster.kill('master');
    const res = await admin.raw('GET', '/admin/api/status', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(503);
    expect(JSON.parse(res.text).error).toContain('The master did not answer');
    const page = await admin.get('/admin');
    expect(page.status).toBe(503);
    cluster.startNode('master');
    await cluster.waitAlive(['s1', 's2', 's3']);
    expect(nodeOf(await statusJson(), 'master').pid).toBe(cluster.pid('master'));
  });
});
