// Asks the balancer which frontends and SMTP nodes are up (its `services` request on the control
// socket), for the admin console. One socket per frontend process, short deadline: a balancer that is
// down makes the answer null, never a stalled page.
import { RpcClient } from '../../transport/rpc.js';
import type { ServicesRep } from '../../transport/messages.js';
import { endpoint, type Topology } from '../../transport/topology.js';

const SERVICES_TIMEOUT_MS = 1000;

export interface ServicesSource {
  /** The balancer's answer, or null (no balancer configured, or it did not answer) with the reason. */
  fetch(): Promise<{ rep: ServicesRep | null; problem: string | null }>;
  close(): Promise<void>;
}

function looksLikeServices(rep: unknown): rep is ServicesRep {
  const r = rep as Partial<ServicesRep> | null;
  return typeof r === 'object' && r !== null && r.t === 'services' && Array.isArray(r.nodes) && typeof r.balancer === 'object' && r.balancer !== null;
}

export function balancerServices(topo: Topology): ServicesSource {
  const b = topo.balancer;
  if (!b) {
    return {
      fetch: async () => ({ rep: null, problem: 'this topology has no [balancer]' }),
      close: async () => {},
    };
  }
  const client = new RpcClient(endpoint(b.host, b.controlPort), { timeoutMs: SERVICES_TIMEOUT_MS, maxInflight: 16, maxMessageBytes: 1 << 20, connectWaitMs: 200 });
  return {
    async fetch() {
      try {
        const rep = await client.request({ t: 'services' });
        if (looksLikeServices(rep)) return { rep, problem: null };
        return { rep: null, problem: `the balancer answered '${String((rep as { t?: unknown }).t)}' to 'services'` };
      } catch (e) {
        return { rep: null, problem: `the balancer ${b.name} did not answer: ${(e as Error).message}` };
      }
    },
    close: () => client.close(),
  };
}
