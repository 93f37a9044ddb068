// The master: keeps the tablet map (row -> tablet -> replica set and primary), watches storage
// nodes by heartbeat, and answers "where does a row live" and "who is alive". Never on the data path.
// MasterState is the pure core (heartbeats and clock in, map and status out); runMaster is its I/O edge.
import { errorReply, type MapNode, type NodeState, type NodeStatus, type Request, type TabletAssignment, type TabletMap, type TabletReport } from '../transport/messages.js';
import { RpcServer, type Respond } from '../transport/rpc.js';
import { endpoint, type Topology } from '../transport/topology.js';
import { createLogger } from './log.js';

interface NodeRecord {
  name: string;
  lastSeen: number | null;
  pid: number | null;
  state: NodeState;
}

/** Replica sets spread evenly: tablet t lives on nodes t, t+1, ..., t+R-1 (mod N); the first is primary. */
export function initialAssignments(topo: Topology): TabletAssignment[] {
  const names = topo.storage.map((s) => s.name);
  return Array.from({ length: topo.cluster.tablets }, (_, id) => {
    const replicas = Array.from({ length: topo.cluster.replication }, (_, i) => names[(id + i) % names.length]!);
    return { id, replicas, primary: replicas[0]!, epoch: 1, lsn: {} };
  });
}

export class MasterState {
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly assignments: TabletAssignment[];
  private version = 1;

  constructor(private readonly topo: Topology) {
    for (const s of topo.storage) this.nodes.set(s.name, { name: s.name, lastSeen: null, pid: null, state: 'unknown' });
    this.assignments = initialAssignments(topo);
  }

  /** Records a heartbeat. Returns false for a node the topology does not know. */
  heartbeat(node: string, pid: number, tablets: TabletReport[], now: number): boolean {
    const rec = this.nodes.get(node);
    if (!rec) return false;
    rec.lastSeen = now;
    rec.pid = pid;
    for (const t of tablets) {
      const a = this.assignments[t.id];
      if (a && a.replicas.includes(node) && t.resident) a.lsn[node] = t.lsn;
    }
    this.tick(now);
    return true;
  }

  /** Advances the clock: nodes silent for longer than node_dead_ms are dead. Bumps the map version on change. */
  tick(now: number): void {
    for (const rec of this.nodes.values()) {
      const next: NodeState = rec.lastSeen === null ? 'unknown' : now - rec.lastSeen > this.topo.timeouts.nodeDeadMs ? 'dead' : 'alive';
      if (next !== rec.state) {
        rec.state = next;
        this.version++;
      }
    }
  }

  get mapVersion(): number {
    return this.version;
  }

  map(): TabletMap {
    const nodes: MapNode[] = this.topo.storage.map((s) => ({
      name: s.name,
      control: endpoint(s.host, s.port),
      workers: s.workerPorts.map((p) => endpoint(s.host, p)),
      state: this.nodes.get(s.name)!.state,
    }));
    return {
      version: this.version,
      tablets: this.topo.cluster.tablets,
      replication: this.topo.cluster.replication,
      assignments: this.assignments,
      nodes,
    };
  }

  status(now: number, masterPid: number): NodeStatus[] {
    const m = this.topo.master;
    const out: NodeStatus[] = [
      { name: m.name, kind: 'master', address: endpoint(m.host, m.port), state: 'alive', pid: masterPid, lastHeartbeatMs: 0 },
    ];
    for (const s of this.topo.storage) {
      const rec = this.nodes.get(s.name)!;
      out.push({
        name: s.name,
        kind: 'storage',
        address: endpoint(s.host, s.port),
        state: rec.state,
        pid: rec.pid,
        lastHeartbeatMs: rec.lastSeen === null ? null : now - rec.lastSeen,
      });
    }
    return out;
  }
}

export interface MasterHandle {
  stop(): Promise<void>;
}

export async function runMaster(topo: Topology): Promise<MasterHandle> {
  const log = createLogger(topo.master.name);
  const state = new MasterState(topo);

  // The master actor: its mailbox is the socket; each request is handled to completion, synchronously.
  function handle(req: Request, respond: Respond): void {
    const now = Date.now();
    switch (req.t) {
      case 'heartbeat':
        if (!state.heartbeat(req.node, req.pid, req.tablets, now)) {
          return respond(errorReply('bad_request', `unknown storage node '${req.node}'`));
        }
        return respond({ t: 'map', map: state.map() });
      case 'map':
        state.tick(now);
        return respond({ t: 'map', map: state.map() });
      case 'status':
        state.tick(now);
        return respond({ t: 'status', map: state.map(), nodes: state.status(now, process.pid) });
      default:
        return respond(errorReply('bad_request', `the master does not serve ${req.t}`));
    }
  }

  const server = new RpcServer({
    endpoint: endpoint(topo.master.host, topo.master.port),
    maxMessageBytes: 1 << 20,
    handler: handle,
    onProblem: (reason) => log.warn({ reason }, 'bad frame'),
  });
  await server.start();
  const ticker = setInterval(() => {
    const before = state.mapVersion;
    state.tick(Date.now());
    if (state.mapVersion !== before) {
      log.info({ nodes: state.status(Date.now(), process.pid).map((n) => `${n.name}:${n.state}`) }, 'node states changed');
    }
  }, Math.max(50, Math.floor(topo.timeouts.heartbeatMs / 2)));
  log.info(`master up on ${server.endpoint}: ${topo.cluster.tablets} tablets, replication ${topo.cluster.replication}, ${topo.storage.length} storage nodes`);
  return {
    async stop() {
      clearInterval(ticker);
      await server.close();
      log.info('master stopped');
    },
  };
}
