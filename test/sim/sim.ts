// A deterministic simulator of a penncloud cluster: one MasterCore, N storage nodes with one
// ReplicaCore per (node, tablet), a simulated disk per (node, tablet), a simulated clock, a lossy
// network and a few clients. Everything random comes from one seeded PRNG (prng.ts), so a seed replays
// a run exactly. The I/O edges are re-implemented here the way the real ones behave:
//   - actors/storage/tablet.ts   effects -> disk / network; "durable" notices through the mailbox; a
//                                snapshot install blocks the mailbox; recovery exactly as load();
//                                optional evictions model close()
//   - actors/storage/wal.ts      group commit: a record is durable once its fsync completes (random
//                                delay); a crash keeps the durable log plus any prefix of the write in
//                                progress; install = flush, delete segments, write checkpoint (a crash
//                                midway leaves the old log, the old checkpoint alone, or the snapshot)
//   - actors/storage/tablet-host.ts, worker.ts  configs only when changed, lease only when it grows,
//                                ticks every 50 ms, 'unavailable' before the first map, 'not_mine',
//                                worker threads that die and restart after restart_delay_ms
//   - actors/storage/node.ts     heartbeat every H ms, one at a time, timeout 2H; lease = send time +
//                                leaseMs; every map reply hands the workers their configs and lease
//   - actors/master.ts           heartbeat / in_sync / drop handlers, position requests (timeout 300 ms),
//                                tick every H/2, restart from the persisted assignments
//   - actors/session.ts          cached map (read from the master directly when refreshed), retries with
//                                backoff on not_mine / not_primary / unavailable / busy / unreachable,
//                                deadline max(request_ms, 3 s); a write that times out or gets 'internal'
//                                has an unknown outcome
// The network delays (mostly sub-ms, 5% up to 150 ms, times slowNet), drops, duplicates (not client
// requests: see dupClientRequests) and so reorders every message, requests and replies alike; a paused
// process receives its messages and timers when it resumes; messages in flight survive their sender.
// Faults: crash/restart of one or two nodes (primaries preferred), pause, partition from the master
// (and a peer), worker death, master restart, bursts of loss, optionally tablet evictions.
// Invariants are checked after every event (see checkInvariants); a violation throws SimFailure with
// the seed and the last events. Not modelled: clock drift (one clock for all; the lease margin exists
// for drift), admin stop/restart, scans, multi-column rows, Actor mailbox bounds.
import { firstMapVersion, MasterCore, stallMsFor, type MasterEffect, type MasterOptions, type PersistedAssignment } from '../../actors/master-core.js';
import { ReplicaCore, type CoreOptions, type Effect, type Input, type TabletConfig } from '../../actors/storage/replica-core.js';
import { TabletState } from '../../actors/storage/tablet-state.js';
import type { LogRecord } from '../../actors/storage/wal.js';
import type { Cell, CatchupRep, DataRequest, ErrorCode, Reply, TabletAssignment, TabletMap, TabletReport } from '../../transport/messages.js';
import { tabletOf, workerIndex } from '../../transport/partition.js';
import { checkHistory, formatOp, type Op } from '../support/linearizability.js';
import { extendChain, isPrefix, recordHash } from './chain.js';
import { EventHeap } from './heap.js';
import { Rng } from './prng.js';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

export interface SimOptions {
  seed: number;
  nodes: number;
  tablets: number;
  replication: number;
  workers: number; // tablet worker threads per node
  clients: number;
  rows: number; // distinct cells the clients touch (row r0..r{rows-1}, column 'c')
  /** Simulated time with faults and client load (ms); then the cluster heals. */
  faultMs: number;
  /** After healing starts, every tablet must have a primary and all replicas in sync within this (ms). */
  healLimitMs: number;
  /** Hard bound on events. */
  maxSteps: number;
  heartbeatMs: number;
  leaseMs: number;
  nodeDeadMs: number;
  requestMs: number;
  restartDelayMs: number; // worker restart delay (node.ts restart_delay_ms)
  /** The master hands primaries back to their preferred nodes after the cluster is whole this long (0: never). */
  rebalanceAfterMs: number;
  drop: number; // probability a message is lost
  dup: number; // probability a message is delivered twice (not client requests, see dupClientRequests)
  /** Duplicate client data requests too. The protocol has no idempotency tokens, so a duplicated write
   * legitimately applies twice: off by default (TCP never duplicates application messages). */
  dupClientRequests: boolean;
  faults: boolean;
  /** Mean time between faults during the fault phase (ms). */
  faultEveryMs: number;
  /** Keep this many trace lines for the failure report. */
  traceLines: number;
  /** Print every trace line to stderr (debugging one seed). */
  verbose: boolean;
  /** Linearizability check budget per run (ms of real time). */
  linearizabilityMs: number;
  /** Check invariant 2 (in-sync logs are prefixes of the primary's) after every step; turning it off
   * shows what a violation leads to (lost writes, divergent replicas). */
  checkPrefix: boolean;
  /** Fix the core's ring size / batch size instead of drawing them per seed. */
  ringRecords?: number;
  batchBytes?: number;
  /** Multiplies every network delay (1: mostly sub-ms to 20 ms, 5% up to 150 ms). */
  slowNet: number;
  /** Draw a profile per seed (cluster size, network slowness and loss, fault rate, ring and batch
   * sizes) from the seed itself, so that a run over many seeds covers many regimes. Fields set
   * explicitly by the caller are kept. */
  mixed: boolean;
  /** Multiplies fsync latency (1: mostly 0.3-6 ms, 10% up to 60 ms). */
  slowDisk: number;
  /** Client think time between operations: uniform in [0, thinkMs). */
  thinkMs: number;
  /** Also evict tablets (LRU eviction of tablet-host.ts: close with a checkpoint, reload from disk).
   * Off by default: TabletActor.close() answers client writes still waiting for their commit with
   * 'unavailable', which the session retries, so a write can apply twice (see the report). */
  evictions: boolean;
  /** Model the suggested fix of TabletActor.close(): a client write still waiting for its commit is
   * answered 'internal' (outcome unknown) instead of 'unavailable'. */
  evictionAnswersInternal: boolean;
  /** Scripted faults for targeted scenarios (called once before the run starts). */
  script?: (sim: Simulation) => void;
}

export function defaultOptions(seed: number): SimOptions {
  return {
    seed,
    nodes: 4,
    tablets: 3,
    replication: 3,
    workers: 2,
    clients: 3,
    rows: 6,
    faultMs: 6000,
    healLimitMs: 15_000,
    maxSteps: 400_000,
    heartbeatMs: 100,
    leaseMs: 400,
    nodeDeadMs: 400,
    requestMs: 2000,
    restartDelayMs: 500,
    rebalanceAfterMs: 1000,
    drop: 0.02,
    dup: 0.01,
    dupClientRequests: false,
    faults: true,
    faultEveryMs: 600,
    traceLines: 60,
    verbose: false,
    linearizabilityMs: 5000,
    checkPrefix: true,
    slowNet: 1,
    mixed: true,
    slowDisk: 1,
    thinkMs: 40,
    evictions: false,
    evictionAnswersInternal: false,
  };
}

export class SimFailure extends Error {
  constructor(
    readonly seed: number,
    readonly reason: string,
    readonly trace: string[],
  ) {
    super(`seed ${seed}: ${reason}\n--- last events ---\n${trace.join('\n')}\n--- replay: SIM_SEED=${seed} npx vitest run test/simulation.test.ts ---`);
  }
}

export interface SimResult {
  seed: number;
  steps: number;
  simMs: number;
  ops: number;
  okOps: number;
  unknownOps: number;
  faults: number;
  elections: number;
  /** Drops of a replica asked for by primaries (each request counts, granted or not). */
  dropsAsked: number;
  /** Elections that handed a primary back to its preferred node (a live old primary). */
  handovers: number;
  linearizabilityTimedOut: boolean;
  healMs: number;
  renewals: number;
  snapshots: number;
  retransmits: number;
  finalEpochs: number[];
}

// ---------------------------------------------------------------------------------------------
// Actors of the simulation
// ---------------------------------------------------------------------------------------------

interface Owner {
  inc: number;
  paused: boolean;
  deferred: Ev[];
}

interface Ev {
  t: number;
  seq: number;
  owner: Owner | null;
  inc: number;
  fn: () => void;
  label: string | null;
}

interface Envelope {
  id: number;
  from: string;
  to: string;
  rep: boolean;
  body: any; // Request or Reply
  /** Snapshot chunks carry the log chain of the snapshot (simulator bookkeeping, not on the wire). */
  snapChain?: number[];
}

interface Pending {
  onReply: (rep: Reply, env: Envelope) => void;
  onTimeout: (why: 'timeout' | 'unreachable') => void;
  done: boolean;
}

/** The disk of one tablet on one node: a checkpoint plus log records, some of them durable. */
class SimDisk {
  baseLsn = 0;
  baseEpoch = 0; // 0: no checkpoint file (load() then uses epoch max(1, 0))
  baseCells = new Map<string, Cell>();
  records: LogRecord[] = [];
  /** chain[i] for lsn 0..lastLsn (what is on disk, durable or not). */
  chain: number[] = [0];
  durableLsn = 0;
  gen = 0; // bumped by a crash: pending disk events of the old process are void
  flushScheduled = false;
  flushUpTo = 0; // a write+fdatasync of records up to here is in progress (0: none)
  waiters: Array<{ lsn: number; cb: () => void }> = [];
  install: { phase: 'flush' | 'write'; lsn: number; epoch: number; cells: Cell[]; chain: number[]; done: () => void } | null = null;

  get lastLsn(): number {
    return this.baseLsn + this.records.length;
  }
}

class SimTablet {
  core: ReplicaCore;
  chain: number[];
  alive = true;
  blocked = false; // the mailbox waits for a snapshot install (or a close)
  closing = false;
  queue: Array<() => void> = [];
  responders = new Map<number, (rep: Reply) => void>();
  clientTokens = new Map<number, { lsn: number; write: boolean }>();
  nextToken = 1;
  syncRequested = 0;
  lease = -Infinity;
  /** While handling a catchup_rep that carries a snapshot chunk: that snapshot's chain. */
  incomingChain: number[] | null = null;
  snapshotChains = new Map<number, number[]>();

  constructor(
    readonly node: SimNode,
    readonly id: number,
    readonly disk: SimDisk,
    core: ReplicaCore,
  ) {
    this.core = core;
    this.chain = disk.chain.slice();
  }
}

interface SimWorker {
  up: boolean;
  gen: number;
  tablets: Map<number, SimTablet>;
}

class SimNode implements Owner {
  inc = 0;
  paused = false;
  deferred: Ev[] = [];
  up = false;
  pid = 0;
  beating = false;
  lastAssign: { configs: Map<number, TabletConfig>; leaseUntil: number } | null = null;
  hostConfigs = new Map<number, TabletConfig>();
  hostLease = -Infinity;
  workers: SimWorker[];
  pending = new Map<number, Pending>();
  disks = new Map<number, SimDisk>();

  constructor(
    readonly name: string,
    workers: number,
  ) {
    this.workers = Array.from({ length: workers }, () => ({ up: true, gen: 0, tablets: new Map() }));
  }
}

class SimMaster implements Owner {
  inc = 0;
  paused = false;
  deferred: Ev[] = [];
  up = true;
  core: MasterCore;
  persisted: PersistedAssignment[] | null = null;
  persistedVersion = 0;
  pending = new Map<number, Pending>();

  constructor(core: MasterCore) {
    this.core = core;
  }
}

interface ClientOp {
  op: Op;
  req: DataRequest;
  write: boolean;
  deadline: number;
  attempt: number;
}

class SimClient {
  pending = new Map<number, Pending>();
  map: TabletMap | null = null;
  seen = new Map<string, string | null>();
  n = 0;
  current: ClientOp | null = null;
  constructor(
    readonly name: string,
    readonly index: number,
  ) {}
}

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------

export class Simulation {
  readonly rng: Rng;
  now = 0;
  steps = 0;
  private seq = 0;
  private readonly heap = new EventHeap<Ev>();
  private readonly trace: string[] = [];
  private traceHead = 0;
  private nextId = 1;
  private nextPid = 1000;
  readonly nodes: SimNode[];
  private readonly byName = new Map<string, SimNode>();
  readonly master: SimMaster;
  private readonly masterOpts: MasterOptions;
  private readonly coreOpts: Omit<CoreOptions, 'tablet'>;
  private readonly clients: SimClient[];
  readonly history: Op[] = [];
  private healing = false;
  private healStart = 0;
  private converged = false;
  private drop: number;
  private dup: number;
  /** Links cut by a partition: "a|b" (both directions are listed). */
  private readonly cut = new Set<string>();
  /** Per tablet: the chain of the committed prefix (grows only), from acknowledged client replies. */
  private readonly committed: number[][];
  /** (tablet, epoch) -> the node that acted as primary in it. */
  private readonly primaryByEpoch = new Map<string, string>();
  private mapCache: { key: string; assignments: TabletAssignment[] } | null = null;
  private faults = 0;
  private elections = 0;
  private dropsAsked = 0;
  private handovers = 0;
  private renewals = 0;
  private snapshots = 0;
  private readonly rowsByTablet: string[][];

  constructor(readonly opts: SimOptions) {
    this.rng = new Rng(opts.seed);
    const r = this.rng;
    this.drop = opts.drop;
    this.dup = opts.dup;
    this.nodes = Array.from({ length: opts.nodes }, (_, i) => new SimNode(`s${i + 1}`, opts.workers));
    for (const n of this.nodes) this.byName.set(n.name, n);
    this.masterOpts = {
      tablets: opts.tablets,
      replication: opts.replication,
      storage: this.nodes.map((n) => ({ name: n.name, control: `${n.name}:ctl`, workers: Array.from({ length: opts.workers }, (_, w) => `${n.name}:w${w}`) })),
      master: { name: 'master', address: 'master:7000' },
      leaseMs: opts.leaseMs,
      leaseMarginMs: Math.max(20, Math.floor(opts.leaseMs / 10)),
      nodeDeadMs: opts.nodeDeadMs,
      electionTimeoutMs: Math.max(200, opts.heartbeatMs * 3),
      rebalanceAfterMs: opts.rebalanceAfterMs,
      stallMs: stallMsFor(opts.nodeDeadMs, opts.heartbeatMs),
    };
    // The production core options (worker.ts), with a small ring and small batches drawn per seed so
    // that snapshots, "too far behind" and multi-batch streaming happen.
    this.coreOpts = {
      me: '',
      maxScan: 1000,
      ringRecords: r.pick([6, 20, 64, 200_000]),
      ringBytes: 64 << 20,
      batchBytes: r.pick([60, 200, 1000, 4 << 20]),
      maxInflightBatches: r.pick([1, 4, 16]),
      retransmitMs: Math.max(200, opts.heartbeatMs * 2),
      idleProbeMs: Math.max(1000, opts.heartbeatMs * 10),
      joinerTimeoutMs: 2000,
      dropAfterMs: 1000,
      retryMs: Math.max(100, opts.heartbeatMs),
      commitTimeoutMs: opts.requestMs,
    };
    if (opts.ringRecords !== undefined) this.coreOpts.ringRecords = opts.ringRecords;
    if (opts.batchBytes !== undefined) this.coreOpts.batchBytes = opts.batchBytes;
    this.master = new SimMaster(new MasterCore(this.masterOpts, null, 0));
    this.runMasterEffects();
    this.committed = Array.from({ length: opts.tablets }, () => [0]);
    for (let t = 0; t < opts.tablets; t++) {
      const a = this.master.core.map().assignments[t]!;
      for (const n of a.replicas) this.byName.get(n)!.disks.set(t, new SimDisk());
    }
    this.rowsByTablet = Array.from({ length: opts.tablets }, () => []);
    for (let i = 0; i < opts.rows; i++) this.rowsByTablet[tabletOf(`r${i}`, opts.tablets)]!.push(`r${i}`);
    this.clients = Array.from({ length: opts.clients }, (_, i) => new SimClient(`c${i + 1}`, i + 1));
  }

  // ---- event loop ----

  private schedule(delay: number, owner: Owner | null, fn: () => void, label: string | null = null): void {
    this.heap.push({ t: this.now + Math.max(0, delay), seq: this.seq++, owner, inc: owner ? owner.inc : 0, fn, label });
  }

  note(line: string): void {
    const s = `${this.now.toFixed(2).padStart(9)} ${line}`;
    if (this.opts.verbose) process.stderr.write(s + '\n');
    if (this.trace.length < this.opts.traceLines) this.trace.push(s);
    else {
      this.trace[this.traceHead] = s;
      this.traceHead = (this.traceHead + 1) % this.opts.traceLines;
    }
  }

  private lastTrace(): string[] {
    return [...this.trace.slice(this.traceHead), ...this.trace.slice(0, this.traceHead)];
  }

  fail(reason: string): never {
    throw new SimFailure(this.opts.seed, `t=${this.now.toFixed(2)} step ${this.steps}: ${reason}`, this.lastTrace());
  }

  run(): SimResult {
    for (const n of this.nodes) this.startNode(n, this.rng.float(0, 50));
    this.schedule(this.opts.heartbeatMs / 2, this.master, () => this.masterTick());
    for (const c of this.clients) this.schedule(this.rng.float(200, 400), null, () => this.clientNext(c));
    if (this.opts.faults) this.schedule(this.rng.float(300, 300 + this.opts.faultEveryMs), null, () => this.fault());
    this.opts.script?.(this);
    this.schedule(this.opts.faultMs, null, () => this.heal(), 'heal');
    while (!this.converged) {
      const ev = this.heap.pop();
      if (!ev) this.fail('no more events before convergence');
      if (ev.owner) {
        if (ev.inc !== ev.owner.inc) continue; // the process that scheduled it is gone
        if (ev.owner.paused) {
          ev.owner.deferred.push(ev);
          continue;
        }
      }
      this.now = Math.max(this.now, ev.t);
      this.steps++;
      if (this.steps > this.opts.maxSteps) this.fail(`more than ${this.opts.maxSteps} steps`);
      if (ev.label !== null) this.note(ev.label);
      ev.fn();
      this.checkInvariants();
      if (this.healing) this.checkConverged();
    }
    return this.finalChecks();
  }

  // ---- network ----

  private linkCut(a: string, b: string): boolean {
    return this.cut.size > 0 && this.cut.has(`${a}|${b}`);
  }

  private ownerOf(name: string): Owner | null {
    if (name === 'master') return this.master;
    return this.byName.get(name) ?? null;
  }

  private delay(): number {
    const x = this.rng.next();
    const k = this.opts.slowNet;
    if (x < 0.7) return k * this.rng.float(0.05, 2);
    if (x < 0.95) return k * this.rng.float(2, 20);
    return k * this.rng.float(20, 150);
  }

  private transmit(env: Envelope): void {
    if (this.linkCut(env.from, env.to)) return;
    if (this.rng.chance(this.drop)) {
      if (this.opts.verbose) this.note(`  drop ${env.from}->${env.to} ${env.body.t}#${env.id}`);
      return;
    }
    const copies = this.rng.chance(this.dup) && (env.rep || this.opts.dupClientRequests || !isDataRequest(env.body)) ? 2 : 1;
    const owner = this.ownerOf(env.to);
    for (let i = 0; i < copies; i++) {
      // A message is delivered to whatever process runs at the destination then (not to an incarnation).
      this.heap.push({ t: this.now + this.delay(), seq: this.seq++, owner: null, inc: 0, fn: () => this.arrive(env, owner), label: null });
    }
  }

  private arrive(env: Envelope, owner: Owner | null): void {
    // Deliveries to a paused process wait until it resumes.
    if (owner && owner.paused) {
      owner.deferred.push({ t: this.now, seq: this.seq++, owner, inc: owner.inc, fn: () => this.deliver(env), label: null });
      return;
    }
    this.deliver(env);
  }

  private deliver(env: Envelope): void {
    if (this.linkCut(env.from, env.to)) return;
    if (this.opts.verbose) this.note(`  ${env.from}->${env.to} ${env.rep ? 'rep' : 'req'}#${env.id} ${describe(env.body)}`);
    if (env.to === 'master') {
      if (!this.master.up) return;
      if (env.rep) return this.gotReply(this.master.pending, env);
      return this.masterRequest(env);
    }
    const node = this.byName.get(env.to);
    if (node) {
      if (!node.up) return;
      if (env.rep) return this.gotReply(node.pending, env);
      return this.nodeRequest(node, env);
    }
    const client = this.clients.find((c) => c.name === env.to);
    if (client && env.rep) this.gotReply(client.pending, env);
  }

  private gotReply(pending: Map<number, Pending>, env: Envelope): void {
    const p = pending.get(env.id);
    if (!p || p.done) return; // late or duplicate reply: the RPC client drops it
    p.done = true;
    pending.delete(env.id);
    p.onReply(env.body as Reply, env);
  }

  /** An RPC from `from` (with its pending table and owner) to `to`. */
  private request(from: string, pending: Map<number, Pending>, owner: Owner | null, to: string, body: any, timeoutMs: number, onReply: Pending['onReply'], onTimeout: Pending['onTimeout']): void {
    const id = this.nextId++;
    const p: Pending = { onReply, onTimeout, done: false };
    pending.set(id, p);
    this.schedule(timeoutMs, owner, () => {
      if (p.done) return;
      p.done = true;
      pending.delete(id);
      p.onTimeout('timeout');
    });
    this.transmit({ id, from, to, rep: false, body });
  }

  private reply(env: Envelope, body: Reply, snapChain?: number[]): void {
    const r: Envelope = { id: env.id, from: env.to, to: env.from, rep: true, body };
    if (snapChain) r.snapChain = snapChain;
    this.transmit(r);
  }

  // ---- the master (actors/master.ts) ----

  private runMasterEffects(): void {
    const effects: MasterEffect[] = this.master.core.takeEffects();
    for (const e of effects) {
      if (e.kind !== 'persist') continue;
      this.master.persisted = e.assignments.map((a) => ({ ...a, replicas: [...a.replicas], inSync: [...a.inSync] }));
      this.master.persistedVersion = e.version;
    }
    for (const e of effects) {
      if (e.kind === 'log') {
        this.note(`master: ${e.msg}`);
        if (e.msg.includes('promoted')) this.elections++;
        if (e.msg.includes('handing the primary back')) this.handovers++;
        if (e.msg.includes('renewed')) this.renewals++;
      } else if (e.kind === 'position') {
        const m = this.master;
        const inc = m.inc;
        this.request('master', m.pending, m, e.node, { t: 'position', tablet: e.tablet, epoch: e.epoch }, 300, (rep) => {
          if (inc !== m.inc) return;
          m.core.positionReply(e.node, e.tablet, e.epoch, rep.t === 'position_rep' ? rep.lsn : null, this.now);
          this.runMasterEffects();
        }, () => {
          if (inc !== m.inc) return;
          m.core.positionReply(e.node, e.tablet, e.epoch, null, this.now);
          this.runMasterEffects();
        });
      }
    }
  }

  private masterTick(): void {
    const m = this.master;
    m.core.tick(this.now);
    this.runMasterEffects();
    this.schedule(Math.max(20, Math.floor(this.opts.heartbeatMs / 2)), m, () => this.masterTick());
  }

  private masterRequest(env: Envelope): void {
    const m = this.master;
    const req = env.body;
    switch (req.t) {
      case 'heartbeat': {
        const lease = m.core.heartbeat(req.node, req.pid, req.tablets, req.stopped, this.now);
        this.runMasterEffects();
        if (lease === null) return this.reply(env, { t: 'error', code: 'bad_request', message: 'unknown node' });
        return this.reply(env, { t: 'map', map: m.core.map(), leaseMs: lease });
      }
      case 'in_sync': {
        const ok = m.core.inSync(req.tablet, req.node, req.epoch, this.now);
        this.runMasterEffects();
        return this.reply(env, ok ? { t: 'ok' } : { t: 'error', code: 'bad_request', message: 'no' });
      }
      case 'drop': {
        this.dropsAsked++;
        const ok = m.core.drop(req.tablet, req.node, req.epoch, this.now);
        this.runMasterEffects();
        return this.reply(env, ok ? { t: 'ok' } : { t: 'error', code: 'bad_request', message: 'no' });
      }
    }
  }

  private restartMaster(): void {
    const m = this.master;
    m.inc++;
    m.up = true;
    m.pending.clear();
    m.core = new MasterCore(this.masterOpts, m.persisted, this.now, firstMapVersion(m.persistedVersion, this.now));
    this.note(`master restarted (assignments ${JSON.stringify(m.persisted?.map((a) => [a.epoch, a.primary, a.inSync.join('')]))})`);
    this.runMasterEffects();
    this.schedule(Math.max(20, Math.floor(this.opts.heartbeatMs / 2)), m, () => this.masterTick());
  }

  /** The master's current assignments (cached per map version). */
  private assignments(): TabletAssignment[] {
    const key = `${this.master.inc}:${this.master.core.mapVersion}`;
    if (this.mapCache?.key !== key) this.mapCache = { key, assignments: this.master.core.map().assignments };
    return this.mapCache.assignments;
  }

  // ---- storage nodes (node.ts, worker.ts, tablet-host.ts) ----

  private startNode(n: SimNode, firstBeatIn: number): void {
    n.inc++;
    n.up = true;
    n.paused = false;
    n.deferred = [];
    n.pid = this.nextPid++;
    n.beating = false;
    n.lastAssign = null;
    n.hostConfigs = new Map();
    n.hostLease = -Infinity;
    n.pending.clear();
    for (const w of n.workers) {
      w.up = true;
      w.gen++;
      w.tablets.clear();
    }
    this.schedule(firstBeatIn, n, () => this.beatLoop(n));
    for (let w = 0; w < n.workers.length; w++) this.startTicker(n, w);
  }

  private beatLoop(n: SimNode): void {
    this.heartbeat(n);
    this.schedule(this.opts.heartbeatMs, n, () => this.beatLoop(n));
  }

  private startTicker(n: SimNode, w: number): void {
    const worker = n.workers[w]!;
    const gen = worker.gen;
    const tick = (): void => {
      if (worker.gen !== gen || !worker.up) return;
      for (const tab of [...worker.tablets.values()]) this.tell(tab, { kind: 'tick' });
      this.schedule(50, n, tick);
    };
    this.schedule(this.rng.float(0, 50), n, tick);
  }

  private heartbeat(n: SimNode): void {
    if (n.beating || !n.up) return;
    n.beating = true;
    const tablets: TabletReport[] = [];
    for (const w of n.workers) {
      if (!w.up) continue;
      for (const tab of w.tablets.values()) tablets.push({ id: tab.id, resident: true, lsn: tab.core.lsn, cells: tab.core.cells, epoch: tab.core.epoch, role: tab.core.role });
    }
    tablets.sort((a, b) => a.id - b.id);
    const sentAt = this.now;
    const inc = n.inc;
    this.request(n.name, n.pending, n, 'master', { t: 'heartbeat', node: n.name, pid: n.pid, tablets, stopped: false }, Math.max(100, this.opts.heartbeatMs * 2), (rep) => {
      if (inc !== n.inc) return;
      n.beating = false;
      if (rep.t !== 'map' || rep.map === null) return;
      const configs = new Map<number, TabletConfig>();
      for (const a of rep.map.assignments) if (a.replicas.includes(n.name)) configs.set(a.id, { epoch: a.epoch, primary: a.primary, replicas: a.replicas, inSync: a.inSync });
      n.lastAssign = { configs, leaseUntil: rep.leaseMs > 0 ? sentAt + rep.leaseMs : -Infinity };
      for (let w = 0; w < n.workers.length; w++) if (n.workers[w]!.up) this.assign(n, w);
    }, () => {
      if (inc !== n.inc) return;
      n.beating = false;
    });
  }

  /** A worker receives the node's assignment: configs (only changed ones are told) and the lease. */
  private assign(n: SimNode, w: number): void {
    const worker = n.workers[w]!;
    const a = n.lastAssign!;
    for (const [id, cfg] of a.configs) {
      if (workerIndex(id, this.opts.workers, this.opts.nodes) !== w) continue;
      let tab = worker.tablets.get(id);
      if (!tab) {
        tab = this.loadTablet(n, id);
        worker.tablets.set(id, tab);
        this.tell(tab, { kind: 'config', cfg });
        if (a.leaseUntil > tab.lease) {
          tab.lease = a.leaseUntil;
          this.tell(tab, { kind: 'lease', until: a.leaseUntil });
        }
        continue;
      }
      const prev = n.hostConfigs.get(id);
      if (!prev || !sameConfig(prev, cfg)) this.tell(tab, { kind: 'config', cfg });
    }
    for (const [id, cfg] of a.configs) if (workerIndex(id, this.opts.workers, this.opts.nodes) === w) n.hostConfigs.set(id, cfg);
    for (const tab of worker.tablets.values()) {
      if (a.leaseUntil > tab.lease) {
        tab.lease = a.leaseUntil;
        this.tell(tab, { kind: 'lease', until: a.leaseUntil });
      }
    }
  }

  /** Recovery, exactly as TabletActor.load(): checkpoint, then the log records on disk. */
  private loadTablet(n: SimNode, id: number): SimTablet {
    const disk = n.disks.get(id)!;
    const state = new TabletState(id, disk.baseLsn, Math.max(1, disk.baseEpoch));
    for (const [row, col, value] of disk.baseCells.values()) state.putCell(row, col, value);
    let lastEpoch = disk.baseEpoch;
    for (const rec of disk.records) {
      state.apply(rec);
      lastEpoch = rec.epoch;
    }
    const core = new ReplicaCore({ ...this.coreOpts, me: n.name, tablet: id }, { state, lastEpoch });
    const tab = new SimTablet(n, id, disk, core);
    tab.syncRequested = disk.lastLsn;
    if (tab.chain.length !== core.lsn + 1) this.fail(`recovery of ${n.name}/t${id}: chain ${tab.chain.length - 1} != lsn ${core.lsn}`);
    return tab;
  }

  private tabletOfNode(n: SimNode, id: number): SimTablet | undefined {
    if (!n.up) return undefined;
    const w = n.workers[workerIndex(id, this.opts.workers, this.opts.nodes)]!;
    return w.up ? w.tablets.get(id) : undefined;
  }

  private nodeRequest(n: SimNode, env: Envelope): void {
    const req = env.body;
    const t = req.t as string;
    if (!['get', 'put', 'cput', 'del', 'cols', 'scan', 'repl', 'catchup', 'position'].includes(t)) return this.reply(env, { t: 'error', code: 'bad_request', message: t });
    const w = n.workers[workerIndex(req.tablet, this.opts.workers, this.opts.nodes)]!;
    if (!w.up) return; // the worker's socket is gone
    if (n.lastAssign === null) return this.reply(env, { t: 'error', code: 'unavailable', message: `${n.name} has not heard from the master yet` });
    const tab = w.tablets.get(req.tablet);
    if (!tab) return this.reply(env, { t: 'error', code: 'not_mine', message: `tablet ${req.tablet} is not served by ${n.name}` });
    const token = tab.nextToken++;
    tab.responders.set(token, (rep) => this.reply(env, rep, tab.snapshotChains.get(snapshotId(rep))));
    let input: Input;
    if (t === 'repl') input = { kind: 'repl', token, req };
    else if (t === 'catchup') input = { kind: 'catchup', token, req };
    else if (t === 'position') input = { kind: 'position', token, epoch: req.epoch };
    else {
      input = { kind: 'client', token, req };
      tab.clientTokens.set(token, { lsn: -1, write: t === 'put' || t === 'cput' || t === 'del' });
    }
    this.tell(tab, input);
  }

  // ---- tablets (tablet.ts) ----

  /** Puts an input in the tablet's mailbox (handled at once unless an install blocks it). */
  private tell(tab: SimTablet, input: Input, snapChain?: number[]): void {
    if (!tab.alive) return;
    if (tab.blocked) {
      tab.queue.push(() => this.feed(tab, input, snapChain));
      return;
    }
    this.feed(tab, input, snapChain);
  }

  private feed(tab: SimTablet, input: Input, snapChain?: number[]): void {
    if (!tab.alive) return;
    tab.incomingChain = snapChain ?? null;
    const effects = tab.core.handle(input, this.now);
    if (input.kind === 'client') {
      const ct = tab.clientTokens.get(input.token);
      if (ct) ct.lsn = tab.core.lsn;
      // Accepting a request as primary (anything but an immediate refusal) needs a valid lease.
      const refused = effects.some((e) => e.kind === 'reply' && e.token === input.token && e.reply.t === 'error');
      if (!refused && input.req.t !== 'scan' && !(tab.lease > this.now)) this.fail(`${tab.node.name}/t${tab.id} accepted ${input.req.t} as primary without a valid lease (lease until ${tab.lease.toFixed(1)})`);
    }
    this.carryOut(tab, effects, input);
    tab.incomingChain = null;
  }

  private carryOut(tab: SimTablet, effects: Effect[], input: Input | null): void {
    const n = tab.node;
    let appended = 0;
    let install: Extract<Effect, { kind: 'install' }> | null = null;
    for (const e of effects) {
      switch (e.kind) {
        case 'append': {
          const rec = e.record;
          if (rec.lsn !== tab.chain.length) this.fail(`${n.name}/t${tab.id} appends lsn ${rec.lsn} after ${tab.chain.length - 1}`);
          tab.chain.push(extendChain(tab.chain[tab.chain.length - 1]!, recordHash(rec)));
          this.diskAppend(tab, rec);
          appended = rec.lsn;
          if (input?.kind === 'client') this.actsAsPrimary(tab, rec.epoch, `appends lsn ${rec.lsn}`);
          break;
        }
        case 'reply': {
          if (e.reply.t === 'catchup_rep' && e.reply.mode === 'snapshot' && !tab.snapshotChains.has(e.reply.id)) {
            // The snapshot was taken in this very step: its content is our log up to its lsn.
            tab.snapshotChains.set(e.reply.id, tab.chain.slice(0, e.reply.lsn + 1));
          }
          this.deliverReply(tab, e.token, e.reply);
          break;
        }
        case 'send': {
          const req = e.req;
          const inc = n.inc;
          const to = this.byName.get(e.to);
          const onFail = (): void => {
            if (inc === n.inc && req.t === 'catchup') this.tell(tab, { kind: 'catchup_rep', rep: { t: 'error', code: 'unavailable' } });
          };
          if (!to) {
            onFail();
            break;
          }
          this.request(n.name, n.pending, n, e.to, req, this.opts.requestMs, (rep, env) => {
            if (inc !== n.inc) return;
            if (rep.t === 'repl_ack') this.tell(tab, { kind: 'repl_ack', from: e.to, rep });
            else if (rep.t === 'catchup_rep') this.tell(tab, { kind: 'catchup_rep', rep }, env.snapChain);
            else if (req.t === 'catchup') this.tell(tab, { kind: 'catchup_rep', rep: { t: 'error', code: 'unavailable' } });
          }, onFail);
          break;
        }
        case 'master': {
          this.request(n.name, n.pending, n, 'master', e.req, this.opts.requestMs, () => undefined, () => undefined);
          if (this.opts.verbose) this.note(`  ${n.name}/t${tab.id} -> master ${describe(e.req)}`);
          break;
        }
        case 'install':
          install = e;
          break;
      }
    }
    if (appended > tab.syncRequested) {
      tab.syncRequested = appended;
      const lsn = appended;
      this.whenDurable(tab, lsn, () => this.tell(tab, { kind: 'durable', lsn }));
    }
    if (install) this.startInstall(tab, install);
  }

  // ---- the disk (wal.ts semantics) ----

  private diskAppend(tab: SimTablet, rec: LogRecord): void {
    const d = tab.disk;
    if (d.install) this.fail(`${tab.node.name}/t${tab.id}: append during install`);
    if (rec.lsn !== d.lastLsn + 1) this.fail(`${tab.node.name}/t${tab.id}: disk append lsn ${rec.lsn} after ${d.lastLsn}`);
    d.records.push(rec);
    d.chain.push(tab.chain[rec.lsn]!);
    this.scheduleFlush(d);
  }

  private scheduleFlush(d: SimDisk): void {
    if (d.flushScheduled || d.flushUpTo > 0 || d.lastLsn <= d.durableLsn) return;
    d.flushScheduled = true;
    const gen = d.gen;
    // Group commit: the flusher takes everything appended so far, writes it, fdatasyncs.
    this.schedule(0, null, () => {
      if (gen !== d.gen) return;
      d.flushScheduled = false;
      if (d.lastLsn <= d.durableLsn) return;
      d.flushUpTo = d.lastLsn;
      const x = this.rng.next();
      const ms = this.opts.slowDisk * (x < 0.9 ? this.rng.float(0.3, 6) : this.rng.float(6, 60));
      this.schedule(ms, null, () => {
        if (gen !== d.gen) return;
        d.durableLsn = Math.max(d.durableLsn, d.flushUpTo);
        d.flushUpTo = 0;
        this.releaseWaiters(d);
        this.maybeCheckpoint(d);
        if (d.install?.phase === 'flush' && d.durableLsn >= d.lastLsn) this.installWrite(d);
        else this.scheduleFlush(d);
      });
    });
  }

  private releaseWaiters(d: SimDisk): void {
    const ready = d.waiters.filter((w) => w.lsn <= d.durableLsn);
    d.waiters = d.waiters.filter((w) => w.lsn > d.durableLsn);
    for (const w of ready) w.cb();
  }

  /** wal.whenDurable(lsn).then(cb); the callback reaches the tablet's mailbox like a tell. */
  private whenDurable(tab: SimTablet, lsn: number, cb: () => void): void {
    const d = tab.disk;
    const n = tab.node;
    const run = (): void => this.schedule(0, n, () => cb());
    if (lsn <= d.durableLsn) return run();
    d.waiters.push({ lsn, cb: run });
  }

  /** A checkpoint (durable prefix folded into checkpoint.dat); equivalent for recovery to tablet.ts's. */
  private maybeCheckpoint(d: SimDisk): void {
    const durableRecs = d.durableLsn - d.baseLsn;
    if (d.install || durableRecs < 24 || !this.rng.chance(0.3)) return;
    for (const rec of d.records.slice(0, durableRecs)) {
      const key = `${rec.row}\u0000${rec.col}`;
      if (rec.kind === 'put') d.baseCells.set(key, [rec.row, rec.col, rec.value ?? new Uint8Array(0)]);
      else d.baseCells.delete(key);
      d.baseEpoch = rec.epoch;
    }
    d.records = d.records.slice(durableRecs);
    d.baseLsn = d.durableLsn;
  }

  private startInstall(tab: SimTablet, e: Extract<Effect, { kind: 'install' }>): void {
    const chain = tab.incomingChain;
    if (!chain) return this.fail(`${tab.node.name}/t${tab.id}: install without a snapshot chunk`);
    if (chain.length !== e.lsn + 1) this.fail(`${tab.node.name}/t${tab.id}: snapshot chain ${chain.length - 1} != lsn ${e.lsn}`);
    tab.chain = chain.slice();
    tab.blocked = true;
    const d = tab.disk;
    const n = tab.node;
    const inc = n.inc;
    this.snapshots++;
    this.note(`${n.name}/t${tab.id} installs a snapshot at lsn ${e.lsn} epoch ${e.epoch} (${e.cells.length} cells)`);
    d.install = {
      phase: 'flush',
      lsn: e.lsn,
      epoch: e.epoch,
      cells: e.cells as Cell[], // no value files in the simulator: never cold
      chain: chain.slice(),
      done: () => {
        this.schedule(0, n, () => {
          if (inc !== n.inc || !tab.alive) return;
          tab.syncRequested = e.lsn;
          tab.blocked = false;
          this.carryOut(tab, tab.core.handle({ kind: 'installed', lsn: e.lsn }, this.now), null);
          while (!tab.blocked && tab.queue.length > 0) tab.queue.shift()!();
        });
      },
    };
    if (d.durableLsn >= d.lastLsn && d.flushUpTo === 0) this.installWrite(d);
    else this.scheduleFlush(d);
  }

  private installWrite(d: SimDisk): void {
    const ins = d.install!;
    ins.phase = 'write';
    const gen = d.gen;
    this.schedule(this.rng.float(1, 30), null, () => {
      if (gen !== d.gen || d.install !== ins) return;
      this.applyInstall(d);
      d.install = null;
      // Waiters up to the snapshot's lsn resolve, later ones are rejected (records replaced).
      this.releaseWaiters(d);
      d.waiters = [];
      ins.done();
    });
  }

  private applyInstall(d: SimDisk): void {
    const ins = d.install!;
    d.baseLsn = ins.lsn;
    d.baseEpoch = ins.epoch;
    d.baseCells = new Map(ins.cells.map((c) => [`${c[0]}\u0000${c[1]}`, c]));
    d.records = [];
    d.chain = ins.chain.slice();
    d.durableLsn = ins.lsn;
  }

  /** The process dies: what survives on disk is the durable log plus any prefix of the write in progress. */
  private crashDisk(d: SimDisk): void {
    d.gen++;
    if (d.install?.phase === 'write') {
      // wal.install: segments are deleted first, then the checkpoint is renamed into place.
      const x = this.rng.int(0, 2);
      if (x === 1) {
        d.records = [];
        d.chain = d.chain.slice(0, d.baseLsn + 1);
        d.durableLsn = d.baseLsn;
      } else if (x === 2) this.applyInstall(d);
    } else {
      const keep = d.flushUpTo > d.durableLsn ? this.rng.int(d.durableLsn, d.flushUpTo) : d.durableLsn;
      d.records = d.records.slice(0, keep - d.baseLsn);
      d.chain = d.chain.slice(0, keep + 1);
    }
    d.durableLsn = d.lastLsn; // the reopened WAL treats what it reads back as durable
    d.install = null;
    d.flushScheduled = false;
    d.flushUpTo = 0;
    d.waiters = [];
  }

  // ---- scripting (targeted scenarios) ----

  /** Runs `fn` at simulated time `ms`. */
  at(ms: number, fn: () => void): void {
    this.schedule(ms - this.now, null, fn, `script @${ms}`);
  }
  /** The primary of a tablet in the master's map. */
  primaryOf(tablet: number): string | null {
    return this.assignments()[tablet]!.primary;
  }
  replicasOf(tablet: number): string[] {
    return [...this.assignments()[tablet]!.replicas];
  }
  inSyncOf(tablet: number): string[] {
    return [...this.assignments()[tablet]!.inSync];
  }
  crash(name: string): void {
    const n = this.byName.get(name)!;
    if (n.up) this.crashNode(n);
  }
  restart(name: string): void {
    this.restartNode(this.byName.get(name)!);
  }
  cutLink(a: string, b: string, ms: number): void {
    this.partition(a, b, ms);
  }
  /** Kills the worker thread that serves `tablet` on node `name` (restarted after restartDelayMs). */
  crashWorkerOf(name: string, tablet: number): void {
    this.crashWorker(this.byName.get(name)!, workerIndex(tablet, this.opts.workers, this.opts.nodes));
  }
  /** The row names the clients use that live in `tablet`. */
  rowsOf(tablet: number): string[] {
    return [...this.rowsByTablet[tablet]!];
  }

  // ---- faults ----

  private killTablets(w: SimWorker): void {
    for (const tab of w.tablets.values()) {
      tab.alive = false;
      tab.responders.clear();
      this.crashDisk(tab.disk);
    }
    w.tablets.clear();
    w.gen++;
  }

  private crashNode(n: SimNode): void {
    this.note(`FAULT crash ${n.name} (pid ${n.pid})`);
    n.up = false;
    n.inc++;
    n.paused = false;
    n.deferred = [];
    n.pending.clear();
    for (const w of n.workers) this.killTablets(w);
    // Disks of tablets that were not loaded still lose nothing (they had no unsynced appends).
    for (const d of n.disks.values()) if (d.flushUpTo > 0 || d.flushScheduled || d.install) this.crashDisk(d);
    n.lastAssign = null;
  }

  private restartNode(n: SimNode): void {
    if (n.up) return;
    this.note(`FAULT restart ${n.name}`);
    this.startNode(n, 0);
  }

  /**
   * tablet-host.ts evicts a tablet: TabletActor.close(checkpoint) waits until the log is durable, feeds
   * the core that 'durable' notice and releases the replies it produces (only the replies), checkpoints,
   * answers every request still in its mailbox and every other responder with 'unavailable', and the
   * next incarnation loads from disk once the close is done (getting config and lease at once).
   */
  /** Hands a core's reply to whoever waits for it, noting client acknowledgements for the invariants. */
  private deliverReply(tab: SimTablet, token: number, reply: Reply): void {
    const respond = tab.responders.get(token);
    tab.responders.delete(token);
    const ct = tab.clientTokens.get(token);
    if (ct) {
      tab.clientTokens.delete(token);
      if (reply.t !== 'error') this.clientAcked(tab, ct.lsn, reply);
    }
    respond?.(reply);
  }

  private evictTablet(tab: SimTablet): void {
    if (!tab.alive || tab.closing || tab.blocked) return;
    const n = tab.node;
    const inc = n.inc;
    const w = n.workers[workerIndex(tab.id, this.opts.workers, this.opts.nodes)]!;
    this.note(`FAULT evict ${n.name}/t${tab.id}`);
    tab.closing = true;
    tab.blocked = true;
    const finish = (): void => {
      if (inc !== n.inc || !tab.alive) return;
      for (const e of tab.core.handle({ kind: 'durable', lsn: tab.disk.lastLsn }, this.now)) {
        if (e.kind === 'reply') this.deliverReply(tab, e.token, e.reply);
      }
      tab.alive = false;
      for (const [token, respond] of tab.responders) {
        const write = tab.clientTokens.get(token)?.write === true;
        respond({ t: 'error', code: write && this.opts.evictionAnswersInternal ? 'internal' : 'unavailable', message: `tablet ${tab.id} is closing` });
      }
      tab.responders.clear();
      w.tablets.delete(tab.id);
      n.hostConfigs.delete(tab.id);
      const queued = tab.queue;
      tab.queue = [];
      if (n.lastAssign) this.assign(n, workerIndex(tab.id, this.opts.workers, this.opts.nodes));
      void queued; // messages in the closed mailbox: requests were answered above (their responders), the rest are dropped
    };
    this.whenDurable(tab, tab.core.lsn, () => this.schedule(this.rng.float(0.5, 5), n, finish));
  }

  private crashWorker(n: SimNode, wi: number): void {
    const w = n.workers[wi]!;
    if (!n.up || !w.up) return;
    this.note(`FAULT worker ${wi} of ${n.name} dies (restart in ${this.opts.restartDelayMs} ms)`);
    w.up = false;
    this.killTablets(w);
    const inc = n.inc;
    this.schedule(this.opts.restartDelayMs, n, () => {
      if (inc !== n.inc || w.up) return;
      w.up = true;
      this.note(`${n.name} worker ${wi} restarted`);
      // node.ts: a worker that becomes ready gets the last assignment (configs and lease) at once.
      for (const id of n.hostConfigs.keys()) if (workerIndex(id, this.opts.workers, this.opts.nodes) === wi) n.hostConfigs.delete(id);
      if (n.lastAssign) this.assign(n, wi);
      this.startTicker(n, wi);
    });
  }

  private pause(n: SimNode, ms: number): void {
    if (!n.up || n.paused) return;
    this.note(`FAULT pause ${n.name} for ${ms.toFixed(0)} ms`);
    n.paused = true;
    const inc = n.inc;
    this.schedule(ms, null, () => {
      if (inc !== n.inc || !n.paused) return;
      this.resume(n);
    });
  }

  private resume(n: SimNode): void {
    n.paused = false;
    this.note(`${n.name} resumes (${n.deferred.length} deferred events)`);
    const evs = n.deferred;
    n.deferred = [];
    for (const ev of evs) this.heap.push({ ...ev, t: this.now, seq: this.seq++ });
  }

  private partition(a: string, b: string, ms: number): void {
    this.note(`FAULT cut ${a} <-> ${b} for ${ms.toFixed(0)} ms`);
    this.cut.add(`${a}|${b}`);
    this.cut.add(`${b}|${a}`);
    this.schedule(ms, null, () => {
      this.cut.delete(`${a}|${b}`);
      this.cut.delete(`${b}|${a}`);
      this.note(`link ${a} <-> ${b} healed`);
    });
  }

  private impaired(): number {
    return this.nodes.filter((n) => !n.up || n.paused).length;
  }

  private fault(): void {
    if (this.healing) return;
    this.faults++;
    const r = this.rng;
    const up = this.nodes.filter((n) => n.up && !n.paused);
    const primaries = this.assignments()
      .map((a) => (a.primary === null ? undefined : this.byName.get(a.primary)))
      .filter((n): n is SimNode => n !== undefined && n.up && !n.paused);
    const victim = (): SimNode | undefined => (primaries.length > 0 && r.chance(0.6) ? r.pick(primaries) : up.length > 0 ? r.pick(up) : undefined);
    const x = r.next();
    const restartIn = (): number => (r.chance(0.3) ? r.float(20, 300) : r.float(300, 2000));
    if (x < 0.3) {
      const v = victim();
      if (v && this.impaired() < 2) {
        this.crashNode(v);
        this.schedule(restartIn(), null, () => this.restartNode(v));
      }
    } else if (x < 0.4) {
      // two at once
      if (this.impaired() === 0 && up.length >= 2) {
        const a = victim()!;
        const b = r.pick(up.filter((n) => n !== a));
        this.crashNode(a);
        this.crashNode(b);
        this.schedule(restartIn(), null, () => this.restartNode(a));
        this.schedule(restartIn(), null, () => this.restartNode(b));
      }
    } else if (x < 0.55) {
      const v = victim();
      if (v && this.impaired() < 2) this.pause(v, r.chance(0.5) ? r.float(50, 500) : r.float(500, 2000));
    } else if (x < 0.72) {
      const v = victim();
      if (v) {
        const ms = r.float(200, 2000);
        this.partition(v.name, 'master', ms);
        if (r.chance(0.4)) {
          const other = r.pick(this.nodes.filter((n) => n !== v));
          this.partition(v.name, other.name, ms);
        }
      }
    } else if (x < 0.85) {
      const v = victim();
      if (v) this.crashWorker(v, r.int(0, this.opts.workers - 1));
    } else if (x < 0.93) {
      if (this.master.up) {
        this.note('FAULT master crash');
        this.master.up = false;
        this.master.inc++;
        this.master.pending.clear();
        this.schedule(r.float(50, 1000), null, () => {
          if (!this.master.up) this.restartMaster();
        });
      }
    } else if (this.opts.evictions && r.chance(0.5)) {
      const tabs = this.nodes.flatMap((n) => (n.up && !n.paused ? n.workers.flatMap((w) => (w.up ? [...w.tablets.values()] : [])) : []));
      if (tabs.length > 0) this.evictTablet(r.pick(tabs));
    } else {
      // a burst of loss
      const before = this.drop;
      this.drop = r.float(0.2, 0.6);
      this.note(`FAULT lossy network (${this.drop.toFixed(2)}) for a while`);
      this.schedule(r.float(100, 800), null, () => {
        if (!this.healing) this.drop = before;
      });
    }
    this.schedule(r.exp(this.opts.faultEveryMs), null, () => this.fault());
  }

  private heal(): void {
    this.note('HEAL: no more faults; restart everything, reliable network, clients stop');
    this.healing = true;
    this.healStart = this.now;
    this.drop = 0;
    this.dup = 0;
    this.cut.clear();
    if (!this.master.up) this.restartMaster();
    for (const n of this.nodes) {
      if (n.paused) this.resume(n);
      if (!n.up) this.restartNode(n);
    }
  }

  // ---- clients (session.ts) ----

  private clientNext(c: SimClient): void {
    if (this.healing) return;
    const r = this.rng;
    const row = `r${r.int(0, this.opts.rows - 1)}`;
    const tablet = tabletOf(row, this.opts.tablets);
    const key = `${row}/c`;
    const x = r.next();
    const v = `${c.name}.${++c.n}`;
    let req: DataRequest;
    let op: Op;
    if (x < 0.35) {
      req = { t: 'put', tablet, row, col: 'c', value: enc.encode(v) };
      op = { key, process: c.index, kind: 'put', value: v, invoke: this.now, complete: null, outcome: 'unknown' };
    } else if (x < 0.65) {
      req = { t: 'get', tablet, row, col: 'c' };
      op = { key, process: c.index, kind: 'get', invoke: this.now, complete: null, outcome: 'unknown' };
    } else if (x < 0.87) {
      const expect = r.chance(0.75) ? (c.seen.get(key) ?? null) : null;
      req = { t: 'cput', tablet, row, col: 'c', expect: expect === null ? null : enc.encode(expect), value: enc.encode(v) };
      op = { key, process: c.index, kind: 'cput', value: v, expect, invoke: this.now, complete: null, outcome: 'unknown' };
    } else {
      req = { t: 'del', tablet, row, col: 'c' };
      op = { key, process: c.index, kind: 'delete', invoke: this.now, complete: null, outcome: 'unknown' };
    }
    const write = req.t !== 'get';
    c.current = { op, req, write, deadline: this.now + Math.max(this.opts.requestMs, 3000), attempt: 0 };
    this.note(`${c.name} invokes ${describe(req)}`);
    this.clientAttempt(c);
  }

  private clientMap(c: SimClient, refresh: boolean): TabletMap | null {
    if ((refresh || c.map === null) && this.master.up) c.map = this.master.core.map();
    return c.map;
  }

  private clientAttempt(c: SimClient): void {
    const cur = c.current!;
    const a = cur.attempt++;
    if (a > 0 && (a >= 60 || this.now >= cur.deadline)) return this.clientDone(c, 'unavailable');
    const go = (): void => {
      const map = this.clientMap(c, a > 0);
      const primary = map?.assignments[cur.req.tablet]?.primary ?? null;
      if (primary === null) return this.clientAttempt(c);
      const node = this.byName.get(primary)!;
      const w = node.workers[workerIndex(cur.req.tablet, this.opts.workers, this.opts.nodes)]!;
      if (!node.up || !w.up) {
        // ZeroMQ cannot connect within connectWaitMs: the request never left (retry).
        this.schedule(100, null, () => this.clientAttempt(c));
        return;
      }
      this.request(c.name, c.pending, null, primary, cur.req, this.opts.requestMs, (rep) => {
        if (rep.t !== 'error') return this.clientDone(c, 'ok', rep);
        const code: ErrorCode = rep.code;
        if (code === 'not_mine' || code === 'not_primary' || code === 'unavailable' || code === 'busy') return this.clientAttempt(c);
        if (code === 'internal' && cur.write) return this.clientDone(c, 'unknown');
        return this.clientDone(c, 'error');
      }, () => {
        if (!cur.write) return this.clientAttempt(c);
        this.clientDone(c, 'unknown');
      });
    };
    if (a === 0) go();
    else this.schedule(Math.min(100, 5 * 2 ** (a - 1)), null, go);
  }

  private clientDone(c: SimClient, how: 'ok' | 'unknown' | 'unavailable' | 'error', rep?: Reply): void {
    const cur = c.current!;
    c.current = null;
    const op = cur.op;
    let record = true;
    if (how === 'ok') {
      op.complete = this.now;
      op.outcome = 'ok';
      switch (rep!.t) {
        case 'value':
          op.result = dec.decode(rep.value);
          c.seen.set(op.key, op.result);
          break;
        case 'not_found':
          if (op.kind === 'get') op.result = null;
          else {
            // del of an absent cell: it observed "absent" and changed nothing, i.e. a read of null.
            op.kind = 'get';
            op.result = null;
          }
          c.seen.set(op.key, null);
          break;
        case 'ok':
          c.seen.set(op.key, op.kind === 'delete' ? null : op.value!);
          break;
        case 'mismatch':
          op.outcome = 'fail';
          c.seen.set(op.key, rep.current === null ? null : dec.decode(rep.current));
          break;
        default:
          this.fail(`unexpected reply ${rep!.t} to ${op.kind}`);
      }
    } else if (how === 'unknown') {
      op.outcome = 'unknown';
      op.complete = null;
    } else {
      record = false; // definitely not applied (every attempt refused) or a failed read
    }
    if (record) this.history.push(op);
    this.note(`${c.name} ${formatOp(op)}${record ? '' : ` (${how}, not recorded)`}`);
    if (!this.healing) this.schedule(this.rng.float(0, this.opts.thinkMs), null, () => this.clientNext(c));
  }

  // ---- invariants ----

  /** Bookkeeping of "acts as primary": at most one node per (tablet, epoch). */
  private actsAsPrimary(tab: SimTablet, epoch: number, what: string): void {
    const key = `${tab.id}:${epoch}`;
    const prev = this.primaryByEpoch.get(key);
    if (prev === undefined) this.primaryByEpoch.set(key, tab.node.name);
    else if (prev !== tab.node.name) this.fail(`two primaries for tablet ${tab.id} in epoch ${epoch}: ${prev} and ${tab.node.name} (${what})`);
  }

  /** A client got a non-error reply that waited for lsn `lsn` to commit: the log up to lsn is committed. */
  private clientAcked(tab: SimTablet, lsn: number, rep: Reply): void {
    const epoch = tab.core.config?.epoch ?? -1;
    this.actsAsPrimary(tab, epoch, `replies ${rep.t}`);
    if (lsn < 0) return;
    const c = this.committed[tab.id]!;
    if (tab.chain.length <= lsn) this.fail(`${tab.node.name}/t${tab.id} acknowledged lsn ${lsn} but its log ends at ${tab.chain.length - 1}`);
    if (lsn < c.length) {
      if (c[lsn] !== tab.chain[lsn]) this.fail(`${tab.node.name}/t${tab.id} acknowledged a history up to lsn ${lsn} that differs from the committed one`);
    } else {
      const last = c.length - 1;
      if (tab.chain[last] !== c[last]) this.fail(`${tab.node.name}/t${tab.id} acknowledged lsn ${lsn} on a log that lost committed lsn ${last}`);
      for (let i = c.length; i <= lsn; i++) c.push(tab.chain[i]!);
    }
  }

  /** The log of a node for a tablet: in memory if loaded, otherwise what its disk holds. */
  private chainOf(name: string, t: number): number[] {
    const n = this.byName.get(name)!;
    const tab = this.tabletOfNode(n, t);
    return tab ? tab.chain : n.disks.get(t)!.chain;
  }

  private checkInvariants(): void {
    const now = this.now;
    const asg = this.assignments();
    for (let t = 0; t < this.opts.tablets; t++) {
      // 1. At most one primary among nodes with a valid lease.
      let acting: SimTablet | null = null;
      for (const n of this.nodes) {
        const tab = this.tabletOfNode(n, t);
        if (!tab || !(tab.lease > now) || !tab.core.isPrimary()) continue;
        if (acting) this.fail(`tablet ${t}: ${acting.node.name} (epoch ${acting.core.config?.epoch}) and ${n.name} (epoch ${tab.core.config?.epoch}) both act as primary with valid leases`);
        acting = tab;
      }
      const a = asg[t]!;
      // 2. In-sync replicas' logs are prefixes of the acting primary's log.
      if (this.opts.checkPrefix && a.primary !== null && acting && acting.node.name === a.primary && acting.core.config?.epoch === a.epoch) {
        for (const r of a.inSync) {
          if (r === a.primary) continue;
          const ch = this.chainOf(r, t);
          if (!isPrefix(ch, acting.chain)) {
            this.fail(`tablet ${t}: in-sync replica ${r} (log end ${ch.length - 1}) is not a prefix of primary ${a.primary}'s log (end ${acting.chain.length - 1}, epoch ${a.epoch})${firstDiff(ch, acting.chain)}`);
          }
        }
      }
      // 3. Every in-sync replica (every possible next primary) holds the committed prefix.
      const c = this.committed[t]!;
      if (c.length > 1) {
        for (const r of a.inSync) {
          const ch = this.chainOf(r, t);
          if (!isPrefix(c, ch)) this.fail(`tablet ${t}: in-sync ${r} (log end ${ch.length - 1}) lacks committed lsn ${c.length - 1} (or holds different records)${firstDiff(c, ch)}`);
        }
      }
    }
  }

  private checkConverged(): void {
    if (this.clients.some((c) => c.current !== null)) return;
    if (!this.master.up) return;
    const asg = this.assignments();
    for (const a of asg) {
      if (a.primary === null || a.inSync.length !== a.replicas.length) return this.healTimeout();
      const p = this.tabletOfNode(this.byName.get(a.primary)!, a.id);
      if (!p || !p.core.isPrimary() || p.blocked) return this.healTimeout();
      for (const r of a.replicas) {
        const tab = this.tabletOfNode(this.byName.get(r)!, a.id);
        if (!tab || tab.blocked) return this.healTimeout();
        const cfg = tab.core.config;
        if (!cfg || cfg.epoch !== a.epoch || cfg.inSync.length !== a.replicas.length || cfg.primary !== a.primary) return this.healTimeout();
        if (tab.core.lsn !== p.core.lsn || tab.core.durableLsn !== tab.core.lsn) return this.healTimeout();
      }
      if (p.core.commitLsn !== p.core.lsn) return this.healTimeout();
    }
    this.converged = true;
    this.note(`converged ${(this.now - this.healStart).toFixed(0)} ms after healing started`);
  }

  private healTimeout(): void {
    if (this.now - this.healStart > this.opts.healLimitMs) {
      const asg = this.assignments();
      const lines = asg.map((a) => {
        const reps = a.replicas.map((r) => {
          const tab = this.tabletOfNode(this.byName.get(r)!, a.id);
          return tab ? `${r}:${tab.core.role}@${tab.core.lsn}/${tab.core.durableLsn}e${tab.core.config?.epoch}${tab.blocked ? 'B' : ''}` : `${r}:-`;
        });
        return `t${a.id} epoch ${a.epoch} primary ${a.primary} inSync [${a.inSync.join(',')}] ${reps.join(' ')}`;
      });
      const pending = this.clients.filter((c) => c.current).map((c) => `${c.name}: ${describe(c.current!.req)}`);
      this.fail(`liveness: not converged ${this.opts.healLimitMs} ms after healing:\n  ${lines.join('\n  ')}${pending.length ? `\n  clients waiting: ${pending.join('; ')}` : ''}`);
    }
  }

  private finalChecks(): SimResult {
    // Every replica of a tablet holds the same log and the same data, including every committed write;
    // and recovering it from its disk gives back exactly that (everything is durable now).
    for (const a of this.assignments()) {
      const c = this.committed[a.id]!;
      const p = this.tabletOfNode(this.byName.get(a.primary!)!, a.id)!;
      const want = cellsOf(p.core.tablet);
      for (const r of a.replicas) {
        const n = this.byName.get(r)!;
        const tab = this.tabletOfNode(n, a.id)!;
        if (tab.chain.length !== p.chain.length || tab.chain[tab.chain.length - 1] !== p.chain[p.chain.length - 1]) this.fail(`final: ${r}'s log of tablet ${a.id} differs from primary ${a.primary}'s`);
        if (!isPrefix(c, tab.chain)) this.fail(`final: ${r} lacks committed writes of tablet ${a.id}${firstDiff(c, tab.chain)}`);
        const got = cellsOf(tab.core.tablet);
        if (got !== want) this.fail(`final: ${r}'s data of tablet ${a.id} differs from the primary's:\n  ${got}\n  ${want}`);
        const recovered = this.loadTablet(n, a.id);
        if (recovered.core.lsn !== tab.core.lsn || cellsOf(recovered.core.tablet) !== got) this.fail(`final: ${r}/t${a.id} recovered from disk differs from memory (lsn ${recovered.core.lsn} vs ${tab.core.lsn})`);
      }
    }
    // Linearizability of the client history, per cell.
    const res = checkHistory(this.history, { timeoutMs: this.opts.linearizabilityMs });
    if (!res.ok && !res.timedOut) this.fail(`history not linearizable:\n${res.explanation}`);
    return {
      seed: this.opts.seed,
      steps: this.steps,
      simMs: this.now,
      ops: this.history.length,
      okOps: this.history.filter((o) => o.outcome !== 'unknown').length,
      unknownOps: this.history.filter((o) => o.outcome === 'unknown').length,
      faults: this.faults,
      elections: this.elections,
      dropsAsked: this.dropsAsked,
      handovers: this.handovers,
      linearizabilityTimedOut: res.timedOut === true,
      healMs: this.now - this.healStart,
      renewals: this.renewals,
      snapshots: this.snapshots,
      retransmits: this.nodes.reduce((sum, n) => sum + [...n.workers].reduce((s2, w) => s2 + [...w.tablets.values()].reduce((s3, t) => s3 + t.core.stats.retransmits, 0), 0), 0),
      finalEpochs: this.assignments().map((a) => a.epoch),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

function sameConfig(a: TabletConfig, b: TabletConfig): boolean {
  return a.epoch === b.epoch && a.primary === b.primary && a.inSync.join() === b.inSync.join() && a.replicas.join() === b.replicas.join();
}

function isDataRequest(body: { t: string }): boolean {
  return body.t === 'get' || body.t === 'put' || body.t === 'cput' || body.t === 'del' || body.t === 'cols' || body.t === 'scan';
}

function snapshotId(rep: Reply): number {
  return rep.t === 'catchup_rep' && rep.mode === 'snapshot' ? rep.id : -1;
}

function cellsOf(s: TabletState): string {
  return [...s.allCells()]
    .map(([r, c, v]) => `${r}/${c}=${dec.decode(v as Uint8Array)}`) // no value files in the simulator: never cold
    .sort()
    .join(' ');
}

function firstDiff(a: readonly number[], b: readonly number[]): string {
  const n = Math.min(a.length, b.length);
  for (let i = 1; i < n; i++) if (a[i] !== b[i]) return ` (first difference at lsn ${i})`;
  return '';
}

function describe(body: any): string {
  switch (body.t) {
    case 'put':
      return `put t${body.tablet} ${body.row}=${dec.decode(body.value)}`;
    case 'cput':
      return `cput t${body.tablet} ${body.row} ${body.expect === null ? '<absent>' : dec.decode(body.expect)}->${dec.decode(body.value)}`;
    case 'get':
    case 'del':
      return `${body.t} t${body.tablet} ${body.row}`;
    case 'repl':
      return `repl t${body.tablet} e${body.epoch} prev ${body.prevLsn}/${body.prevEpoch} +${body.records.length} commit ${body.commit}`;
    case 'repl_ack':
      return `repl_ack e${body.epoch} ${body.ok ? 'ok' : body.reason} last ${body.lastLsn} durable ${body.durable}`;
    case 'catchup':
      return `catchup t${body.tablet} e${body.epoch} from ${body.from} last ${body.lastLsn}/${body.lastEpoch}${body.snapshot ? ` snap ${body.snapshot}` : ''}`;
    case 'catchup_rep': {
      const r = body as CatchupRep;
      if (r.mode === 'tail') return `catchup_rep tail +${r.records.length}${r.joined ? ' joined' : ''}`;
      if (r.mode === 'snapshot') return `catchup_rep snapshot #${r.id} lsn ${r.lsn} ${r.offset}${r.done ? ' done' : ''}`;
      return `catchup_rep ${r.mode}`;
    }
    case 'position':
      return `position t${body.tablet} e${body.epoch}`;
    case 'position_rep':
      return `position_rep ${body.lsn}`;
    case 'heartbeat':
      return `heartbeat ${body.node}`;
    case 'map':
      return `map v${body.map?.version} lease ${body.leaseMs}`;
    case 'in_sync':
    case 'drop':
      return `${body.t} t${body.tablet} ${body.node} e${body.epoch}`;
    case 'error':
      return `error ${body.code}`;
    default:
      return body.t;
  }
}

/** Runs one seed; throws SimFailure on a violation. */
export function runSeed(seed: number, overrides: Partial<SimOptions> = {}): SimResult {
  return new Simulation(optionsFor(seed, overrides)).run();
}

/** The options of one seed: the defaults, the seed's profile (when mixed), then the overrides. */
export function optionsFor(seed: number, overrides: Partial<SimOptions> = {}): SimOptions {
  const base = { ...defaultOptions(seed), ...overrides };
  if (!base.mixed) return base;
  const r = new Rng((seed ^ 0x5bd1e995) >>> 0);
  const nodes = r.pick([3, 4, 4, 5]);
  const profile: Partial<SimOptions> = {
    nodes,
    tablets: r.pick([2, 3, 4]),
    clients: r.pick([4, 6, 8]),
    slowNet: r.pick([1, 1, 2, 4]),
    drop: r.pick([0.01, 0.02, 0.05]),
    dup: r.pick([0, 0.01, 0.03]),
    faultEveryMs: r.pick([300, 600, 900]),
    ringRecords: r.pick([4, 8, 20, 64, 200_000]),
    slowDisk: r.pick([1, 1, 4]),
    thinkMs: r.pick([5, 20, 40]),
    batchBytes: r.pick([60, 200, 1000, 4 << 20]),
  };
  return { ...base, ...profile, ...overrides };
}
