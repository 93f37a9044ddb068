// The transport ceiling: an RpcServer (the very class the storage workers use) whose handler answers
// every request at once with {t:'ok'}. No tablet, no log, no disk: what is left is ZeroMQ + CBOR +
// request validation + the Outbox, i.e. the cheapest round trip the store could ever offer.
//
// Started by kv-bench.ts with child_process.fork(echo-server.js, [endpoint]); reports 'ready' over IPC
// once bound, and exits when the orchestrator disconnects or sends SIGTERM.
import { RpcServer } from '../../transport/rpc.js';
import type { FromEcho } from './protocol.js';

const endpoint = process.argv[2] ?? 'tcp://127.0.0.1:17005';
const maxMessageBytes = Number(process.argv[3] ?? 32 << 20);

function tell(msg: FromEcho): void {
  process.send?.(msg);
}

const server = new RpcServer({
  endpoint,
  maxMessageBytes,
  handler: (_req, respond) => respond({ t: 'ok' }),
  onProblem: (reason) => process.stderr.write(`echo-server: ${reason}\n`),
});

async function shutdown(): Promise<void> {
  await server.close().catch(() => undefined);
  process.exit(0);
}

process.on('disconnect', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());

server.start().then(
  () => tell({ type: 'ready', endpoint }),
  (e: unknown) => {
    tell({ type: 'failed', message: `cannot bind ${endpoint}: ${(e as Error).message}` });
    process.exit(1);
  },
);
