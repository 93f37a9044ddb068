// A tablet worker thread: one ROUTER socket and the tablet actors whose id maps to this worker.
// Requests arrive straight from session actors; the node's main thread only sends assignments.
import { parentPort, workerData } from 'node:worker_threads';
import { errorReply, MAX_SCAN_LIMIT, type Request } from '../../transport/messages.js';
import { RpcServer, type Respond } from '../../transport/rpc.js';
import { workerIndex } from '../../transport/partition.js';
import { createLogger } from '../log.js';
import { TabletHost } from './tablet-host.js';

export interface WorkerConfig {
  node: string;
  index: number;
  workers: number;
  endpoint: string;
  dataDir: string;
  resident: number;
  maxMessageBytes: number;
  checkpointBytes: number;
}

export type ToWorker = { type: 'assign'; tablets: number[] } | { type: 'report'; id: number } | { type: 'stop'; id: number };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'report'; id: number; tablets: import('../../transport/messages.js').TabletReport[]; received: number; malformed: number; oversized: number; ops: number; resident: number; evictions: number }
  | { type: 'stopped'; id: number }
  | { type: 'fatal'; message: string };

const cfg = workerData as WorkerConfig;
const log = createLogger(`${cfg.node}/worker-${cfg.index}`);
const port = parentPort!;
let assignmentKnown = false;

const host = new TabletHost({
  dir: cfg.dataDir,
  resident: cfg.resident,
  maxRecordBytes: cfg.maxMessageBytes,
  checkpointBytes: cfg.checkpointBytes,
  maxScan: MAX_SCAN_LIMIT,
  mailbox: 10_000,
  log: (level, msg) => log[level](msg),
});

function handle(req: Request, respond: Respond): void {
  switch (req.t) {
    case 'get':
    case 'put':
    case 'cput':
    case 'del':
    case 'cols':
    case 'scan':
      if (!assignmentKnown) return respond(errorReply('unavailable', `${cfg.node} has not heard from the master yet`));
      if (workerIndex(req.tablet, cfg.workers) !== cfg.index || !host.isAssigned(req.tablet)) {
        return respond(errorReply('not_mine', `tablet ${req.tablet} is not served by ${cfg.node} worker ${cfg.index}`));
      }
      return host.dispatch(req, respond);
    default:
      return respond(errorReply('bad_request', `${req.t} is not served by a tablet worker`));
  }
}

const server = new RpcServer({
  endpoint: cfg.endpoint,
  maxMessageBytes: cfg.maxMessageBytes,
  handler: handle,
  onProblem: (reason) => log.warn({ reason }, 'bad frame'),
});

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'assign':
      assignmentKnown = true;
      host.setAssigned(msg.tablets.filter((t) => workerIndex(t, cfg.workers) === cfg.index));
      break;
    case 'report':
      port.postMessage({
        type: 'report',
        id: msg.id,
        tablets: host.reports(),
        ...server.stats,
        ops: host.ops,
        resident: host.residentCount,
        evictions: host.evictions,
      } satisfies FromWorker);
      break;
    case 'stop':
      void (async () => {
        await server.close();
        await host.closeAll(true);
        port.postMessage({ type: 'stopped', id: msg.id } satisfies FromWorker);
      })();
      break;
  }
});

server.start().then(
  () => port.postMessage({ type: 'ready' } satisfies FromWorker),
  (e: unknown) => {
    port.postMessage({ type: 'fatal', message: `cannot listen on ${cfg.endpoint}: ${(e as Error).message}` } satisfies FromWorker);
  },
);
