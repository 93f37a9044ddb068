// An SMTP node process: SMTP ingress on the node's port, the outbound sender, a session actor to reach
// the store, and the heartbeat that tells the balancer this node is up and how loaded it is.
import { StoreClient } from '../actors/session.js';
import { createLogger } from '../actors/log.js';
import type { Topology } from '../transport/topology.js';
import { LoadMeter, serviceUrl, startServiceHeartbeat } from '../web/service-heartbeat.js';
import { OutboundSender } from './sender.js';
import { createIngress } from './smtp-ingress.js';

export async function runSmtpNode(topo: Topology, name: string): Promise<{ stop(): Promise<void> }> {
  const cfg = topo.smtp.find((s) => s.name === name);
  if (!cfg) throw new Error(`no SMTP node named '${name}'`);
  const log = createLogger(name);
  const store = StoreClient.fromTopology(topo);
  const meter = new LoadMeter();
  const server = createIngress({ store, topo, node: name, log, meter });
  server.on('error', (e) => log.warn({ err: (e as Error).message }, 'smtp server error'));
  await new Promise<void>((resolve, reject) => {
    const srv = server.listen(cfg.port, cfg.host, () => resolve());
    srv.once('error', reject);
  });
  const sender = new OutboundSender(store, topo, name, log);
  sender.start();
  const url = serviceUrl('smtp', cfg);
  const stopHeartbeat = startServiceHeartbeat({ topo, node: name, kind: 'smtp', meter });
  log.info({ url, owner: sender.owner }, 'smtp node up');
  return {
    async stop() {
      await stopHeartbeat();
      await sender.stop();
      await new Promise<void>((r) => {
        server.close(() => r());
        setTimeout(r, 3000).unref();
      });
      meter.stop();
      await store.close();
    },
  };
}
