// Everything the admin console shows about the cluster at one moment, from the sources that know:
// the master (node states, heartbeats, the tablet map), each storage node (tablets in memory, request
// metrics) and the balancer (frontends, SMTP nodes, itself). What a source cannot tell is reported as
// unknown, with the reason in `problems`; nothing is guessed.
import type { StoreClient } from '../../actors/session.js';
import type { NodeInfoRep, NodeMetrics, NodeState, ServiceLoad, StatusRep } from '../../transport/messages.js';
import { allNodes, type NodeKind, type Topology } from '../../transport/topology.js';
import type { ServicesSource } from './services.js';
import { holdings, strandedIfStopped, tabletViews, type TabletView } from './tablets.js';

export interface StorageDetail {
  held: number;
  primaries: number;
  /** Tablets in memory (from the node; null when it did not answer). */
  resident: number | null;
  /** Data requests over the last minute (null when the node did not answer). */
  metrics: NodeMetrics | null;
  /** Tablets that stopping this node would leave without a live in-sync replica. */
  strandedIfStopped: number[];
}

export interface AdminNode {
  name: string;
  kind: NodeKind;
  address: string;
  state: NodeState;
  pid: number | null;
  /** Milliseconds since its last heartbeat reached the master (storage) or the balancer (frontends, SMTP). */
  lastHeartbeatMs: number | null;
  storage?: StorageDetail;
  load?: ServiceLoad;
  balancer?: { redirects: number; noFrontend: number };
}

export interface AdminStatus {
  /** When this was gathered (ms since the epoch). */
  at: number;
  /** The frontend that answered. */
  frontend: string;
  mapVersion: number;
  tablets: number;
  replication: number;
  nodes: AdminNode[];
  tabletMap: TabletView[];
  /** Sources that did not answer. */
  problems: string[];
}

const KIND_ORDER: Record<NodeKind, number> = { master: 0, storage: 1, balancer: 2, frontend: 3, smtp: 4 };

/** Completes the master's `status` with what the storage nodes and the balancer say. */
export async function gatherStatus(status: StatusRep, store: StoreClient, services: ServicesSource, topo: Topology, frontend: string): Promise<AdminStatus> {
  const problems: string[] = [];
  const [svc, infos] = await Promise.all([services.fetch(), nodeInfos(store, status, problems)]);
  if (svc.problem) problems.push(svc.problem);
  const states = new Map(status.nodes.map((n) => [n.name, n.state]));
  const master = new Map(status.nodes.map((n) => [n.name, n]));
  const serviceByName = new Map((svc.rep?.nodes ?? []).map((s) => [s.name, s]));
  const addressOf = new Map([...topo.frontends, ...topo.smtp, ...(topo.balancer ? [topo.balancer] : [])].map((n) => [n.name, `${n.host}:${n.port}`]));

  const nodes: AdminNode[] = allNodes(topo).map(({ name, kind }) => {
    if (kind === 'master' || kind === 'storage') {
      const m = master.get(name);
      const node: AdminNode = { name, kind, address: m?.address ?? '', state: m?.state ?? 'unknown', pid: m?.pid ?? null, lastHeartbeatMs: m?.lastHeartbeatMs ?? null };
      if (kind === 'storage') {
        const info = infos.get(name);
        node.storage = { ...holdings(status.map, name), resident: info ? info.tablets.filter((t) => t.resident).length : null, metrics: info?.metrics ?? null, strandedIfStopped: strandedIfStopped(status.map, states, name) };
      }
      return node;
    }
    if (kind === 'balancer') {
      const b = svc.rep?.balancer;
      return { name, kind, address: addressOf.get(name) ?? '', state: b ? 'alive' : 'unknown', pid: b?.pid ?? null, lastHeartbeatMs: null, ...(b ? { balancer: { redirects: b.redirects, noFrontend: b.noFrontend } } : {}) };
    }
    const s = serviceByName.get(name);
    const state: NodeState = s ? (s.alive ? 'alive' : 'dead') : 'unknown';
    return { name, kind, address: s?.url ?? addressOf.get(name) ?? '', state, pid: s?.pid ?? null, lastHeartbeatMs: s?.lastHeartbeatMs ?? null, ...(s ? { load: s.load } : {}) };
  });
  nodes.sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);

  return {
    at: Date.now(),
    frontend,
    mapVersion: status.map.version,
    tablets: status.map.tablets,
    replication: status.map.replication,
    nodes,
    tabletMap: tabletViews(status.map, states),
    problems,
  };
}

/** node_info of every storage node that is up (a dead one would only cost a timeout). */
async function nodeInfos(store: StoreClient, status: StatusRep, problems: string[]): Promise<Map<string, NodeInfoRep>> {
  const out = new Map<string, NodeInfoRep>();
  const asked = status.nodes.filter((n) => n.kind === 'storage' && n.state !== 'dead' && n.state !== 'unknown');
  await Promise.all(
    asked.map(async (n) => {
      try {
        out.set(n.name, await store.nodeInfo(n.name));
      } catch (e) {
        problems.push(`${n.name} did not answer node_info: ${(e as Error).message}`);
      }
    }),
  );
  return out;
}
