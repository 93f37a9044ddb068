// The load generator: its own process, so the orchestrator (which watches /proc and prints) is not
// competing with it, and so its own CPU use can be measured and reported next to every result.
//
// Protocol (see protocol.ts): the orchestrator forks this file, sends 'init' (where the cluster and the
// echo server are), then one 'case' at a time; each case is a closed loop of `concurrency` lanes sharing
// ONE StoreClient (or one RpcClient for 'raw'), each lane issuing its next operation as soon as the
// previous one completes. A warm-up comes first and is not measured. State that outlives a case (which
// keys were written) lives here, so GET cases read what the PUT cases wrote.
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { StoreClient } from '../../actors/session.js';
import { RpcClient } from '../../transport/rpc.js';
import { loadTopology } from '../../transport/topology.js';
import { LatencyHistogram } from './histogram.js';
import type { CaseResult, CaseSpec, FromLoad, ToLoad } from './protocol.js';

/** Cells per value size: overwritten round-robin, so memory and disk stay bounded (~64 MB per size). */
function keyspaceFor(valueBytes: number): number {
  return Math.max(16, Math.min(20_000, Math.floor((64 << 20) / valueBytes)));
}

function rowOf(valueBytes: number, k: number): string {
  return `bench-${valueBytes}-${k}`;
}

let store: StoreClient | null = null;
let echo: RpcClient | null = null;
/** Per value size: how many distinct keys (0..n-1) the PUT cases have written so far. */
const written = new Map<number, number>();
/** One random payload per value size, shared by every PUT (the store does not look inside values). */
const payloads = new Map<number, Buffer>();

function tell(msg: FromLoad): void {
  process.send?.(msg);
}

function payload(size: number): Buffer {
  let p = payloads.get(size);
  if (!p) {
    p = randomBytes(size);
    payloads.set(size, p);
  }
  return p;
}

/** One operation of a lane; resolves when it completed (successfully, else it throws). */
type LaneOp = () => Promise<void>;

/**
 * Builds the per-lane operation for a case. Any setup that must not be measured (CPUT cells) is done
 * here, before the clock starts.
 */
async function prepare(spec: CaseSpec): Promise<(lane: number) => LaneOp> {
  const size = spec.valueBytes;
  const keys = keyspaceFor(size);
  switch (spec.op) {
    case 'raw': {
      const client = echo!;
      const req = { t: 'get' as const, tablet: 0, row: 'bench-raw', col: 'c' };
      return () => async () => {
        const rep = await client.request(req);
        if (rep.t !== 'ok') throw new Error(`echo answered ${rep.t}`);
      };
    }
    case 'put': {
      const s = store!;
      const value = payload(size);
      let next = 0; // shared by all lanes: consecutive keys, spread over rows (and so tablets and nodes)
      return () => async () => {
        const k = next++ % keys;
        await s.put(rowOf(size, k), 'v', value);
        if (k >= (written.get(size) ?? 0)) written.set(size, k + 1);
      };
    }
    case 'get': {
      const s = store!;
      const n = written.get(size) ?? 0;
      if (n === 0) throw new Error(`GET ${size} B: no PUT case wrote keys of that size first`);
      return () => async () => {
        const k = Math.floor(Math.random() * n);
        const v = await s.get(rowOf(size, k), 'v');
        if (v === null) throw new Error(`GET ${rowOf(size, k)}: not found (it was written by the PUT phase)`);
        if (v.length !== size) throw new Error(`GET ${rowOf(size, k)}: ${v.length} bytes, expected ${size}`);
      };
    }
    case 'cput': {
      // Each lane owns one cell and moves it through a chain old -> new -> newer, so every CPUT should
      // succeed; a mismatch is an error (and the lane re-reads the cell to carry on).
      const s = store!;
      const lanes = await Promise.all(
        Array.from({ length: spec.concurrency }, async (_, lane) => {
          const row = `bench-cput-${size}-${lane}`;
          const bufs = [Buffer.from(payload(size)), Buffer.from(payload(size))];
          bufs[0]!.writeUInt32LE(lane, 0);
          bufs[0]!.writeUInt32LE(0, 4);
          // Setup, not measured: a write that failed (outcome unknown on a timeout) is simply written again.
          for (let attempt = 1; ; attempt++) {
            try {
              await s.put(row, 'c', bufs[0]!);
              break;
            } catch (e) {
              if (attempt >= 5) throw e;
            }
          }
          return { row, bufs, cur: 0, seq: 0 };
        }),
      );
      return (laneIndex) => {
        const st = lanes[laneIndex]!;
        return async () => {
          const from = st.bufs[st.cur]!;
          const to = st.bufs[1 - st.cur]!;
          to.writeUInt32LE(++st.seq, 4); // differs from `from` (safe: this lane's previous op has completed)
          if (await s.cput(st.row, 'c', from, to)) {
            st.cur = 1 - st.cur;
            return;
          }
          const now = await s.get(st.row, 'c');
          if (now !== null) from.set(now.subarray(0, size));
          throw new Error(`CPUT ${st.row}: mismatch (another writer?)`);
        };
      };
    }
  }
}

async function runCase(spec: CaseSpec): Promise<CaseResult> {
  const makeOp = await prepare(spec);
  const hist = new LatencyHistogram();
  let ops = 0;
  let errors = 0;
  let firstError: string | null = null;

  const t0 = performance.now();
  const measureStart = t0 + spec.warmupMs;
  const end = measureStart + spec.measureMs;
  let cpu0 = process.cpuUsage();
  let elu0 = performance.eventLoopUtilization();
  let measuring = spec.warmupMs <= 0;
  if (measuring) tell({ type: 'measuring', name: spec.name });
  const warmupTimer = setTimeout(() => {
    measuring = true;
    cpu0 = process.cpuUsage();
    elu0 = performance.eventLoopUtilization();
    tell({ type: 'measuring', name: spec.name });
  }, spec.warmupMs);

  let lastDone = measureStart;
  async function lane(index: number): Promise<void> {
    const op = makeOp(index);
    for (;;) {
      const start = performance.now();
      if (start >= end) return;
      const counted = measuring; // operations are attributed to the window they start in
      try {
        await op();
        const done = performance.now();
        if (counted) {
          hist.recordMs(done - start);
          ops++;
          lastDone = done;
        }
      } catch (e) {
        if (counted) {
          errors++;
          firstError ??= (e as Error).message;
        }
        await new Promise((r) => setTimeout(r, 1)); // no hot loop on a failing store
      }
    }
  }
  await Promise.all(Array.from({ length: spec.concurrency }, (_, i) => lane(i)));
  clearTimeout(warmupTimer);

  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  // The window lasts at least measureMs (ops that started in it may complete after it): a case whose
  // operations all hung must not look like a 1 ms window.
  const elapsedMs = Math.max(1, Math.max(lastDone, end) - measureStart);
  const opsPerSec = (ops / elapsedMs) * 1000;
  const pct = (us: number): number => Math.round((us / 1000 / elapsedMs) * 1000) / 10;
  return {
    name: spec.name,
    op: spec.op,
    valueBytes: spec.valueBytes,
    concurrency: spec.concurrency,
    ops,
    errors,
    firstError,
    elapsedMs: Math.round(elapsedMs),
    opsPerSec: Math.round(opsPerSec),
    mbPerSec: spec.op === 'raw' ? 0 : Math.round(((opsPerSec * spec.valueBytes) / 1e6) * 10) / 10,
    latency: hist.summary(),
    generator: {
      cpuPct: pct(cpu.user + cpu.system),
      userPct: pct(cpu.user),
      sysPct: pct(cpu.system),
      elu: Math.round(elu.utilization * 1000) / 1000,
    },
  };
}

async function init(topologyFile: string, echoEndpoint: string): Promise<void> {
  const topo = loadTopology(topologyFile);
  // One StoreClient for every case: all in-flight operations share its sockets (one per worker endpoint).
  store = StoreClient.fromTopology(topo, { maxAttempts: 6 });
  await store.map(true);
  echo = new RpcClient(echoEndpoint, { timeoutMs: topo.timeouts.requestMs, maxInflight: topo.limits.maxInflight, maxMessageBytes: topo.limits.maxMessageBytes });
}

async function stop(): Promise<void> {
  await store?.close();
  await echo?.close();
  process.exit(0);
}

process.on('message', (msg: ToLoad) => {
  switch (msg.type) {
    case 'init':
      init(msg.topologyFile, msg.echoEndpoint).then(
        () => tell({ type: 'ready' }),
        (e: unknown) => tell({ type: 'failed', message: `init: ${(e as Error).message}` }),
      );
      break;
    case 'case':
      runCase(msg.spec).then(
        (result) => tell({ type: 'result', result }),
        (e: unknown) => tell({ type: 'failed', message: `${msg.spec.name}: ${(e as Error).message}` }),
      );
      break;
    case 'stop':
      void stop();
      break;
  }
});
// The orchestrator went away (crash, Ctrl-C): do not linger as an orphan.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => undefined); // Ctrl-C reaches the whole process group; the orchestrator decides
