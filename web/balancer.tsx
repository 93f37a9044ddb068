// The load balancer: the one URL users are given. Every request is answered with a 307 to the live
// frontend with the least load (so a POST keeps its method and body); with no live frontend, a 503 page.
// Frontends and SMTP nodes heartbeat to its control socket (ZeroMQ), which also answers `services`
// for the admin console.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { raw } from 'hono/html';
import type { Server } from 'node:http';
import { createLogger } from '../actors/log.js';
import { monoNow } from '../actors/clock.js';
import { errorReply } from '../transport/messages.js';
import { RpcServer } from '../transport/rpc.js';
import { endpoint, type Topology } from '../transport/topology.js';
import { CSS } from './assets.js';
import { ServiceRegistry, type KnownService } from './balancer-core.js';
import { serviceUrl } from './service-heartbeat.js';

function NoFrontendPage() {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>penncloud is unavailable</title>
        <style>{CSS}</style>
      </head>
      <body>
        <main>
          <div class="card error-page">
            <div class="code">503</div>
            <p>No penncloud frontend is running right now, so there is nowhere to send you.</p>
            <p class="muted">This usually lasts a few seconds while a frontend restarts. This page will retry by itself.</p>
            {/* A fixed script of ours (hono/jsx would escape a string child of <script>). */}
            <script>{raw('setTimeout(() => location.reload(), 3000)')}</script>
          </div>
        </main>
      </body>
    </html>
  );
}

function knownServices(topo: Topology): Map<string, KnownService> {
  const known = new Map<string, KnownService>();
  for (const f of topo.frontends) known.set(f.name, { kind: 'frontend', url: serviceUrl('frontend', f) });
  for (const s of topo.smtp) known.set(s.name, { kind: 'smtp', url: serviceUrl('smtp', s) });
  return known;
}

export async function runBalancer(topo: Topology): Promise<{ stop(): Promise<void> }> {
  const cfg = topo.balancer;
  if (!cfg) throw new Error('the topology has no [balancer]');
  const log = createLogger(cfg.name);
  const registry = new ServiceRegistry(3 * topo.web.heartbeatMs, knownServices(topo));
  const counters = { redirects: 0, noFrontend: 0 };
  const url = `http://${cfg.host}:${cfg.port}/`;

  const control = new RpcServer({
    endpoint: endpoint(cfg.host, cfg.controlPort),
    maxMessageBytes: 1 << 20,
    onProblem: (reason) => log.warn({ reason }, 'bad frame on the control socket'),
    handler: (req, respond) => {
      if (req.t === 'svc_heartbeat') {
        if (registry.heartbeat(req, monoNow())) respond({ t: 'ok' });
        else respond(errorReply('bad_request', `${cfg.name} has no ${req.kind} named '${req.node}' in its topology`));
      } else if (req.t === 'services') {
        respond({ t: 'services', balancer: { name: cfg.name, url, pid: process.pid, ...counters }, nodes: registry.list(monoNow()) });
      } else {
        respond(errorReply('bad_request', `the balancer does not serve '${req.t}'`));
      }
    },
  });
  await control.start();

  const app = new Hono();
  // The balancer's own health (it answers even when no frontend is up: that shows on / as a 503).
  app.get('/healthz', (c) => {
    c.header('cache-control', 'no-store');
    return c.text('ok');
  });
  app.all('*', (c) => {
    const target = registry.choose(monoNow());
    if (!target) {
      counters.noFrontend++;
      c.header('retry-after', '3');
      c.header('cache-control', 'no-store');
      return c.html(`<!doctype html>${(<NoFrontendPage />).toString()}`, 503);
    }
    counters.redirects++;
    const u = new URL(c.req.url);
    const to = new URL(u.pathname + u.search, target.url);
    c.header('cache-control', 'no-store');
    return c.redirect(to.toString(), 307);
  });
  const server = serve({ fetch: app.fetch, port: cfg.port, hostname: cfg.host }) as Server;
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once('listening', resolve);
    server.once('error', reject);
  });
  log.info({ url }, 'balancer up');
  return {
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await control.close();
    },
  };
}
