// The balancer over real HTTP: it redirects new clients (307) to live frontends only, notices a killed
// frontend within a few heartbeats, takes it back when it returns, and answers 503 when none is left.
import { describe, expect, it } from 'vitest';
import type { ServicesRep } from '../transport/messages.js';
import { balancerServices } from '../web/admin/services.js';
import { useCluster } from './support/cluster.js';
import { sleep } from './support/wait.js';
import { WebClient } from './support/web-client.js';


describe('balancer in front of two frontends', () => {
  const env = useCluster({ basePort: 24200, storageNodes: 3, replication: 3, tablets: 8, frontends: 2, balancer: true, extraToml: '[web]\nheartbeat_ms = 300\n' });
  const { cluster } = env;

  async function targets(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await fetch(cluster.url() + '/some/path?x=1', { redirect: 'manual' });
      expect(r.status).toBe(307);
      out.push(r.headers.get('location')!);
    }
    return out;
  }

  /** The balancer's own view, through the same client the admin console and `penncloud status` use. */
  async function services(): Promise<ServicesRep> {
    const source = balancerServices(cluster.topo);
    try {
      const { rep, problem } = await source.fetch();
      if (!rep) throw new Error(problem ?? 'no answer from the balancer');
      return rep;
    } finally {
      await source.close();
    }
  }

  /** Waits (bounded) until the balancer's redirects satisfy `ok`. */
  async function until(ok: (locations: string[]) => boolean, what: string): Promise<string[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const locs = await targets(4).catch(() => []);
      if (ok(locs)) return locs;
      if (Date.now() > deadline) throw new Error(`balancer never ${what}; last redirects: ${locs.join(', ')}`);
      await sleep(100);
    }
  }

  it('redirects new clients with 307 to the frontends, keeping path and query, spread over both', async () => {
    // Once both have heartbeated, idle frontends share new clients.
    const locs = await until((l) => l.length === 4 && new Set(l).size === 2, 'spread clients over both frontends');
    for (const l of locs) expect([`${cluster.url('web1')}/some/path?x=1`, `${cluster.url('web2')}/some/path?x=1`]).toContain(l);
  });

  it('answers /healthz itself, not with a redirect', async () => {
    const r = await fetch(cluster.url() + '/healthz', { redirect: 'manual' });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('ok');
  });

  it('keeps the method and body of a POST (307)', async () => {
    const r = await fetch(cluster.url() + '/login', { method: 'POST', body: 'a=b', redirect: 'manual' });
    expect(r.status).toBe(307);
  });

  it('drops a killed frontend within ~3 heartbeats; a logged-in user sent again lands on the live one, still logged in', async () => {
    const u = new WebClient(cluster.url());
    await u.signUp('walker', 'walker password');
    expect((await u.get('/')).text).toContain('Hello, walker');
    await cluster.kill('web1');
    const killedAt = Date.now();
    // The balancer's own view (not a lucky streak of redirects): web1 is out once it missed 3 beats.
    for (;;) {
      const web1 = (await services()).nodes.find((n) => n.name === 'web1');
      if (web1 && !web1.alive) break;
      if (Date.now() - killedAt > 10_000) throw new Error('the balancer never marked web1 out');
      await sleep(50);
    }
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect((await targets(6)).every((x) => x.startsWith(cluster.url('web2')))).toBe(true);
    u.base = cluster.url();
    const again = await u.get('/');
    expect(again.url.startsWith(cluster.url('web2'))).toBe(true);
    expect(again.text).toContain('Hello, walker');
  });

  it('takes a frontend back when it returns', async () => {
    cluster.startNode('web1');
    await cluster.waitHttp('web1');
    await until((l) => l.some((x) => x.startsWith(cluster.url('web1'))), 'took web1 back');
  });

  it('answers 503 with a clear page when no frontend is live, and reports services', async () => {
    await cluster.kill('web1');
    await cluster.kill('web2');
    const deadline = Date.now() + 10_000;
    let r: Response;
    for (;;) {
      r = await fetch(cluster.url() + '/', { redirect: 'manual' });
      if (r.status === 503 || Date.now() > deadline) break;
      await sleep(100);
    }
    expect(r.status).toBe(503);
    const page = await r.text();
    expect(page).toContain('No penncloud frontend is running right now');
    expect(page).toContain('<script>setTimeout(() => location.reload(), 3000)</script>'); // not escaped into dead text
    const rep = await services();
    expect(rep.nodes.map((n) => [n.name, n.alive])).toEqual([
      ['web1', false],
      ['web2', false],
    ]);
    expect(rep.balancer.noFrontend).toBeGreaterThan(0);
    cluster.startNode('web1');
    cluster.startNode('web2');
    await cluster.waitHttp('web1');
  });
});
