// A storage node: one OS process. Its main thread heartbeats to the master, learns which tablets
// are its own, answers control requests, and supervises the tablet worker threads (a worker that
// dies is restarted). The data path never touches the main thread: session actors talk to workers.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { errorReply, type NodeStats, type Request, type TabletReport } from '../../transport/messages.js';
import { RpcClient, RpcServer, type Respond } from '../../transport/rpc.js';
import { endpoint, storageNode, type Topology } from '../../transport/topology.js';
import { createLogger } from '../log.js';
import type { FromWorker, ToWorker, WorkerConfig } from './worker.js';

interface WorkerSlot {
  config: WorkerConfig;
  worker: Worker | null;
  ready: boolean;
}

export interface StorageNodeHandle {
  stop(): Promise<void>;
}

export async function runStorageNode(topo: Topology, name: string, dataRoot: string): Promise<StorageNodeHandle> {
  const me = storageNode(topo, name);
  if (!me) throw new Error(`no storage node named '${name}' in ${topo.file}`);
  const log = createLogger(name);
  const dataDir = join(dataRoot, name);
  mkdirSync(dataDir, { recursive: true });

  const resident = Math.max(1, Math.floor(topo.cluster.tabletsInMemory / me.workerPorts.length));
  const slots: WorkerSlot[] = me.workerPorts.map((port, index) => ({
    config: {
      node: name,
      index,
      workers: me.workerPorts.length,
      endpoint: endpoint(me.host, port),
      dataDir,
      resident,
      maxMessageBytes: topo.limits.maxMessageBytes,
      checkpointBytes: topo.limits.checkpointBytes,
    },
    worker: null,
    ready: false,
  }));

  let stopping = false;
  let myTablets: number[] | null = null;
  let nextReportId = 1;
  const waiting = new Map<number, (m: FromWorker) => void>();

  function startWorker(slot: WorkerSlot): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: slot.config });
      slot.worker = w;
      slot.ready = false;
      w.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          slot.ready = true;
          if (myTablets !== null) w.postMessage({ type: 'assign', tablets: myTablets } satisfies ToWorker);
          resolve();
        } else if (m.type === 'fatal') {
          reject(new Error(m.message));
        } else {
          waiting.get(m.id)?.(m);
        }
      });
      w.on('error', (e) => log.error({ err: e }, `worker ${slot.config.index} crashed`));
      w.on('exit', (code) => {
        slot.worker = null;
        slot.ready = false;
        if (stopping) return;
        log.error(`worker ${slot.config.index} exited (code ${code}); restarting in ${topo.timeouts.restartDelayMs} ms`);
        setTimeout(() => {
          if (!stopping) startWorker(slot).catch((e: Error) => log.error(e.message));
        }, topo.timeouts.restartDelayMs);
        reject(new Error(`worker ${slot.config.index} exited during start`));
      });
    });
  }

  /** Asks one worker something and waits (bounded) for the answer. */
  function ask(slot: WorkerSlot, msg: (id: number) => ToWorker, timeoutMs: number): Promise<FromWorker | null> {
    const w = slot.worker;
    if (!w || !slot.ready) return Promise.resolve(null);
    const id = nextReportId++;
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

  async function collect(): Promise<{ tablets: TabletReport[]; stats: NodeStats }> {
    const replies = await Promise.all(slots.map((s) => ask(s, (id) => ({ type: 'report', id }), 1000)));
    const tablets: TabletReport[] = [];
    const stats: NodeStats = { received: 0, malformed: 0, oversized: 0, ops: 0 };
    for (const r of replies) {
      if (r?.type !== 'report') continue;
      tablets.push(...r.tablets);
      stats.received += r.received;
      stats.malformed += r.malformed;
      stats.oversized += r.oversized;
      stats.ops += r.ops;
    }
    tablets.sort((a, b) => a.id - b.id);
    return { tablets, stats };
  }

  function control(req: Request, respond: Respond): void {
    if (req.t !== 'node_info') return respond(errorReply('bad_request', `${req.t} is not a control request`));
    collect().then(
      ({ tablets, stats }) => respond({ t: 'node_info', node: name, pid: process.pid, tablets, stats }),
      (e: Error) => respond(errorReply('internal', e.message)),
    );
  }

  await Promise.all(slots.map(startWorker));
  const controlServer = new RpcServer({
    endpoint: endpoint(me.host, me.port),
    maxMessageBytes: 1 << 20,
    handler: control,
    onProblem: (reason) => log.warn({ reason }, 'bad control frame'),
  });
  await controlServer.start();

  // Heartbeats: tell the master we live and what we hold; its reply is the current tablet map.
  const master = new RpcClient(endpoint(topo.master.host, topo.master.port), {
    timeoutMs: Math.max(100, topo.timeouts.heartbeatMs * 2),
    maxInflight: 4,
    maxMessageBytes: topo.limits.maxMessageBytes,
  });
  let beating = false;
  async function heartbeat(): Promise<void> {
    if (beating || stopping) return;
    beating = true;
    try {
      const { tablets } = await collect();
      const rep = await master.request({ t: 'heartbeat', node: name, pid: process.pid, tablets });
      if (rep.t !== 'map' || rep.map === null) return;
      const mine = rep.map.assignments.filter((a) => a.replicas.includes(name)).map((a) => a.id);
      if (myTablets === null || mine.join(',') !== myTablets.join(',')) {
        myTablets = mine;
        log.info(`serving ${mine.length} tablets (map version ${rep.map.version})`);
        for (const s of slots) if (s.ready) s.worker!.postMessage({ type: 'assign', tablets: mine } satisfies ToWorker);
      }
    } catch {
      // master unreachable: keep serving what we have and try again next period
    } finally {
      beating = false;
    }
  }
  const beat = setInterval(() => void heartbeat(), topo.timeouts.heartbeatMs);
  void heartbeat();
  log.info(`storage node ${name} up: control ${controlServer.endpoint}, workers ${slots.map((s) => s.config.endpoint).join(' ')}`);

  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      clearInterval(beat);
      await master.close();
      await controlServer.close();
      // Workers close their sockets and checkpoint their tablets before exiting.
      await Promise.all(slots.map((s) => ask(s, (id) => ({ type: 'stop', id }), 10_000)));
      await Promise.all(slots.map((s) => s.worker?.terminate()));
      log.info(`storage node ${name} stopped`);
    },
  };
}
