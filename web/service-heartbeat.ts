// Frontends and SMTP nodes tell the balancer every web.heartbeat_ms that they are up and how loaded they
// are (requests in flight, event-loop delay). The balancer sends new clients to the least loaded one.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RpcClient } from '../transport/rpc.js';
import type { ServiceKind, ServiceLoad } from '../transport/messages.js';
import { endpoint, type NodeAddress, type Topology } from '../transport/topology.js';

/** Counts what a service is doing, for its heartbeats. */
export class LoadMeter {
  inflight = 0;
  served = 0;
  private readonly delay = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.delay.enable();
  }

  begin(): void {
    this.inflight++;
  }

  end(): void {
    this.inflight--;
    this.served++;
  }

  /** The load now; the event-loop delay is the p99 since the last reading. */
  read(): ServiceLoad {
    const p99 = this.delay.count > 0 ? this.delay.percentile(99) / 1e6 : 0;
    this.delay.reset();
    return { inflight: this.inflight, loopDelayMs: Math.round(p99 * 10) / 10, served: this.served, rssBytes: process.memoryUsage.rss() };
  }

  stop(): void {
    this.delay.disable();
  }
}

/** Where clients reach a service: http://host:port/ for a frontend, smtp://host:port for an SMTP node. */
export function serviceUrl(kind: ServiceKind, a: NodeAddress): string {
  return kind === 'frontend' ? `http://${a.host}:${a.port}/` : `smtp://${a.host}:${a.port}`;
}

export interface HeartbeatOptions {
  topo: Topology;
  node: string;
  kind: ServiceKind;
  meter: LoadMeter;
}

/** Starts heartbeating; returns a stop function. Without a balancer in the topology it does nothing. */
export function startServiceHeartbeat(o: HeartbeatOptions): () => Promise<void> {
  const b = o.topo.balancer;
  if (!b) return async () => {};
  const client = new RpcClient(endpoint(b.host, b.controlPort), {
    timeoutMs: Math.max(500, o.topo.web.heartbeatMs),
    maxInflight: 4,
    maxMessageBytes: 1 << 20,
    connectWaitMs: 0,
  });
  let stopped = false;
  const beat = (): void => {
    client.request({ t: 'svc_heartbeat', node: o.node, kind: o.kind, pid: process.pid, load: o.meter.read() }).catch(() => {
      // the balancer is down or restarting: the next beat tries again
    });
  };
  beat();
  const timer = setInterval(() => !stopped && beat(), o.topo.web.heartbeatMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await client.close();
  };
}
