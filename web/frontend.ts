// A frontend process: the Hono app on @hono/node-server, a session actor to reach the store, and the
// heartbeat that tells the balancer this frontend is up and how loaded it is.
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import { StoreClient } from '../actors/session.js';
import { createLogger } from '../actors/log.js';
import type { Topology } from '../transport/topology.js';
import { createApp } from './app.js';
import { FEATURES } from './features.js';
import { LoadMeter, serviceUrl, startServiceHeartbeat } from './service-heartbeat.js';
import { clusterSecret } from './sessions.js';

export async function runFrontend(topo: Topology, name: string): Promise<{ stop(): Promise<void> }> {
  const cfg = topo.frontends.find((f) => f.name === name);
  if (!cfg) throw new Error(`no frontend named '${name}'`);
  const log = createLogger(name);
  const store = StoreClient.fromTopology(topo);
  // The cluster secret needs the store; wait for it (the store may still be starting).
  let secret: Buffer | null = null;
  for (let attempt = 0; secret === null; attempt++) {
    try {
      secret = await clusterSecret(store);
    } catch (e) {
      if (attempt % 20 === 0) log.warn({ err: (e as Error).message }, 'waiting for the store');
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const app = createApp({ store, topo, node: name, log, secret }, FEATURES);
  const meter = new LoadMeter();
  const server = serve({ fetch: app.fetch, port: cfg.port, hostname: cfg.host }) as Server;
  server.on('request', (_req, res) => {
    meter.begin();
    res.once('close', () => meter.end());
  });
  server.headersTimeout = 30_000;
  server.requestTimeout = 0; // uploads of large files take as long as they take; idle sockets still time out
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const url = serviceUrl('frontend', cfg);
  const stopHeartbeat = startServiceHeartbeat({ topo, node: name, kind: 'frontend', meter });
  log.info({ url }, 'frontend up');
  return {
    async stop() {
      await stopHeartbeat();
      meter.stop();
      server.closeIdleConnections();
      await new Promise<void>((r) => {
        server.close(() => r());
        setTimeout(() => {
          server.closeAllConnections();
          r();
        }, 2000).unref();
      });
      await store.close();
    },
  };
}
