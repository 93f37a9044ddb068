// `penncloud bench` (npm run bench): throughput and latency of the key-value store, next to the ceiling
// of its transport, on a cluster started just for the run.
//
//   node dist/test/bench/kv-bench.js [--seconds N] [--nodes N] [--port P] [--only REGEX] [--no-r3] [--profile DIR] [--keep]
//
// Two sections, each on its own cluster (one after the other, never both at once):
//   replication --replication (default 1)   the cases below on --nodes storage nodes
//   replication 3 ("r3/")                   4 storage nodes, replication 3: durable 1 KiB PUT / GET at
//                                           64 in flight (and PUT at 1 and 256), failover gap (kill -9 of a primary under
//                                           writes) and catch-up time of a restarted replica
//                                           (repl-bench.ts); --no-r3 skips it, --only r3 runs only it
//
// Processes:
//   this orchestrator   starts the clusters (TestCluster: master + storage nodes, each its own process),
//                       measures fdatasync, drives the cases, samples /proc, prints the results
//   load-worker.js      the load generator (one StoreClient, closed loop of N lanes), forked
//   echo-server.js      a bare RpcServer answering {t:'ok'}: the transport's round-trip ceiling, forked
//
// Output: a table on stdout, progress on stderr, and last one line `BENCH_JSON {...}` with every figure.
// Exit 0 when every case ran without operation errors; 1 otherwise; 130 on Ctrl-C.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { TestCluster } from '../support/cluster.js';
import { endpoint } from '../../transport/topology.js';
import { probeFsync, type FsyncProbe } from './fsync-probe.js';
import { machineBusyPct, machineStealPct, sampleMachine, sampleProcess, usageBetween, type ProcSample, type ProcUsage } from './proc-stats.js';
import type { CaseResult, CaseSpec, FromEcho, FromLoad, ToLoad } from './protocol.js';
import { measureCatchup, measureFailover, waitHealthy, type CatchupResult, type FailoverResult } from './repl-bench.js';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

interface Options {
  seconds: number; // measured seconds per case
  warmupSeconds: number;
  clusterWarmupSeconds: number; // unmeasured-for-targets writes into the fresh replication-3 cluster before its cases
  nodes: number;
  basePort: number;
  tablets: number;
  replication: number;
  workerThreads: number;
  only: RegExp | null; // run only the cases whose name matches
  profileDir: string | null; // --cpu-prof every cluster node and the generator into this directory
  keep: boolean; // keep the cluster's temp dir (logs, data)
  r3: boolean; // run the replication-3 section
  r3Port: number; // base port of its cluster
}

const USAGE = `usage: kv-bench [--seconds N] [--warmup S] [--nodes N] [--port P] [--tablets N] [--replication N]
                [--workers N] [--only REGEX] [--no-r3] [--r3-port P] [--profile DIR] [--keep]
  --seconds N      measured seconds per case (default 3)
  --warmup S       unmeasured warm-up seconds per case (default min(0.5, seconds/4))
  --cluster-warmup S  seconds of 1 KiB PUT @64 into the fresh replication-3 cluster before its cases,
                   reported as r3/warmup/... and not a target (default 3; 0: none)
  --nodes N        storage nodes (default 2)
  --port P         base port of the bench cluster (default 17000; echo server on P+5)
  --tablets N      tablets (default 16)     --replication N   replicas per tablet (default 1)
  --workers N      worker threads per storage node (default 1)
  --only REGEX     run only the cases whose name matches (e.g. 1KiB, '^put/', 'raw|/c64', '^r3/'); PUTs that GETs need still run
  --no-r3          skip the replication-3 section (its own 4-node cluster: r3/put, r3/get, r3/failover, r3/catchup)
  --r3-port P      base port of the replication-3 cluster (default: --port + 500)
  --profile DIR    run every cluster node and the generator with --cpu-prof, profiles into DIR
  --keep           keep the cluster's temporary directory (node logs) afterwards`;

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 3, warmupSeconds: -1, clusterWarmupSeconds: 3, nodes: 2, basePort: 17000, tablets: 16, replication: 1, workerThreads: 1, only: null, profileDir: null, keep: false, r3: true, r3Port: -1 };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) throw new Error(`${flag} needs a number >= ${min}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    switch (a) {
      case '--seconds': o.seconds = num(a, v, 0.1); i++; break;
      case '--warmup': o.warmupSeconds = num(a, v, 0); i++; break;
      case '--cluster-warmup': o.clusterWarmupSeconds = num(a, v, 0); i++; break;
      case '--nodes': o.nodes = Math.floor(num(a, v, 1)); i++; break;
      case '--port': o.basePort = Math.floor(num(a, v, 1024)); i++; break;
      case '--tablets': o.tablets = Math.floor(num(a, v, 1)); i++; break;
      case '--replication': o.replication = Math.floor(num(a, v, 1)); i++; break;
      case '--workers': o.workerThreads = Math.floor(num(a, v, 1)); i++; break;
      case '--only': if (v === undefined) throw new Error(`--only needs a value\n${USAGE}`); o.only = new RegExp(v); i++; break;
      case '--profile': if (v === undefined) throw new Error(`--profile needs a directory\n${USAGE}`); o.profileDir = resolve(v); i++; break;
      case '--keep': o.keep = true; break;
      case '--no-r3': o.r3 = false; break;
      case '--r3-port': o.r3Port = Math.floor(num(a, v, 1024)); i++; break;
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0); break;
      default: throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  if (o.replication > o.nodes) throw new Error(`--replication ${o.replication} needs at least as many --nodes`);
  if (o.warmupSeconds < 0) o.warmupSeconds = Math.min(0.5, o.seconds / 4);
  if (o.r3Port < 0) o.r3Port = o.basePort + 500;
  return o;
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

const KiB = 1024;
const MiB = 1024 * 1024;

function sizeLabel(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB}MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB}KiB`;
  return `${bytes}B`;
}

function buildCases(o: Options): CaseSpec[] {
  const warmupMs = Math.round(o.warmupSeconds * 1000);
  const measureMs = Math.round(o.seconds * 1000);
  const spec = (op: CaseSpec['op'], valueBytes: number, concurrency: number): CaseSpec => ({
    name: op === 'raw' ? `raw/c${concurrency}` : `${op}/${sizeLabel(valueBytes)}/c${concurrency}`,
    op,
    valueBytes,
    concurrency,
    warmupMs,
    measureMs,
  });
  // The transport ceiling first, on a quiet cluster.
  const cases = [spec('raw', 0, 1), spec('raw', 0, 64)];
  for (const size of [100, KiB, 64 * KiB]) {
    for (const c of [1, 64]) cases.push(spec('put', size, c));
    for (const c of [1, 64]) cases.push(spec('get', size, c));
    for (const c of [1, 64]) cases.push(spec('cput', size, c));
  }
  cases.push(spec('put', MiB, 8), spec('get', MiB, 8));
  if (o.only === null) return cases;
  const only = o.only;
  const selected = new Set(cases.filter((c) => only.test(c.name)));
  // GETs read what PUTs wrote: keep one PUT case for every value size a selected GET reads.
  for (const get of [...selected].filter((c) => c.op === 'get')) {
    if (![...selected].some((c) => c.op === 'put' && c.valueBytes === get.valueBytes)) {
      selected.add(cases.find((c) => c.op === 'put' && c.valueBytes === get.valueBytes)!);
    }
  }
  return cases.filter((c) => selected.has(c));
}

/** The replication-3 section: its closed-loop cases (named r3/...) and whether to measure failover and catch-up. */
const R3_NODES = 4;
interface R3Plan {
  /** Run first and reported, but no target reads it: the fresh cluster's first seconds under load. */
  warmup: CaseSpec | null;
  cases: CaseSpec[];
  failover: boolean;
  catchup: boolean;
}

function buildR3Plan(o: Options): R3Plan {
  if (!o.r3) return { warmup: null, cases: [], failover: false, catchup: false };
  const warmupMs = Math.round(o.warmupSeconds * 1000);
  const measureMs = Math.round(o.seconds * 1000);
  const spec = (op: CaseSpec['op'], concurrency: number): CaseSpec => ({ name: `r3/${op}/1KiB/c${concurrency}`, op, valueBytes: KiB, concurrency, warmupMs, measureMs });
  // @256 is not a target: next to @64 it shows how much of a write's cost is per batch (per message
  // and per flush) rather than per write, i.e. what bigger batches buy on this machine.
  const all = [spec('put', 1), spec('put', 64), spec('get', 64), spec('put', 256)];
  // A fresh cluster's first 1.5-2.5 s under load run at half speed with a long tail (session 11: 4-8k
  // ops/s and p99 25-38 ms, then 11-13k and p99 12-17 ms): four storage nodes and the generator
  // JIT-compile the write path at once on this machine's two cores (--trace-opt: ~100 optimisations
  // and deopts per second per node in those seconds, a few afterwards). Idle time before the load does
  // not shorten it; load does. The targets are steady-state figures, so the cases start after it, and
  // the warm-up is printed with the rest.
  const warmup: CaseSpec | null =
    o.clusterWarmupSeconds > 0 ? { name: 'r3/warmup/put/1KiB/c64', op: 'put', valueBytes: KiB, concurrency: 64, warmupMs: 0, measureMs: Math.round(o.clusterWarmupSeconds * 1000) } : null;
  const only = o.only;
  if (only === null) return { warmup, cases: all, failover: true, catchup: true };
  const cases = all.filter((c) => only.test(c.name));
  if (cases.some((c) => c.op === 'get') && !cases.some((c) => c.op === 'put' && c.concurrency === 64)) cases.unshift(all[1]!);
  return { warmup: cases.length > 0 ? warmup : null, cases: all.filter((c) => cases.includes(c)), failover: only.test('r3/failover'), catchup: only.test('r3/catchup') };
}

interface Target {
  name: string;
  caseName: string;
  metric: 'opsPerSec' | 'p50Ms' | 'p99Ms' | 'failoverGapMs' | 'catchupMs';
  cmp: '>=' | '<';
  goal: number;
}

const TARGETS: Target[] = [
  { name: '1 KiB PUT @64 ops/s', caseName: 'put/1KiB/c64', metric: 'opsPerSec', cmp: '>=', goal: 15_000 },
  { name: '1 KiB PUT @64 p99', caseName: 'put/1KiB/c64', metric: 'p99Ms', cmp: '<', goal: 10 },
  { name: '1 KiB GET @64 ops/s', caseName: 'get/1KiB/c64', metric: 'opsPerSec', cmp: '>=', goal: 25_000 },
  { name: '1 KiB GET @64 p99', caseName: 'get/1KiB/c64', metric: 'p99Ms', cmp: '<', goal: 10 },
  { name: '1 KiB GET @1 p50', caseName: 'get/1KiB/c1', metric: 'p50Ms', cmp: '<', goal: 0.5 },
  { name: 'R=3 1 KiB PUT @64 ops/s', caseName: 'r3/put/1KiB/c64', metric: 'opsPerSec', cmp: '>=', goal: 10_000 },
  { name: 'R=3 1 KiB PUT @64 p99', caseName: 'r3/put/1KiB/c64', metric: 'p99Ms', cmp: '<', goal: 20 },
  { name: 'R=3 1 KiB GET @64 ops/s', caseName: 'r3/get/1KiB/c64', metric: 'opsPerSec', cmp: '>=', goal: 20_000 },
  { name: 'R=3 failover gap (kill -9 primary)', caseName: 'r3/failover', metric: 'failoverGapMs', cmp: '<', goal: 1000 },
  { name: 'R=3 catch-up of 10k x 1 KiB', caseName: 'r3/catchup', metric: 'catchupMs', cmp: '<', goal: 2000 },
];

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/** Resolves with the first IPC message of `child` that `pick` accepts; rejects if the child exits first. */
function nextMessage<M, T>(child: ChildProcess, pick: (m: M) => T | undefined, what: string): Promise<T> {
  return new Promise((resolvePick, reject) => {
    const onMessage = (m: M): void => {
      const v = pick(m);
      if (v === undefined) return;
      cleanup();
      resolvePick(v);
    };
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup();
      reject(new Error(`${what}: the process exited (code ${code}, signal ${signal})`));
    };
    const cleanup = (): void => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

function forkSibling(file: string, args: string[], execArgv: string[]): ChildProcess {
  const path = fileURLToPath(new URL(file, import.meta.url));
  if (!existsSync(path)) throw new Error(`${path} is missing: build first (npx tsc -p .)`);
  return fork(path, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
}

/** Fails fast (instead of a 20 s wait for nodes that cannot bind) when a port of the bench is taken. */
async function assertPortsFree(ports: number[]): Promise<void> {
  for (const port of ports) {
    await new Promise<void>((ok, fail) => {
      const srv = createServer();
      srv.once('error', () => fail(new Error(`port ${port} is in use (another bench or test cluster running?); pick another --port`)));
      srv.listen(port, '127.0.0.1', () => srv.close(() => ok()));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

interface CaseRecord extends CaseResult {
  /** CPU of the other processes during the measured window (% of one core), from /proc. */
  procs: Record<string, ProcUsage | null>;
  /** Whole-machine busy % (100 = every core busy). */
  machineBusyPct: number | null;
  /** CPU used by processes outside this bench during the window (% of one core): non-zero means a noisy machine. */
  otherPct: number | null;
  stealPct: number | null;
  /** Storage node names of the cluster the case ran on. */
  storage: string[];
}

/** The results of the replication-3 section beyond its closed-loop cases. */
interface R3Results {
  clusterDir: string;
  failover: FailoverResult | null;
  catchup: CatchupResult | null;
  problems: string[];
}

/** What is running; everything in here is stopped on exit, error or Ctrl-C. */
interface Resources {
  clusters: TestCluster[];
  children: ChildProcess[];
}

const res: Resources = { clusters: [], children: [] };
let cleaning: Promise<void> | null = null;

const loadChildren = new WeakSet<ChildProcess>();

async function stopChild(child: ChildProcess): Promise<void> {
  const loadChild = loadChildren.has(child) ? child : null;
  res.children = res.children.filter((c) => c !== child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  // The load generator closes its client and exits on 'stop'; the echo server on SIGTERM.
  if (child === loadChild && child.connected) child.send({ type: 'stop' } satisfies ToLoad);
  else child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

async function stopCluster(cluster: TestCluster, keep: boolean): Promise<void> {
  res.clusters = res.clusters.filter((c) => c !== cluster);
  await cluster.stop(keep);
}

/** Stops everything this run started; safe to call more than once (error path, Ctrl-C). */
function cleanup(keep: boolean): Promise<void> {
  cleaning ??= (async () => {
    for (const child of [...res.children]) await stopChild(child);
    for (const cluster of [...res.clusters]) await stopCluster(cluster, keep);
  })();
  return cleaning;
}

function log(line: string): void {
  process.stderr.write(line + '\n');
}

async function startCluster(o: Options, basePort: number, nodes: number, replication: number): Promise<TestCluster> {
  const workerPorts = (i: number): number[] => Array.from({ length: o.workerThreads + 1 }, (_, w) => basePort + i * 10 + w);
  await assertPortsFree([basePort, basePort + 5, ...Array.from({ length: nodes }, (_, i) => workerPorts(i + 1)).flat()]);
  const cluster = new TestCluster({ basePort, storageNodes: nodes, tablets: o.tablets, replication, workerThreads: o.workerThreads });
  res.clusters.push(cluster);
  log(`bench: cluster dir ${cluster.dir}; ${nodes} storage nodes, ${o.tablets} tablets, replication ${replication}, ${o.workerThreads} worker threads; ${cpus().length} CPUs`);
  return cluster;
}

/** Starts the cluster's processes (profiled when asked); the forks made afterwards are not profiled. */
async function bootCluster(o: Options, cluster: TestCluster, label: string): Promise<string | null> {
  let profileNote: string | null = null;
  const userNodeOptions = process.env['NODE_OPTIONS'];
  if (o.profileDir !== null) {
    mkdirSync(o.profileDir, { recursive: true });
    // Inherited by the node processes TestCluster spawns (`--cpu-prof` itself is not allowed in NODE_OPTIONS,
    // so a preload starts the profiler in each thread); removed again for the forks below.
    const preload = fileURLToPath(new URL('./cpu-prof-preload.js', import.meta.url));
    process.env['NODE_OPTIONS'] = `${process.env['NODE_OPTIONS'] ?? ''} --import=${preload}`.trim();
    process.env['PENNCLOUD_PROF_DIR'] = resolve(o.profileDir, label);
    profileNote = `CPU profiles in ${o.profileDir}/{${label},generator}; summary: node ${fileURLToPath(new URL('./prof-summary.js', import.meta.url))} ${o.profileDir}`;
  }
  const startedAt = performance.now();
  try {
    await cluster.start();
  } finally {
    // The forks below (echo server, generator) must not load the cluster's profiler preload.
    if (userNodeOptions === undefined) delete process.env['NODE_OPTIONS'];
    else process.env['NODE_OPTIONS'] = userNodeOptions;
    delete process.env['PENNCLOUD_PROF_DIR'];
  }
  log(`bench: cluster up in ${Math.round(performance.now() - startedAt)} ms`);
  return profileNote;
}

/** Forks the load generator and points it at `cluster`. */
async function startLoad(o: Options, cluster: TestCluster, echoEndpoint: string): Promise<ChildProcess> {
  const genExecArgv = o.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(o.profileDir, 'generator')}`];
  const load = forkSibling('./load-worker.js', [], genExecArgv);
  res.children.push(load);
  loadChildren.add(load);
  load.send({ type: 'init', topologyFile: cluster.topologyFile, echoEndpoint } satisfies ToLoad);
  await nextMessage<FromLoad, FromLoad>(load, (m) => (m.type === 'ready' || m.type === 'failed' ? m : undefined), 'load generator').then((m) => {
    if (m.type === 'failed') throw new Error(`load generator: ${m.message}`);
  });
  return load;
}

/** Runs `cases` one after the other on the load generator, sampling every process of `pids()` around each. */
async function runCases(load: ChildProcess, cases: CaseSpec[], pids: () => Record<string, number | undefined>, storage: string[]): Promise<CaseRecord[]> {
  const records: CaseRecord[] = [];
  for (const spec of cases) {
    load.send({ type: 'case', spec } satisfies ToLoad);
    // Sample every process when the measured window opens and again when the result arrives.
    let before: Record<string, ProcSample | null> = {};
    let machineBefore = sampleMachine();
    let windowStart = performance.now();
    const outcome = await new Promise<CaseResult>((resolveCase, reject) => {
      const onMessage = (m: FromLoad): void => {
        if (m.type === 'measuring') {
          windowStart = performance.now();
          machineBefore = sampleMachine();
          before = Object.fromEntries(Object.entries(pids()).map(([k, pid]) => [k, sampleProcess(pid)]));
        } else if (m.type === 'result' || m.type === 'failed') {
          load.off('message', onMessage);
          load.off('exit', onExit);
          if (m.type === 'result') resolveCase(m.result);
          else reject(new Error(m.message));
        }
      };
      const onExit = (): void => reject(new Error('the load generator exited'));
      load.on('message', onMessage);
      load.once('exit', onExit);
    });
    const wallMs = performance.now() - windowStart;
    const procs: Record<string, ProcUsage | null> = {};
    for (const [k, pid] of Object.entries(pids())) procs[k] = usageBetween(before[k] ?? null, sampleProcess(pid), wallMs);
    const machineAfter = sampleMachine();
    const busy = machineBusyPct(machineBefore, machineAfter);
    const stealPct = machineStealPct(machineBefore, machineAfter);
    const ours = Object.values(procs).reduce((sum, u) => sum + (u?.pct ?? 0), 0);
    const otherPct = busy === null ? null : Math.max(0, Math.round(busy * cpus().length - ours));
    const rec: CaseRecord = { ...outcome, procs, machineBusyPct: busy, otherPct, stealPct, storage };
    records.push(rec);
    log(`  ${progressLine(rec)}`);
  }
  return records;
}

function clusterPids(cluster: TestCluster, extra: Record<string, ChildProcess>): () => Record<string, number | undefined> {
  return () => {
    const p: Record<string, number | undefined> = { [cluster.topo.master.name]: cluster.pid(cluster.topo.master.name) };
    for (const n of cluster.storageNames) p[n] = cluster.pid(n);
    for (const [k, c] of Object.entries(extra)) p[k] = c.pid;
    p['bench'] = process.pid;
    return p;
  };
}

async function run(o: Options): Promise<number> {
  const cases = buildCases(o);
  const r3 = buildR3Plan(o);
  const r3Runs = r3.cases.length > 0 || r3.failover || r3.catchup;
  const expected = [...cases, ...r3.cases, ...(r3.warmup ? [r3.warmup] : [])].reduce((s, c) => s + c.warmupMs + c.measureMs, 0) / 1000 + (r3Runs ? 15 : 0);
  log(`bench: ${cases.length} cases with replication ${o.replication}${r3Runs ? `, then the replication-3 section (${r3.cases.length} cases${r3.failover ? ', failover gap' : ''}${r3.catchup ? ', catch-up' : ''})` : ''}; about ${Math.round(expected)} s`);
  const records: CaseRecord[] = [];
  const profileNotes: string[] = [];
  let fsync: FsyncProbe | null = null;
  const echoEndpoint = endpoint('127.0.0.1', o.basePort + 5);

  // ---- section 1: replication o.replication, o.nodes storage nodes ----
  if (cases.length > 0) {
    const cluster = await startCluster(o, o.basePort, o.nodes, o.replication);
    // The disk floor, measured while nothing else runs.
    fsync = await probeFsync(cluster.dir, 300, 1024, o.tablets);
    logFsync(fsync, o.tablets);
    const note = await bootCluster(o, cluster, 'cluster');
    if (note) profileNotes.push(note);

    // The echo server: the same RpcServer as the storage workers, minus the store.
    const echo = forkSibling('./echo-server.js', [echoEndpoint, String(cluster.topo.limits.maxMessageBytes)], []);
    res.children.push(echo);
    await nextMessage<FromEcho, FromEcho>(echo, (m) => m, 'echo server').then((m) => {
      if (m.type === 'failed') throw new Error(`echo server: ${m.message}`);
    });
    const load = await startLoad(o, cluster, echoEndpoint);
    records.push(...(await runCases(load, cases, clusterPids(cluster, { echo, generator: load }), cluster.storageNames)));
    await stopChild(load);
    await stopChild(echo);
    await stopCluster(cluster, o.keep);
    if (o.keep) log(`bench: cluster files kept in ${cluster.dir}`);
  }

  // ---- section 2: replication 3 on 4 storage nodes ----
  let r3Results: R3Results | null = null;
  if (r3Runs) {
    log('bench: replication-3 section');
    const cluster = await startCluster(o, o.r3Port, R3_NODES, 3);
    if (fsync === null) {
      fsync = await probeFsync(cluster.dir, 300, 1024, o.tablets);
      logFsync(fsync, o.tablets);
    }
    const note = await bootCluster(o, cluster, 'cluster-r3');
    if (note) profileNotes.push(note);
    r3Results = { clusterDir: cluster.dir, failover: null, catchup: null, problems: [] };
    const admin = cluster.client();
    try {
      // Every tablet fully replicated before measuring: a PUT then waits for all three copies.
      await waitHealthy(admin, 20_000);
      if (r3.cases.length > 0) {
        const load = await startLoad(o, cluster, echoEndpoint);
        records.push(...(await runCases(load, [...(r3.warmup ? [r3.warmup] : []), ...r3.cases], clusterPids(cluster, { generator: load }), cluster.storageNames)));
        await stopChild(load);
      }
      if (r3.failover) {
        try {
          r3Results.failover = await measureFailover(cluster, admin, { lanes: 16, valueBytes: KiB, beforeMs: 1500, afterMs: 3000, log });
          log(`  ${failoverLine(r3Results.failover)}`);
        } catch (e) {
          r3Results.problems.push(`failover: ${(e as Error).message}`);
          log(`bench r3: failover measurement failed: ${(e as Error).message}`);
        }
      }
      if (r3.catchup) {
        try {
          r3Results.catchup = await measureCatchup(cluster, admin, { writes: 10_000, valueBytes: KiB, concurrency: 64, pollMs: 25, log });
          log(`  ${catchupLine(r3Results.catchup)}`);
        } catch (e) {
          r3Results.problems.push(`catch-up: ${(e as Error).message}`);
          log(`bench r3: catch-up measurement failed: ${(e as Error).message}`);
        }
      }
    } finally {
      await admin.close();
    }
    const keep = o.keep || r3Results.problems.length > 0;
    await stopCluster(cluster, keep);
    if (keep) log(`bench: replication-3 cluster files kept in ${cluster.dir}`);
  }

  for (const note of profileNotes) log(`bench: ${note}`);
  const report = buildReport(o, records, fsync, r3Results);
  process.stdout.write(renderReport(report, records) + '\n');
  process.stdout.write(`BENCH_JSON ${JSON.stringify(report)}\n`);
  return records.some((r) => r.errors > 0) || (r3Results?.problems.length ?? 0) > 0 ? 1 : 0;
}

function logFsync(fsync: FsyncProbe, tablets: number): void {
  log(`bench: fdatasync of a 1 KiB append: p50 ${fmt(fsync.sync.p50Ms)} ms, p99 ${fmt(fsync.sync.p99Ms)} ms (via libuv: p50 ${fmt(fsync.async.p50Ms)} ms; ${tablets} files at once: ${fsync.parallel.flushesPerSec} flushes/s)`);
}

function failoverLine(f: FailoverResult): string {
  return `r3/failover    kill -9 ${f.node}: longest gap between successful writes ${fmt(f.maxGapMs)} ms, kill to first write ok ${fmt(f.killToFirstOkMs)} ms; errors ${JSON.stringify(f.errors)}; rejoined in ${fmt(f.rejoinMs)} ms`;
}

function catchupLine(c: CatchupResult): string {
  return `r3/catchup     ${c.node}: ${c.writes} x ${c.valueBytes} B written while stopped (${c.writeMs} ms, ${c.writeErrors} errors, ${c.recordsBehind ?? '?'} records behind); admin restart to in sync on ${c.tablets} tablets: ${c.catchupMs} ms`;
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '-';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  if (Math.abs(x) >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function nodesPct(r: CaseRecord): number | null {
  if (r.op === 'raw') return r.procs['echo']?.pct ?? null;
  let sum = 0;
  for (const n of r.storage) {
    const u = r.procs[n];
    if (!u) return null;
    sum += u.pct;
  }
  return Math.round(sum * 10) / 10;
}

/** Context switches per operation in the storage nodes (echo server for raw/*), or in the generator. */
function ctxPerOp(r: CaseRecord, who: 'nodes' | 'generator'): number | null {
  if (r.ops === 0) return null;
  const names = who === 'generator' ? ['generator'] : r.op === 'raw' ? ['echo'] : r.storage;
  let sum = 0;
  for (const n of names) {
    const u = r.procs[n];
    if (!u) return null;
    sum += u.ctxSwitches;
  }
  return Math.round((sum / r.ops) * 10) / 10;
}

function progressLine(r: CaseRecord): string {
  return `${r.name.padEnd(14)} ${String(r.opsPerSec).padStart(7)} ops/s  p50 ${fmt(r.latency.p50Ms)} ms  p99 ${fmt(r.latency.p99Ms)} ms  gen cpu ${r.generator.cpuPct}%  ${r.op === 'raw' ? 'echo' : 'nodes'} cpu ${nodesPct(r) ?? '-'}%${r.errors ? `  ERRORS ${r.errors}: ${r.firstError}` : ''}`;
}

interface TargetOutcome {
  name: string;
  case: string;
  goal: string;
  actual: number | null;
  /** False when the case or measurement did not run (--only, --no-r3): such a target is left out of `pass`. */
  ran: boolean;
  pass: boolean;
}

function buildReport(o: Options, records: CaseRecord[], fsync: FsyncProbe | null, r3: R3Results | null) {
  const byName = new Map(records.map((r) => [r.name, r]));
  const caseJson = (r: CaseRecord) => ({
    op: r.op,
    valueBytes: r.valueBytes,
    concurrency: r.concurrency,
    ops: r.ops,
    errors: r.errors,
    firstError: r.firstError,
    elapsedMs: r.elapsedMs,
    opsPerSec: r.opsPerSec,
    mbPerSec: r.mbPerSec,
    p50Ms: r.latency.p50Ms,
    p90Ms: r.latency.p90Ms,
    p99Ms: r.latency.p99Ms,
    p999Ms: r.latency.p999Ms,
    maxMs: r.latency.maxMs,
    meanMs: Math.round(r.latency.meanMs * 1000) / 1000,
    generator: r.generator,
    nodesCpuPct: nodesPct(r),
    /** Context switches per operation: each one is a thread hand-off (ZeroMQ I/O thread, libuv pool, worker). */
    nodesCtxSwitchesPerOp: ctxPerOp(r, 'nodes'),
    generatorCtxSwitchesPerOp: ctxPerOp(r, 'generator'),
    machineBusyPct: r.machineBusyPct,
    otherCpuPct: r.otherPct,
    stealPct: r.stealPct,
    procs: r.procs,
  });
  const targets: TargetOutcome[] = TARGETS.map((t) => {
    let actual: number | null;
    let ran: boolean;
    if (t.metric === 'failoverGapMs') {
      ran = r3?.failover !== null && r3?.failover !== undefined;
      actual = r3?.failover?.maxGapMs ?? null;
    } else if (t.metric === 'catchupMs') {
      ran = r3?.catchup !== null && r3?.catchup !== undefined;
      actual = r3?.catchup?.catchupMs ?? null;
    } else {
      const r = byName.get(t.caseName);
      ran = r !== undefined;
      // A case in which no operation completed has no latency to speak of (not 0 ms): a miss.
      actual = r === undefined || (r.ops === 0 && t.metric !== 'opsPerSec') ? null : t.metric === 'opsPerSec' ? r.opsPerSec : t.metric === 'p50Ms' ? r.latency.p50Ms : r.latency.p99Ms;
    }
    // A measurement that was asked for but failed counts as ran (and missed).
    if (!ran && ((t.metric === 'failoverGapMs' && r3?.problems.some((p) => p.startsWith('failover'))) || (t.metric === 'catchupMs' && r3?.problems.some((p) => p.startsWith('catch-up'))))) ran = true;
    const pass = actual !== null && (t.cmp === '>=' ? actual >= t.goal : actual < t.goal);
    return { name: t.name, case: t.caseName, goal: `${t.cmp} ${t.goal}${t.metric === 'opsPerSec' ? ' ops/s' : ' ms'}`, actual, ran, pass };
  });
  const raw1 = byName.get('raw/c1');
  const raw64 = byName.get('raw/c64');
  const get1 = byName.get('get/1KiB/c1');
  const get64 = byName.get('get/1KiB/c64');
  const put1 = byName.get('put/1KiB/c1');
  const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined || b === 0 ? null : Math.round((a / b) * 100) / 100);
  const gens = records.map((r) => r.generator);
  return {
    version: 1,
    config: { nodes: o.nodes, tablets: o.tablets, replication: o.replication, workerThreads: o.workerThreads, secondsPerCase: o.seconds, warmupSeconds: o.warmupSeconds, clusterWarmupSeconds: o.clusterWarmupSeconds, cpus: cpus().length, node: process.version },
    cases: Object.fromEntries(records.map((r) => [r.name, caseJson(r)])),
    throughput: {
      put1MiBMBps: byName.get('put/1MiB/c8')?.mbPerSec ?? null,
      get1MiBMBps: byName.get('get/1MiB/c8')?.mbPerSec ?? null,
    },
    raw: {
      c1: raw1 ? { opsPerSec: raw1.opsPerSec, p50Ms: raw1.latency.p50Ms, p99Ms: raw1.latency.p99Ms } : null,
      c64: raw64 ? { opsPerSec: raw64.opsPerSec, p50Ms: raw64.latency.p50Ms, p99Ms: raw64.latency.p99Ms } : null,
    },
    fsync: fsync && {
      appends: fsync.appends,
      appendBytes: fsync.appendBytes,
      p50Ms: fsync.sync.p50Ms,
      p99Ms: fsync.sync.p99Ms,
      meanMs: Math.round(fsync.sync.meanMs * 1000) / 1000,
      viaLibuvP50Ms: fsync.async.p50Ms,
      viaLibuvP99Ms: fsync.async.p99Ms,
      parallelFiles: fsync.parallel.files,
      parallelFlushesPerSec: fsync.parallel.flushesPerSec,
      parallelP50Ms: fsync.parallel.latency.p50Ms,
      parallelP99Ms: fsync.parallel.latency.p99Ms,
    },
    hints: {
      /** 1 KiB GET latency at 1 in flight over the bare transport round trip: the store's own overhead. */
      getOverRawP50C1: ratio(get1?.latency.p50Ms, raw1?.latency.p50Ms),
      /** Bare transport req/s over 1 KiB GET ops/s at 64 in flight. */
      rawOverGetOpsC64: ratio(raw64?.opsPerSec, get64?.opsPerSec),
      /** 1 KiB PUT p50 at 1 in flight minus (fdatasync p50 + raw round trip p50): time not explained by disk + wire. */
      putC1UnexplainedMs: put1 && raw1 && fsync ? Math.round((put1.latency.p50Ms - fsync.async.p50Ms - raw1.latency.p50Ms) * 1000) / 1000 : null,
    },
    generatorCpu: {
      maxCpuPct: Math.max(0, ...gens.map((g) => g.cpuPct)),
      maxElu: Math.max(0, ...gens.map((g) => g.elu)),
      perCase: Object.fromEntries(records.map((r) => [r.name, r.generator])),
    },
    /** Most CPU (% of one core) used by processes outside the bench during any case: a noisy-machine indicator. */
    otherCpuMaxPct: records.some((r) => r.otherPct !== null) ? Math.max(...records.map((r) => r.otherPct ?? 0)) : null,
    /** The replication-3 section (4 storage nodes, replication 3; its cases are the r3/... entries of `cases`). */
    replication3:
      r3 === null
        ? null
        : {
            config: { nodes: R3_NODES, tablets: o.tablets, replication: 3, workerThreads: o.workerThreads },
            warmupPut1KiBc64: pick(byName.get('r3/warmup/put/1KiB/c64')),
            put1KiBc64: pick(byName.get('r3/put/1KiB/c64')),
            get1KiBc64: pick(byName.get('r3/get/1KiB/c64')),
            put1KiBc1: pick(byName.get('r3/put/1KiB/c1')),
            put1KiBc256: pick(byName.get('r3/put/1KiB/c256')),
            failover: r3.failover,
            catchup: r3.catchup,
            problems: r3.problems,
          },
    targets,
    pass: targets.every((t) => t.pass || !t.ran),
  };
}

function pick(r: CaseRecord | undefined): { opsPerSec: number; p50Ms: number; p99Ms: number; errors: number } | null {
  return r === undefined ? null : { opsPerSec: r.opsPerSec, p50Ms: r.latency.p50Ms, p99Ms: r.latency.p99Ms, errors: r.errors };
}

type Report = ReturnType<typeof buildReport>;

function byNameOf(records: CaseRecord[], name: string): CaseRecord | undefined {
  return records.find((r) => r.name === name);
}

function table(header: string[], rows: string[][], rightAlign: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function threadsOf(u: ProcUsage | null | undefined): string {
  if (!u) return '-';
  const parts = u.threads.map((t) => `${t.name} ${t.pct}%`);
  return `${u.pct}%${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

function renderReport(report: Report, records: CaseRecord[]): string {
  const out: string[] = [];
  const c = report.config;
  out.push('', `penncloud kv-bench: ${c.nodes} storage nodes, ${c.tablets} tablets, replication ${c.replication}, ${c.workerThreads} worker threads, ${c.cpus} CPUs, node ${c.node}; ${c.secondsPerCase} s per case after ${c.warmupSeconds} s warm-up`);
  if (report.replication3) out.push(`  r3/... cases: their own cluster of ${report.replication3.config.nodes} storage nodes, replication 3`);
  if (report.replication3?.warmupPut1KiBc64) out.push(`  r3/warmup/...: the fresh cluster's first ${report.config.clusterWarmupSeconds} s of writes (JIT compiling in every node at once); shown, not a target`);
  out.push('');

  const rows = records.map((r) => {
    const genBound = r.generator.elu > 0.9 || r.generator.cpuPct > 90;
    return [
      r.name,
      String(r.opsPerSec),
      r.op === 'raw' ? '-' : fmt(r.mbPerSec),
      fmt(r.latency.p50Ms),
      fmt(r.latency.p99Ms),
      fmt(r.latency.maxMs),
      String(r.errors),
      `${r.generator.cpuPct}`,
      `${r.generator.elu.toFixed(2)}${genBound ? '*' : ''}`,
      String(nodesPct(r) ?? '-'),
      fmt(ctxPerOp(r, 'nodes')),
      String(r.machineBusyPct ?? '-'),
      String(r.otherPct ?? '-'),
      String(r.stealPct ?? '-'),
    ];
  });
  out.push(table(['case', 'ops/s', 'MB/s', 'p50 ms', 'p99 ms', 'max ms', 'err', 'gen cpu%', 'gen elu', 'nodes cpu%', 'ctx/op', 'machine%', 'other%', 'steal%'], rows, [false, ...Array<boolean>(13).fill(true)]));
  out.push('  gen cpu% = load generator process CPU (% of one core); gen elu = its event-loop utilisation (* = over 0.9: the generator may be the limit)');
  out.push('  nodes cpu% = sum over storage node processes (echo server for raw/*), % of one core');
  out.push('  ctx/op = context switches in those processes per operation (thread hand-offs); machine% = all cores busy, 100 = machine saturated');
  out.push('  other% = CPU taken by processes outside the bench (% of one core): well above 0 means a noisy machine and figures to distrust');
  out.push('  steal% = CPU of all cores the hypervisor gave to other machines (counted in machine% and other%): above a few % the figures are the host\'s, not ours');

  const r3 = report.replication3;
  if (r3 && (r3.failover || r3.catchup || r3.problems.length > 0)) {
    out.push('', 'Replication 3: failover and catch-up');
    const fo = r3.failover;
    if (fo) {
      out.push(
        `  failover: ${fo.lanes} lanes PUT ${fo.valueBytes} B to rows of the ${fo.tabletsMoved} tablets led by ${fo.node}; kill -9 ${fo.node}: ` +
          `longest gap between successful writes ${fmt(fo.maxGapMs)} ms (from ${fmt(fo.gapFromMs)} to ${fmt(fo.gapToMs)} ms after the kill), ` +
          `first write ok ${fmt(fo.killToFirstOkMs)} ms after the kill; ${fo.okBeforeKill} ok before, ${fo.okAfterKill} after; ` +
          `failed after the kill: ${Object.entries(fo.errors).map(([k, v]) => `${k} x${v}`).join(', ') || 'none'}; ${fo.node} restarted and in sync again after ${fmt(fo.rejoinMs)} ms`,
      );
    }
    const cu = r3.catchup;
    if (cu) {
      out.push(
        `  catch-up: admin stop ${cu.node}; ${cu.writes} x ${cu.valueBytes} B written to its ${cu.tablets} tablets in ${cu.writeMs} ms (${cu.writeErrors} errors${cu.writeErrors > 0 ? ` ${JSON.stringify(cu.writeErrorCodes)}, first: ${cu.firstWriteError}` : ''}; ${cu.recordsBehind ?? '?'} records behind); ` +
          `admin restart returned after ${cu.restartCallMs} ms, in sync on every tablet ${cu.catchupMs} ms after the restart was sent (status polled every ${cu.pollMs} ms)`,
      );
    }
    for (const p of r3.problems) out.push(`  PROBLEM: ${p}`);
  }

  out.push('', 'Targets');
  out.push(table(['target', 'goal', 'actual', ''], report.targets.map((t) => [t.name, t.goal, fmt(t.actual), !t.ran ? 'not run' : t.pass ? 'PASS' : 'MISS']), [false, false, true, false]));

  out.push('', 'Where the time goes');
  const f = report.fsync;
  if (f) out.push(`  fdatasync after a ${f.appendBytes} B append (${f.appends}x, cluster disk): p50 ${fmt(f.p50Ms)} ms, p99 ${fmt(f.p99Ms)} ms; through fs/promises (as the WAL does): p50 ${fmt(f.viaLibuvP50Ms)} ms, p99 ${fmt(f.viaLibuvP99Ms)} ms`);
  if (f) out.push(`  ${f.parallelFiles} files appending + fdatasync'ing at once (one process, libuv pool): ${f.parallelFlushesPerSec} flushes/s in total, p50 ${fmt(f.parallelP50Ms)} ms, p99 ${fmt(f.parallelP99Ms)} ms per flush`);
  const put64 = byNameOf(records, 'put/1KiB/c64');
  if (put64 && f && f.parallelFlushesPerSec > 0) {
    const perFlush = Math.round((put64.opsPerSec / f.parallelFlushesPerSec) * 10) / 10;
    out.push(`  1 KiB PUT @64 did ${put64.opsPerSec} ops/s = ${perFlush}x the flushes/s above: beyond that, group commit must put several records in each fdatasync`);
  }
  if (report.raw.c1) out.push(`  raw ZeroMQ+CBOR round trip (RpcClient -> RpcServer echo): @1 p50 ${fmt(report.raw.c1.p50Ms)} ms (${report.raw.c1.opsPerSec} req/s); @64 ${report.raw.c64?.opsPerSec ?? '-'} req/s, p99 ${fmt(report.raw.c64?.p99Ms)} ms`);
  const h = report.hints;
  if (h.getOverRawP50C1 !== null) out.push(`  1 KiB GET @1 p50 is ${h.getOverRawP50C1}x the raw round trip`);
  if (h.rawOverGetOpsC64 !== null) out.push(`  raw transport @64 does ${h.rawOverGetOpsC64}x the req/s of 1 KiB GET @64`);
  if (h.putC1UnexplainedMs !== null) out.push(`  1 KiB PUT @1 p50 minus (fdatasync p50 + raw rtt p50) = ${fmt(h.putC1UnexplainedMs)} ms`);
  if (report.otherCpuMaxPct !== null && report.otherCpuMaxPct >= 20) {
    out.push(`  WARNING: processes outside the bench used up to ${report.otherCpuMaxPct}% of a core during the run: the machine was not quiet`);
  }
  out.push(`  generator: at most ${report.generatorCpu.maxCpuPct}% of a core, event loop utilisation at most ${report.generatorCpu.maxElu}`);
  // Per-thread CPU for the cases that matter most: is one thread (JS main, a tablet worker, zmq I/O) pegged?
  const detail = records.filter((r) => r.concurrency > 1 && (r.valueBytes === KiB || r.op === 'raw' || r.valueBytes === MiB));
  if (detail.some((r) => Object.values(r.procs).some((u) => u !== null))) {
    out.push('  CPU by process and busiest threads (% of one core; main = JS main thread, zmq-io = ZeroMQ I/O thread, thread N = worker / pool threads):');
    for (const r of detail) {
      const names = r.op === 'raw' ? ['echo', 'generator'] : [...r.storage, 'generator'];
      out.push(`    ${r.name}: ${names.map((n) => `${n} ${threadsOf(r.procs[n])}`).join('; ')}`);
    }
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`kv-bench: ${(e as Error).message}\n`);
    process.exit(2);
  }
  // A closed pipe (`| head`) must not crash the run before the cluster is stopped.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  let interrupted = false;
  const onSignal = (signal: string): void => {
    if (interrupted) return;
    interrupted = true;
    log(`\nbench: ${signal}: stopping the cluster...`);
    void cleanup(opts.keep).finally(() => process.exit(130));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // A stray rejection (e.g. from closing a client's sockets) must not kill the orchestrator and leave
  // its clusters running as orphans: report it and carry on; the figures say whether the run was sound.
  const seen = new Set<string>();
  process.on('unhandledRejection', (e: unknown) => {
    const msg = (e as Error)?.stack ?? String(e);
    if (!seen.has(msg)) log(`bench: WARNING: unhandled rejection: ${msg}`);
    seen.add(msg);
  });
  try {
    const code = await run(opts);
    process.exit(code);
  } catch (e) {
    if (interrupted) return; // the signal handler exits once the cluster is down
    log(`kv-bench: ${(e as Error).stack ?? e}`);
    const left = [...res.clusters];
    await cleanup(true).catch(() => undefined);
    for (const c of left) log(`kv-bench: node logs kept in ${c.dir}`);
    process.exit(1);
  }
}

await main();
