// The master process: the I/O edge of MasterCore. Its mailbox is its ROUTER socket; each request is
// handled to completion. The tablet assignments (epochs, primaries, in-sync sets) are persisted to
// <data>/<master>/assignments.json (tmp + fsync + rename) before any reply that depends on them.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errorReply, type Request } from '../transport/messages.js';
import { mapNode, workerEndpoint } from '../transport/partition.js';
import { RpcClient, RpcServer, type Respond } from '../transport/rpc.js';
import { endpoint, type Topology } from '../transport/topology.js';
import { createLogger } from './log.js';
import { firstMapVersion, MasterCore, stallMsFor, type MasterEffect, type MasterOptions, type PersistedAssignment } from './master-core.js';

export function masterOptions(topo: Topology): MasterOptions {
  return {
    tablets: topo.cluster.tablets,
    replication: topo.cluster.replication,
    storage: topo.storage.map((s) => ({ name: s.name, control: endpoint(s.host, s.port), workers: s.workerPorts.map((p) => endpoint(s.host, p)) })),
    master: { name: topo.master.name, address: endpoint(topo.master.host, topo.master.port) },
    leaseMs: topo.timeouts.leaseMs,
    leaseMarginMs: Math.max(20, Math.floor(topo.timeouts.leaseMs / 10)),
    nodeDeadMs: topo.timeouts.nodeDeadMs,
    electionTimeoutMs: Math.max(200, topo.timeouts.heartbeatMs * 3),
    rebalanceAfterMs: topo.timeouts.rebalanceAfterMs,
    stallMs: stallMsFor(topo.timeouts.nodeDeadMs, topo.timeouts.heartbeatMs),
  };
}

/** Reads the persisted assignments (and the map version then); refuses ones that do not fit the topology (it changed under the data). */
function loadAssignments(file: string, topo: Topology): { list: PersistedAssignment[]; version: number } | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const parsed = JSON.parse(text) as { assignments?: PersistedAssignment[]; version?: unknown };
  const list = parsed.assignments;
  const names = new Set(topo.storage.map((s) => s.name));
  if (!Array.isArray(list) || list.length !== topo.cluster.tablets || list.some((a) => a.replicas.length !== topo.cluster.replication || a.replicas.some((r) => !names.has(r)))) {
    throw new Error(`${file} does not match the topology (tablets, replication or storage nodes changed); move the data directory away to start afresh`);
  }
  return { list, version: typeof parsed.version === 'number' && Number.isSafeInteger(parsed.version) ? parsed.version : 0 };
}

function writeDurably(file: string, data: string): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(join(file, '..'), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export interface MasterHandle {
  stop(): Promise<void>;
}

export async function runMaster(topo: Topology, dataRoot: string): Promise<MasterHandle> {
  const log = createLogger(topo.master.name);
  const dir = join(dataRoot, topo.master.name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'assignments.json');
  const loaded = loadAssignments(file, topo);
  const core = new MasterCore(masterOptions(topo), loaded?.list ?? null, Date.now(), firstMapVersion(loaded?.version ?? 0, Date.now()));
  const clients = new Map<string, RpcClient>();
  const clientFor = (ep: string): RpcClient => {
    let c = clients.get(ep);
    if (!c) {
      c = new RpcClient(ep, { timeoutMs: 300, maxInflight: 1024, maxMessageBytes: 1 << 20 });
      clients.set(ep, c);
    }
    return c;
  };

  /** Runs the core's effects: persistence first (synchronously), then messages. */
  function run(effects: MasterEffect[]): void {
    // Each persist carries the whole assignment table: writing the newest one covers the batch.
    const persist = effects.filter((e) => e.kind === 'persist').pop();
    if (persist) writeDurably(file, JSON.stringify({ assignments: persist.assignments, version: persist.version }));
    const asks = effects.filter((e) => e.kind === 'position');
    for (const e of effects) if (e.kind === 'log') log.info(e.msg);
    if (asks.length === 0) return;
    const map = core.map(); // one copy for every ask of this batch (an election asks every in-sync replica)
    for (const e of asks) {
      const node = mapNode(map, e.node);
      if (!node) continue;
      clientFor(workerEndpoint(map, node, e.tablet))
        .request({ t: 'position', tablet: e.tablet, epoch: e.epoch })
        .then(
          (rep) => {
            core.positionReply(e.node, e.tablet, e.epoch, rep.t === 'position_rep' ? rep.lsn : null, Date.now());
            run(core.takeEffects());
          },
          () => {
            core.positionReply(e.node, e.tablet, e.epoch, null, Date.now());
            run(core.takeEffects());
          },
        );
    }
  }
  run(core.takeEffects());

  function handle(req: Request, respond: Respond): void {
    const now = Date.now();
    switch (req.t) {
      case 'heartbeat': {
        const lease = core.heartbeat(req.node, req.pid, req.tablets, req.stopped, now);
        run(core.takeEffects());
        if (lease === null) return respond(errorReply('bad_request', `unknown storage node '${req.node}'`));
        return respond({ t: 'map', map: core.map(), leaseMs: lease });
      }
      case 'map':
        core.tick(now);
        run(core.takeEffects());
        return respond({ t: 'map', map: core.map(), leaseMs: 0 });
      case 'status':
        core.tick(now);
        run(core.takeEffects());
        return respond({ t: 'status', map: core.map(), nodes: core.status(now, process.pid) });
      case 'in_sync': {
        const ok = core.inSync(req.tablet, req.node, req.epoch, now);
        run(core.takeEffects());
        return respond(ok ? { t: 'ok' } : errorReply('bad_request', `cannot mark ${req.node} in sync for tablet ${req.tablet} at epoch ${req.epoch}`));
      }
      case 'drop': {
        const ok = core.drop(req.tablet, req.node, req.epoch, now);
        run(core.takeEffects());
        return respond(ok ? { t: 'ok' } : errorReply('bad_request', `cannot drop ${req.node} from tablet ${req.tablet} at epoch ${req.epoch}`));
      }
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
    core.tick(Date.now());
    run(core.takeEffects());
  }, Math.max(20, Math.floor(topo.timeouts.heartbeatMs / 2)));
  log.info(`master up on ${server.endpoint}: ${topo.cluster.tablets} tablets, replication ${topo.cluster.replication}, ${topo.storage.length} storage nodes`);
  return {
    async stop() {
      clearInterval(ticker);
      await server.close();
      await Promise.all([...clients.values()].map((c) => c.close()));
      log.info('master stopped');
    },
  };
}
