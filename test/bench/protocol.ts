// The IPC messages between the bench orchestrator (kv-bench.ts) and its two helper processes:
// the load generator (load-worker.ts) and the raw transport echo server (echo-server.ts).
import type { LatencySummary } from './histogram.js';

/** 'raw' is a bare RpcClient round trip to the echo server: the transport's ceiling. */
export type BenchOp = 'put' | 'get' | 'cput' | 'raw';

export interface CaseSpec {
  /** Unique name, e.g. 'put/1KiB/c64'; also the key in the JSON output. */
  name: string;
  op: BenchOp;
  valueBytes: number;
  concurrency: number;
  warmupMs: number;
  measureMs: number;
}

export interface GeneratorUsage {
  /** process.cpuUsage over the measured window, in % of one core (all threads of the process). */
  cpuPct: number;
  userPct: number;
  sysPct: number;
  /** Event loop utilisation of the generator's JS thread (0..1): near 1 means the generator itself was saturated. */
  elu: number;
}

export interface CaseResult {
  name: string;
  op: BenchOp;
  valueBytes: number;
  concurrency: number;
  /** Operations started inside the measured window that completed successfully. */
  ops: number;
  errors: number;
  firstError: string | null;
  /** From the start of the measured window until the last of its operations completed. */
  elapsedMs: number;
  opsPerSec: number;
  /** Value bytes moved per second (10^6 bytes = 1 MB); 0 for raw. */
  mbPerSec: number;
  latency: LatencySummary;
  generator: GeneratorUsage;
}

// ---- orchestrator -> load worker ----
export type ToLoad =
  | { type: 'init'; topologyFile: string; echoEndpoint: string }
  | { type: 'case'; spec: CaseSpec }
  | { type: 'stop' };

// ---- load worker -> orchestrator ----
export type FromLoad =
  | { type: 'ready' }
  /** Warm-up is over: the measured window starts now (the orchestrator samples /proc here). */
  | { type: 'measuring'; name: string }
  | { type: 'result'; result: CaseResult }
  | { type: 'failed'; message: string };

// ---- echo server -> orchestrator ----
export type FromEcho = { type: 'ready'; endpoint: string } | { type: 'failed'; message: string };
