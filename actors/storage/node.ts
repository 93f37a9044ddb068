// A storage node: one OS process. Its main thread heartbeats to the master (and so holds the node's
// lease), hands each worker its tablets' configurations from the map, answers control requests
// (node_info, admin stop/restart), and supervises the tablet worker threads (a worker that dies is
// restarted). The data path never touches the main thread: session actors talk to workers directly.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { errorReply, type NodeMetrics, type NodeStats, type Request, type TabletMap, type TabletReport } from '../../transport/messages.js';
import { RpcClient, RpcServer, type Respond } from '../../transport/rpc.js';
import { tabletsOfWorker } from '../../transport/partition.js';
import { endpoint, storageNode, type Topology } from '../../transport/topology.js';
import { monoNow } from '../clock.js';
import { createLogger } from '../log.js';
import { summarize, type MeterSnapshot } from './op-meter.js';
import type { TabletConfig } from './replica-core.js';
import type { FromWorker, ToWorker, WorkerConfig } from './worker.js';

interface WorkerSlot {
  config: WorkerConfig;
  worker: Worker | null;
  ready: boolean;
}

/**
 * The young generation of a tablet worker's heap. With V8's default (tens of MB) a worker that keeps
 * writes alive (table cells, the catch-up ring) ran a full mark-compact about every 100 ms on a heap of
 * ~15 MB, since incremental marking starts once the old generation's headroom is below the young
 * generation's capacity; each paused the worker 4-10 ms. With 4 MB: 6-7 mark-compacts instead of 13-23
 * per 4.5 s of R=1 1 KiB PUT @64, scavenges ~1 ms each; p99 13.6-15.6 -> 9.6-11.3 ms, in pairs of runs.
 */
const WORKER_YOUNG_GENERATION_MB = 4;

/**
 * The old generation a worker's heap starts with. V8 begins with a small allocation limit and sets the
 * next from the live heap after each mark-compact (~11 MB live here): a worker storing 1 KiB values
 * then ran a mark-compact every ~300 ms (7-15 per 4.5 s, pauses up to 9 ms); starting at 128 MB it
 * runs 2. V8 reads this when it creates an isolate, so it is set (process-wide, once) before the first
 * worker starts; Worker's resourceLimits has no such field.
 */
const WORKER_INITIAL_OLD_GENERATION_MB = 128;

export interface StorageNodeHandle {
  stop(): Promise<void>;
}

/**
 * Each tablet's share of its worker's catch-up budget (`limits.catchup_mb`): the rings of all the
 * worker's tablets together stay within it, however many tablets the topology gives the node (a fixed
 * 64 MiB per tablet allowed ~1.5 GiB per node at 24 tablets, and pinned every drive chunk written
 * since). At least 1 MiB, so a tablet can always hold a few big records for its replicas.
 */
export function ringBytesPerTablet(topo: Topology, node: number, worker: number, workers: number): number {
  const tablets = tabletsOfWorker(node, worker, { tablets: topo.cluster.tablets, nodes: topo.storage.length, workers, replication: topo.cluster.replication });
  return Math.max(1 << 20, Math.floor((topo.limits.catchupMb * 2 ** 20) / Math.max(1, tablets)));
}

export async function runStorageNode(topo: Topology, name: string, dataRoot: string): Promise<StorageNodeHandle> {
  const me = storageNode(topo, name);
  if (!me) throw new Error(`no storage node named '${name}' in ${topo.file}`);
  setFlagsFromString(`--initial-old-space-size=${WORKER_INITIAL_OLD_GENERATION_MB}`); // for the worker isolates to come
  setFlagsFromString('--expose-gc'); // their young GCs paced by bytes received (young-gc.ts)
  const log = createLogger(name);
  const dataDir = join(dataRoot, name);
  mkdirSync(dataDir, { recursive: true });
  checkLayout(dataDir, me.workerPorts.length, topo.storage.length);
  const masterEndpoint = endpoint(topo.master.host, topo.master.port);

  const resident = Math.max(1, Math.floor(topo.cluster.tabletsInMemory / me.workerPorts.length));
  const slots: WorkerSlot[] = me.workerPorts.map((port, index) => ({
    config: {
      node: name,
      index,
      workers: me.workerPorts.length,
      nodes: topo.storage.length,
      endpoint: endpoint(me.host, port),
      master: masterEndpoint,
      dataDir,
      resident,
      maxMessageBytes: topo.limits.maxMessageBytes,
      checkpointBytes: topo.limits.checkpointBytes,
      // The ring of recent records serves replicas (retransmission, catch-up tails); with one replica
      // per tablet there is nobody to serve, and a full ring only kept every write alive for the GC.
      catchupRecords: topo.cluster.replication > 1 ? topo.limits.catchupRecords : 1,
      catchupBytes: ringBytesPerTablet(topo, topo.storage.indexOf(me), index, me.workerPorts.length),
      requestMs: topo.timeouts.requestMs,
      heartbeatMs: topo.timeouts.heartbeatMs,
    },
    worker: null,
    ready: false,
  }));

  let exiting = false; // the process is shutting down
  let stopped = false; // admin stop: behaving as crashed
  let lastAssign: Extract<ToWorker, { type: 'assign' }> | null = null;
  let nextAskId = 1;
  const waiting = new Map<number, (m: FromWorker) => void>();

  function startWorker(slot: WorkerSlot): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: slot.config, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
      slot.worker = w;
      slot.ready = false;
      w.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          slot.ready = true;
          if (lastAssign !== null) w.postMessage(lastAssign);
          resolve();
        } else if (m.type === 'fatal') {
          reject(new Error(m.message));
        } else {
          waiting.get(m.id)?.(m);
        }
      });
      w.on('error', (e) => log.error({ err: e }, `worker ${slot.config.index} crashed`));
      w.on('exit', (code) => {
        if (slot.worker !== w) return;
        slot.worker = null;
        slot.ready = false;
        reject(new Error(`worker ${slot.config.index} exited during start`));
        if (exiting || stopped) return;
        log.error(`worker ${slot.config.index} exited (code ${code}); restarting in ${topo.timeouts.restartDelayMs} ms`);
        setTimeout(() => {
          if (!exiting && !stopped && slot.worker === null) startWorker(slot).catch((e: Error) => log.error(e.message));
        }, topo.timeouts.restartDelayMs);
      });
    });
  }

  /** Asks one worker something and waits (bounded) for the answer. */
  function ask(slot: WorkerSlot, msg: (id: number) => ToWorker, timeoutMs: number): Promise<FromWorker | null> {
    const w = slot.worker;
    if (!w || !slot.ready) return Promise.resolve(null);
    const id = nextAskId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(null);
      }, timeoutMs);
      waiting.set(id, (m) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(m);
      });
      w.postMessage(msg(id));
    });
  }

  /** The last report of each worker: a heartbeat does not wait long for a busy worker, it sends what it had. */
  const lastReports = new Map<WorkerSlot, Extract<FromWorker, { type: 'report' }>>();

  /**
   * Every worker's tablets and counters; with `metricsEnd` (a unix second) also the last minute's op
   * metrics. A worker that does not answer within `waitMs` is represented by its previous report.
   */
  async function collect(metricsEnd?: number, waitMs = 1000): Promise<{ tablets: TabletReport[]; stats: NodeStats; metrics: NodeMetrics | null }> {
    const replies = await Promise.all(
      slots.map(async (s) => {
        const r = await ask(s, (id) => ({ type: 'report', id, ...(metricsEnd !== undefined ? { metricsEnd } : {}) }), waitMs);
        if (r?.type === 'report') lastReports.set(s, r);
        return r ?? (s.ready ? lastReports.get(s) : undefined);
      }),
    );
    const meters: MeterSnapshot[] = [];
    const tablets: TabletReport[] = [];
    const stats: NodeStats = { received: 0, malformed: 0, oversized: 0, ops: 0 };
    for (const r of replies) {
      if (r?.type !== 'report') continue;
      tablets.push(...r.tablets);
      stats.received += r.received;
      stats.malformed += r.malformed;
      stats.oversized += r.oversized;
      stats.ops += r.ops;
      if (r.meter) meters.push(r.meter);
    }
    tablets.sort((a, b) => a.id - b.id);
    return { tablets, stats, metrics: metricsEnd !== undefined ? summarize(meters, metricsEnd) : null };
  }

  /** Stops every worker: `crash` drops memory and unsynced log appends, like kill -9 of the data path. */
  async function stopWorkers(crash: boolean): Promise<void> {
    const live = slots.filter((s) => s.worker !== null);
    await Promise.all(live.map((s) => ask(s, (id) => ({ type: 'stop', id, crash }), 10_000)));
    await Promise.all(
      live.map(async (s) => {
        const w = s.worker;
        s.worker = null;
        s.ready = false;
        await w?.terminate();
      }),
    );
  }

  async function admin(action: 'stop' | 'restart'): Promise<string> {
    if (action === 'stop') {
      if (stopped) return `${name} is already stopped`;
      stopped = true;
      lastAssign = null;
      await stopWorkers(true);
      // One last word to the master so it shows 'stopped' rather than 'dead'; then silence.
      await master.request({ t: 'heartbeat', node: name, pid: process.pid, tablets: [], stopped: true }).catch(() => undefined);
      log.warn(`${name} stopped by admin: in-memory state dropped, data path and heartbeats off`);
      return `${name} stopped`;
    }
    if (!stopped) return `${name} is running`;
    stopped = false;
    await Promise.all(slots.map(startWorker));
    void heartbeat();
    log.warn(`${name} restarted by admin: recovering from its log`);
    return `${name} restarting`;
  }

  function control(req: Request, respond: Respond): void {
    if (req.t === 'node_info') {
      const lastCompleteSecond = Math.floor(Date.now() / 1000) - 1;
      collect(lastCompleteSecond).then(
        ({ tablets, stats, metrics }) => respond({ t: 'node_info', node: name, pid: process.pid, stopped, tablets, stats, metrics: metrics ?? summarize([], lastCompleteSecond) }),
        (e: Error) => respond(errorReply('internal', e.message)),
      );
      return;
    }
    if (req.t === 'admin') {
      admin(req.action).then(
        () => respond({ t: 'ok' }),
        (e: Error) => respond(errorReply('internal', e.message)),
      );
      return;
    }
    respond(errorReply('bad_request', `${req.t} is not a control request`));
  }

  await Promise.all(slots.map(startWorker));
  const controlServer = new RpcServer({
    endpoint: endpoint(me.host, me.port),
    maxMessageBytes: 1 << 20,
    handler: control,
    onProblem: (reason) => log.warn({ reason }, 'bad control frame'),
  });
  await controlServer.start();

  // Heartbeats: tell the master we live and what we hold. Its reply is the current map and a lease:
  // this process may act as primary until (the time it SENT the heartbeat + leaseMs).
  const master = new RpcClient(masterEndpoint, {
    timeoutMs: Math.max(100, topo.timeouts.heartbeatMs * 2),
    maxInflight: 4,
    maxMessageBytes: topo.limits.maxMessageBytes,
  });
  let beating = false;
  let lastMapVersion = -1;
  async function heartbeat(): Promise<void> {
    if (beating || exiting || stopped) return;
    beating = true;
    try {
      // Heartbeats keep their period even when a worker is busy (a big checkpoint, a burst of large
      // writes): a late heartbeat would have the master declare the node dead and fail its tablets over.
      const { tablets } = await collect(undefined, Math.max(20, Math.floor(topo.timeouts.heartbeatMs / 2)));
      const sentAt = monoNow();
      const rep = await master.request({ t: 'heartbeat', node: name, pid: process.pid, tablets, stopped: false });
      if (rep.t !== 'map' || rep.map === null || stopped) return;
      lastAssign = assignmentFor(rep.map, name, rep.leaseMs > 0 ? sentAt + rep.leaseMs : -Infinity);
      if (rep.map.version !== lastMapVersion) {
        lastMapVersion = rep.map.version;
        const roles = lastAssign.configs.map(([, c]) => (c.primary === name ? 'P' : c.inSync.includes(name) ? 'r' : 'c')).join('');
        log.info(`map version ${rep.map.version}: ${lastAssign.configs.length} tablets (${roles})`);
      }
      for (const s of slots) if (s.ready) s.worker!.postMessage(lastAssign);
    } catch {
      // master unreachable: keep serving until the lease runs out, and try again next period
    } finally {
      beating = false;
    }
  }
  const beat = setInterval(() => void heartbeat(), topo.timeouts.heartbeatMs);
  void heartbeat();
  log.info(`storage node ${name} up: control ${controlServer.endpoint}, workers ${slots.map((s) => s.config.endpoint).join(' ')}`);

  return {
    async stop() {
      if (exiting) return;
      exiting = true;
      clearInterval(beat);
      await controlServer.close();
      // Workers close their sockets and checkpoint their tablets before exiting.
      await stopWorkers(false);
      await master.close();
      log.info(`storage node ${name} stopped`);
    },
  };
}

/** This node's share of the map: the configuration of every tablet it replicates. */
export function assignmentFor(map: TabletMap, node: string, leaseUntil: number): Extract<ToWorker, { type: 'assign' }> {
  const configs: Array<[number, TabletConfig]> = map.assignments
    .filter((a) => a.replicas.includes(node))
    .map((a) => [a.id, { epoch: a.epoch, primary: a.primary, replicas: a.replicas, inSync: a.inSync }]);
  return { type: 'assign', configs, nodes: map.nodes, leaseUntil };
}

/**
 * Which worker thread owns a tablet (and so which worker log holds its records) depends on the number
 * of workers per node and of storage nodes. Refuse to start on data written under another layout
 * rather than lose the records that sit in the other workers' logs.
 */
function checkLayout(dataDir: string, workers: number, nodes: number): void {
  const file = join(dataDir, 'layout.json');
  const want = { workers, nodes };
  if (!existsSync(file)) {
    writeFileSync(file, JSON.stringify(want) + '\n');
    return;
  }
  let had: { workers?: unknown; nodes?: unknown };
  try {
    had = JSON.parse(readFileSync(file, 'utf8')) as typeof had;
  } catch (e) {
    throw new Error(`${file} is unreadable (${(e as Error).message}); it should say {"workers": ${workers}, "nodes": ${nodes}} if the data was written under this topology`);
  }
  if (had.workers !== workers || had.nodes !== nodes) {
    throw new Error(
      `${dataDir} was written with ${String(had.workers)} worker threads per node and ${String(had.nodes)} storage nodes; ` +
        `the topology now has ${workers} and ${nodes}. Tablets would move between worker logs: start with the old layout, or with an empty data directory.`,
    );
  }
}
