// A tablet worker thread: one ROUTER socket and the tablet actors whose id maps to this worker.
// Requests arrive straight from session actors, peer tablets and the master; the node's main thread
// only sends the map (this worker's tablet configurations), the lease, and stop/crash orders.
import { parentPort, workerData } from 'node:worker_threads';
import { errorReply, MAX_SCAN_LIMIT, type MapNode, type Request, type TabletReport } from '../../transport/messages.js';
import { workerIndex } from '../../transport/partition.js';
import { RpcClient, RpcServer, type Respond } from '../../transport/rpc.js';
import { createLogger } from '../log.js';
import { SNAPSHOT_MAX_AGE_MS, type TabletConfig } from './replica-core.js';
import { OpMeter, type MeterSnapshot } from './op-meter.js';
import { TabletHost } from './tablet-host.js';
import { WorkerLog } from './worker-log.js';
import { ScavengePacer } from './young-gc.js';

export interface WorkerConfig {
  node: string;
  index: number;
  workers: number;
  nodes: number; // storage nodes in the topology (for workerIndex)
  endpoint: string;
  master: string;
  dataDir: string;
  resident: number;
  maxMessageBytes: number;
  checkpointBytes: number;
  catchupRecords: number;
  /** This worker's catch-up budget per tablet (ring bytes). */
  catchupBytes: number;
  requestMs: number;
  heartbeatMs: number;
}

export interface WorkerAssignment {
  configs: Array<[number, TabletConfig]>;
  nodes: MapNode[];
  leaseUntil: number;
}

/** `report` with `metricsEnd` also returns the op meter's snapshot of the minute ending with that unix second. */
export type ToWorker = ({ type: 'assign' } & WorkerAssignment) | { type: 'report'; id: number; metricsEnd?: number } | { type: 'stop'; id: number; crash: boolean };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'report'; id: number; tablets: TabletReport[]; received: number; malformed: number; oversized: number; ops: number; resident: number; evictions: number; meter?: MeterSnapshot }
  | { type: 'stopped'; id: number }
  | { type: 'fatal'; message: string };

const cfg = workerData as WorkerConfig;
const log = createLogger(`${cfg.node}/worker-${cfg.index}`);
const port = parentPort!;
let assignmentKnown = false;
let nodes = new Map<string, MapNode>();
let stopping = false;
/** Latency of the data requests clients send (not replication), for the admin console. */
const meter = new OpMeter();

// Sockets to peer workers and the master, shared by every tablet of this worker.
const clients = new Map<string, RpcClient>();
function client(ep: string): RpcClient {
  let c = clients.get(ep);
  if (!c) {
    // Tablets forward their writes together at the end of a turn (atTurnEnd, tablet.ts): waiting for the
    // end of the next one before sending held every repl batch back a whole loop iteration (a repl
    // round trip at R=3 PUT @64: 7.0-7.7 -> 5.0-6.0 ms p50).
    c = new RpcClient(ep, { timeoutMs: cfg.requestMs, maxInflight: 4096, maxMessageBytes: cfg.maxMessageBytes, connectWaitMs: 250, coalesceTurn: false });
    clients.set(ep, c);
  }
  return c;
}

// The worker's log, shared by its tablets. If it cannot be opened or fails later, the worker exits
// (fail fast) and the node restarts it, which recovers from disk.
let workerLog: WorkerLog;
try {
  workerLog = await WorkerLog.open({
    dataDir: cfg.dataDir,
    worker: cfg.index,
    owns: (t) => workerIndex(t, cfg.workers, cfg.nodes) === cfg.index,
    maxRecordBytes: cfg.maxMessageBytes,
    segmentBytes: Math.max(1 << 20, Math.floor(cfg.checkpointBytes / 4)),
    // A snapshot for a catching-up replica holds cold values for up to this long: their files stay.
    deadValueFileMs: SNAPSHOT_MAX_AGE_MS,
    onProblem: (m) => {
      log.error(m);
      if (workerLog?.failed) process.exit(1);
    },
  });
} catch (e) {
  port.postMessage({ type: 'fatal', message: `cannot open the log of worker ${cfg.index}: ${(e as Error).message}` } satisfies FromWorker);
  process.exit(1);
}

const host = new TabletHost(
  {
    me: cfg.node,
    resident: cfg.resident,
    checkpointBytes: cfg.checkpointBytes,
    logBytes: 4 * cfg.checkpointBytes,
    mailbox: 10_000,
    core: {
      me: cfg.node,
      maxScan: MAX_SCAN_LIMIT,
      ringRecords: cfg.catchupRecords,
      ringBytes: cfg.catchupBytes,
      batchBytes: Math.min(4 << 20, Math.floor(cfg.maxMessageBytes / 2)),
      maxInflightBatches: 16,
      retransmitMs: Math.max(200, cfg.heartbeatMs * 2),
      idleProbeMs: Math.max(1000, cfg.heartbeatMs * 10),
      joinerTimeoutMs: 2000,
      dropAfterMs: 1000,
      retryMs: Math.max(100, cfg.heartbeatMs),
      commitTimeoutMs: cfg.requestMs,
      deferForwarding: true,
    },
  },
  {
    send(to, tablet, req) {
      const node = nodes.get(to);
      if (!node) return Promise.reject(new Error(`unknown node ${to}`));
      return client(node.workers[workerIndex(tablet, node.workers.length, cfg.nodes)]!).request(req);
    },
    master(req) {
      return client(cfg.master).request(req);
    },
    log: (level, msg) => log[level](msg),
  },
  workerLog,
);

function handle(req: Request, respond: Respond): void {
  switch (req.t) {
    case 'get':
    case 'put':
    case 'cput':
    case 'del':
    case 'cols':
    case 'scan':
    case 'repl':
    case 'catchup':
    case 'position':
      if (stopping) return; // a crashed node answers nothing on the data path
      if (!assignmentKnown) return respond(errorReply('unavailable', `${cfg.node} has not heard from the master yet`));
      if (workerIndex(req.tablet, cfg.workers, cfg.nodes) !== cfg.index || !host.isAssigned(req.tablet)) {
        return respond(errorReply('not_mine', `tablet ${req.tablet} is not served by ${cfg.node} worker ${cfg.index}`));
      }
      if (req.t === 'repl' || req.t === 'catchup' || req.t === 'position') return host.dispatch(req, respond);
      return host.dispatch(req, metered(respond));
    default:
      return respond(errorReply('bad_request', `${req.t} is not served by a tablet worker`));
  }
}

/** Wraps a reply so its latency (from arrival here to the answer) lands in the op meter. */
function metered(respond: Respond): Respond {
  const start = performance.now();
  let answered = false;
  return (reply) => {
    if (!answered) {
      answered = true;
      const end = performance.now();
      meter.record(end - start, performance.timeOrigin + end); // wall clock without a second clock read
    }
    respond(reply);
  };
}

// Young GCs paced by the bytes received, so received chunks V8 counts as external memory do not pile up
// into a full GC every ~30 MB (young-gc.ts).
const scavenges = new ScavengePacer();
const server = new RpcServer({
  endpoint: cfg.endpoint,
  maxMessageBytes: cfg.maxMessageBytes,
  handler: handle,
  onProblem: (reason) => log.warn({ reason }, 'bad frame'),
  ...(scavenges.active ? { onBytes: (n: number) => scavenges.received(n) } : {}),
});

const ticker = setInterval(() => host.tick(), 50);

async function stop(crash: boolean): Promise<void> {
  stopping = true;
  clearInterval(ticker);
  await server.close();
  if (crash) await host.crashAll();
  else await host.closeAll(true);
  await Promise.all([...clients.values()].map((c) => c.close()));
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'assign': {
      if (stopping) return;
      assignmentKnown = true;
      nodes = new Map(msg.nodes.map((n) => [n.name, n]));
      host.setConfigs(new Map(msg.configs.filter(([t]) => workerIndex(t, cfg.workers, cfg.nodes) === cfg.index)));
      host.setLease(msg.leaseUntil);
      break;
    }
    case 'report':
      port.postMessage({
        type: 'report',
        id: msg.id,
        tablets: host.reports(),
        ...server.stats,
        ops: host.ops,
        resident: host.residentCount,
        evictions: host.evictions,
        ...(msg.metricsEnd !== undefined ? { meter: meter.snapshot(msg.metricsEnd) } : {}),
      } satisfies FromWorker);
      break;
    case 'stop':
      void stop(msg.crash).then(() => port.postMessage({ type: 'stopped', id: msg.id } satisfies FromWorker));
      break;
  }
});

server.start().then(
  () => port.postMessage({ type: 'ready' } satisfies FromWorker),
  (e: unknown) => {
    port.postMessage({ type: 'fatal', message: `cannot listen on ${cfg.endpoint}: ${(e as Error).message}` } satisfies FromWorker);
  },
);
