// The master as a pure state machine: heartbeats, replies and clock in; the tablet map, lease grants
// and effects (persist the assignments, ask replicas for their log position) out. runMaster (master.ts)
// is its I/O edge, and the simulator in test/ drives it directly.
//
// Failover: when a tablet's primary is dead or stopped AND its lease has certainly expired, the master
// bumps the tablet's epoch, clears the primary (so nobody serves it), asks every live in-sync replica
// for its log end (which also fences it against the old epoch), and promotes the one with the longest
// log; the replicas that answered stay in sync (their logs are prefixes of the winner's), the rest drop out.
//
// Handing back: after a failover the primaries stay where the elections put them, so a node that came
// back serves no writes and another serves too many. Once the cluster has been whole and quiet for
// `rebalanceAfterMs`, the master moves one tablet at a time back to its preferred primary (the first
// of its replicas, as the initial assignment spread them): the same election with the old primary
// alive. It bumps the epoch and clears the primary, asks the in-sync replicas for their log ends
// (which fences them, the old primary too), and promotes the longest log, preferring the tablet's
// preferred node on a tie. The election finishes only once the old primary has answered (so it is
// fenced and refuses reads and writes) or every lease it was granted before the change has expired
// (later leases come with the map that takes the tablet from it). The tablet is unavailable for about
// one round of position requests.
import { replicaIndices } from '../transport/partition.js';
import type { MapNode, NodeState, NodeStatus, TabletAssignment, TabletMap, TabletReport } from '../transport/messages.js';

export interface MasterOptions {
  tablets: number;
  replication: number;
  storage: Array<{ name: string; control: string; workers: string[] }>;
  master: { name: string; address: string };
  leaseMs: number;
  /** Margin added to a lease before the master believes it expired (clock rate differences, delays). */
  leaseMarginMs: number;
  nodeDeadMs: number;
  electionTimeoutMs: number;
  /** Hand primaries back to their preferred nodes once the cluster has been whole and unchanged this long (0: never). */
  rebalanceAfterMs: number;
  /**
   * A gap longer than this between two inputs means the master itself did not run (paused, starved of
   * CPU): the nodes' silence during the gap is not counted against them (their heartbeats are waiting
   * in its socket). At most once per 4 × nodeDeadMs, so a master that lags all the time still finds
   * dead nodes. The core must then be ticked more often than this. 0 or absent: off.
   */
  stallMs?: number;
}

/**
 * MasterOptions.stallMs for a master ticked every heartbeat_ms / 2: at least four missed ticks, and at
 * most half of node_dead_ms (a node that heartbeated just before a longer stall is not yet dead).
 */
export function stallMsFor(nodeDeadMs: number, heartbeatMs: number): number {
  return Math.max(Math.floor(nodeDeadMs / 2), heartbeatMs * 2);
}

export interface PersistedAssignment {
  id: number;
  replicas: string[];
  primary: string | null;
  epoch: number;
  inSync: string[];
}

export type MasterEffect =
  | { kind: 'persist'; assignments: PersistedAssignment[]; version: number }
  | { kind: 'position'; node: string; tablet: number; epoch: number }
  | { kind: 'log'; msg: string };

interface NodeRecord {
  name: string;
  lastSeen: number | null;
  /** When the last lease granted to this node was granted (its lease ends before this + leaseMs). */
  leaseGrantedAt: number;
  pid: number | null;
  stopped: boolean;
}

interface Election {
  epoch: number;
  asked: Set<string>;
  answers: Map<string, number>;
  deadline: number;
}

/** A primary being handed back to the tablet's preferred node. */
interface Handover {
  tablet: number;
  from: string;
  to: string;
  epoch: number;
  /** When the old primary's tablet was taken: leases it was granted before then end by startedAt + lease + margin. */
  startedAt: number;
}

/** After a handover that did not reach its target, that tablet is not tried again for this long. */
const HANDOVER_RETRY_MS = 30_000;
/** Between two handovers (the quiet time counts only other changes). */
const HANDOVER_GAP_MS = 1000;
/**
 * A tablet is handed back only after its primary reported the same log end, equal to the target's, for
 * this long: with writes in flight the old primary's log is ahead, it would win the election again.
 */
const HANDOVER_IDLE_MS = 500;

/**
 * The first map version of a master incarnation: above the last persisted one (the node-state changes
 * an incarnation makes without persisting are far fewer than the margin) and above the wall clock in
 * ms (for a lost assignments file), so map versions only grow across restarts.
 */
export function firstMapVersion(persistedVersion: number, wallClockMs: number): number {
  return Math.max(wallClockMs, persistedVersion + 1_000_000);
}

/** Replica sets spread evenly: tablet t lives on nodes t, t+1, ..., t+R-1 (mod N); the first is primary. */
export function initialAssignments(names: string[], tablets: number, replication: number): PersistedAssignment[] {
  return Array.from({ length: tablets }, (_, id) => {
    const replicas = replicaIndices(id, names.length, replication).map((i) => names[i]!);
    return { id, replicas, primary: replicas[0]!, epoch: 1, inSync: [...replicas] };
  });
}

export class MasterCore {
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly assignments: TabletAssignment[];
  private readonly elections = new Map<number, Election>();
  private readonly states = new Map<string, NodeState>();
  private version = 1;
  private out: MasterEffect[] = [];
  private readonly startedAt: number;
  /** When the assignments last changed other than by a handover (quiet time before handing back). */
  private changedAt: number;
  private handoverEndedAt = -Infinity;
  private handover: Handover | null = null;
  private readonly handoverFailedAt = new Map<number, number>();
  /** Per tablet: when its primary last reported a different log end (writes going on). */
  private readonly lsnChangedAt = new Map<number, number>();
  /** The last input (tick, heartbeat, reply) and the last stall discounted: see MasterOptions.stallMs. */
  private lastInputAt: number | null = null;
  private lastStallAt = -Infinity;

  /**
   * `firstVersion`: the number of this incarnation's first map. It must exceed every map version a
   * previous incarnation handed out (clients keep the highest version they saw and ignore lower ones):
   * see firstMapVersion.
   */
  constructor(private readonly opts: MasterOptions, persisted: PersistedAssignment[] | null, now: number, firstVersion = 1) {
    this.startedAt = now;
    this.version = firstVersion;
    this.changedAt = now;
    const names = opts.storage.map((s) => s.name);
    // A master that starts (or restarts) must assume every node may hold a lease granted just now.
    for (const n of names) this.nodes.set(n, { name: n, lastSeen: null, leaseGrantedAt: now, pid: null, stopped: false });
    const base = persisted && persisted.length === opts.tablets ? persisted : initialAssignments(names, opts.tablets, opts.replication);
    this.assignments = base.map((a) => ({ ...a, replicas: [...a.replicas], inSync: [...a.inSync], lsn: {} }));
    if (!persisted) this.persist();
    for (const n of names) this.states.set(n, 'unknown');
  }

  get mapVersion(): number {
    return this.version;
  }

  takeEffects(): MasterEffect[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  // ---- inputs ----

  /** A heartbeat. Returns the lease granted (ms, 0 for none) or null for a node the topology does not know. */
  heartbeat(node: string, pid: number, tablets: TabletReport[], stopped: boolean, now: number): number | null {
    const rec = this.nodes.get(node);
    if (!rec) return null;
    this.discountStall(now);
    rec.lastSeen = now;
    rec.pid = pid;
    rec.stopped = stopped;
    for (const t of tablets) {
      const a = this.assignments[t.id];
      if (!a || !a.replicas.includes(node)) continue;
      if (a.lsn[node] !== t.lsn && a.primary === node) this.lsnChangedAt.set(t.id, now);
      a.lsn[node] = t.lsn;
    }
    this.tick(now);
    if (stopped) return 0;
    rec.leaseGrantedAt = now;
    return this.opts.leaseMs;
  }

  /** A replica's answer to a position request (lsn null: it did not answer). */
  positionReply(node: string, tablet: number, epoch: number, lsn: number | null, now: number): void {
    this.discountStall(now);
    const e = this.elections.get(tablet);
    if (!e || e.epoch !== epoch || !e.asked.has(node)) return;
    if (lsn === null) e.asked.delete(node);
    else e.answers.set(node, lsn);
    this.tryFinishElection(tablet, now);
  }

  /**
   * The primary says a joining replica has caught up. An in_sync naming the primary itself asks for a
   * new epoch (found by the simulator, test/sim): the primary may have restarted (process or worker
   * restart before the master noticed, tablet reload) and lost records of this epoch that replicas hold
   * durably, or may have stopped counting a replica it announced in sync; it must not write under this
   * epoch again (replicas would take its new records for the ones they have; a late notice could mark
   * a replica in sync that misses commits). The epoch is renewed with the same primary and in-sync
   * set: only that node can serve either epoch, so no election and no lease wait are needed.
   */
  inSync(tablet: number, node: string, epoch: number, now: number): boolean {
    this.discountStall(now);
    const a = this.assignments[tablet];
    if (!a || a.epoch !== epoch || a.primary === null || !a.replicas.includes(node)) return false;
    if (!this.isUp(node, now)) return false;
    if (node === a.primary) {
      a.epoch++;
      this.changed(`tablet ${tablet}: primary ${node} asked for a new epoch; epoch renewed to ${a.epoch}`, now);
      return true;
    }
    if (!a.inSync.includes(node)) {
      a.inSync.push(node);
      this.changed(`tablet ${tablet}: ${node} is in sync (epoch ${epoch})`, now);
    }
    return true;
  }

  /** The primary says an in-sync replica stopped acknowledging. */
  drop(tablet: number, node: string, epoch: number, now: number): boolean {
    this.discountStall(now);
    const a = this.assignments[tablet];
    if (!a || a.epoch !== epoch || node === a.primary) return false;
    if (a.inSync.includes(node)) {
      a.inSync = a.inSync.filter((n) => n !== node);
      this.changed(`tablet ${tablet}: ${node} dropped from the in-sync set at its primary's request`, now);
    }
    return true;
  }

  tick(now: number): void {
    this.discountStall(now);
    this.refreshStates(now);
    for (const a of this.assignments) {
      // A dead or stopped replica stops counting: the primary no longer waits for it. Only while the
      // primary is up: otherwise the in-sync set is exactly the set of possible winners of an election.
      const primaryUp = a.primary !== null && !this.isDown(a.primary, now);
      for (const n of a.inSync) {
        if (primaryUp && n !== a.primary && this.isDown(n, now)) {
          a.inSync = a.inSync.filter((x) => x !== n);
          this.changed(`tablet ${a.id}: ${n} is down; out of the in-sync set`, now);
        }
      }
      if (a.primary !== null && this.isDown(a.primary, now) && this.leaseExpired(a.primary, now)) this.startElection(a, now);
      else if (a.primary === null) this.tryFinishElection(a.id, now);
    }
    this.maybeHandBack(now);
  }

  // ---- handing primaries back ----

  private maybeHandBack(now: number): void {
    const h = this.handover;
    if (h !== null && (this.assignments[h.tablet]!.epoch !== h.epoch || this.assignments[h.tablet]!.primary !== null)) this.handover = null; // settled some other way
    if (this.opts.rebalanceAfterMs <= 0 || this.handover !== null || this.elections.size > 0) return;
    if (now - this.changedAt < this.opts.rebalanceAfterMs || now - this.handoverEndedAt < HANDOVER_GAP_MS) return;
    // Only a whole cluster: every node up, every tablet with a primary and every replica in sync.
    for (const n of this.nodes.keys()) if (!this.isUp(n, now)) return;
    if (this.assignments.some((a) => a.primary === null || a.inSync.length !== a.replicas.length)) return;
    const a = this.assignments.find(
      (x) =>
        x.primary !== x.replicas[0] &&
        now - (this.handoverFailedAt.get(x.id) ?? -Infinity) > HANDOVER_RETRY_MS &&
        // Quiet: no write in flight, the target holds what the primary holds.
        now - (this.lsnChangedAt.get(x.id) ?? -Infinity) >= HANDOVER_IDLE_MS &&
        x.lsn[x.primary!] !== undefined &&
        x.lsn[x.primary!] === x.lsn[x.replicas[0]!],
    );
    if (!a) return;
    const from = a.primary!;
    const to = a.replicas[0]!;
    a.epoch++;
    a.primary = null;
    this.handover = { tablet: a.id, from, to, epoch: a.epoch, startedAt: now };
    this.changed(`tablet ${a.id}: handing the primary back from ${from} to ${to} (epoch ${a.epoch})`, now, true);
    this.ask(a, now);
  }

  // ---- failover ----

  private startElection(a: TabletAssignment, now: number): void {
    const old = a.primary;
    a.epoch++;
    a.primary = null;
    this.changed(`tablet ${a.id}: primary ${old} is down and its lease expired; electing (epoch ${a.epoch})`, now);
    this.ask(a, now);
  }

  private ask(a: TabletAssignment, now: number): void {
    const candidates = a.inSync.filter((n) => this.isUp(n, now));
    const e: Election = { epoch: a.epoch, asked: new Set(candidates), answers: new Map(), deadline: now + this.opts.electionTimeoutMs };
    this.elections.set(a.id, e);
    for (const n of candidates) this.out.push({ kind: 'position', node: n, tablet: a.id, epoch: a.epoch });
  }

  private tryFinishElection(tablet: number, now: number): void {
    const a = this.assignments[tablet]!;
    if (a.primary !== null) return;
    const e = this.elections.get(tablet);
    if (!e || e.epoch !== a.epoch) {
      this.ask(a, now);
      return;
    }
    const allAnswered = e.answers.size === e.asked.size;
    if (e.answers.size === 0) {
      if (now > e.deadline) this.ask(a, now); // nobody answered (or nobody to ask): try again
      return;
    }
    if (!allAnswered && now <= e.deadline) return;
    // A restarted master does not know whether the previous incarnation cleared this primary for a
    // handover (old primary alive, perhaps with a lease): without an answer from every in-sync replica,
    // it waits until any lease granted before it started has run out.
    if (!a.inSync.every((n) => e.answers.has(n)) && now <= this.startedAt + this.opts.leaseMs + this.opts.leaseMarginMs) return;
    const h = this.handover !== null && this.handover.tablet === tablet && this.handover.epoch === a.epoch ? this.handover : null;
    // A handed-back primary may still serve under a lease granted before the change, unless it has
    // answered (and is fenced): wait for one or the other.
    if (h && !e.answers.has(h.from) && now <= h.startedAt + this.opts.leaseMs + this.opts.leaseMarginMs) return;
    let winner = '';
    let best = -1;
    for (const [n, lsn] of e.answers) {
      if (lsn > best || (lsn === best && n === a.replicas[0])) {
        best = lsn;
        winner = n;
      }
    }
    if (h) {
      this.handover = null;
      this.handoverEndedAt = now;
      if (winner !== h.to) this.handoverFailedAt.set(tablet, now);
    }
    a.primary = winner;
    // Only those that answered were fenced and are known to be prefixes of the winner's log.
    a.inSync = a.inSync.filter((n) => e.answers.has(n));
    this.elections.delete(tablet);
    this.changed(`tablet ${tablet}: ${winner} promoted at epoch ${a.epoch} (log end ${best}); in sync: ${a.inSync.join(', ')}`, now, h !== null);
  }

  // ---- node states ----

  /**
   * After a gap in the master's own inputs longer than stallMs, moves every node's last heartbeat
   * forward by the gap: a master that was paused for a second must not take every node for dead
   * (and start an election for every tablet) because it did not read their heartbeats meanwhile.
   * Only delays what the master concludes; leases are judged from when they were granted, as before.
   */
  private discountStall(now: number): void {
    const last = this.lastInputAt;
    this.lastInputAt = now;
    const stallMs = this.opts.stallMs ?? 0;
    if (stallMs <= 0 || last === null) return;
    const gap = now - last;
    if (gap <= stallMs || now - this.lastStallAt < 4 * this.opts.nodeDeadMs) return;
    this.lastStallAt = now;
    for (const r of this.nodes.values()) if (r.lastSeen !== null) r.lastSeen = Math.min(now, r.lastSeen + gap);
    this.out.push({ kind: 'log', msg: `the master did not run for ${gap} ms; the nodes' silence meanwhile is not counted against them` });
  }

  private isUp(node: string, now: number): boolean {
    const r = this.nodes.get(node);
    return r !== undefined && r.lastSeen !== null && !r.stopped && now - r.lastSeen <= this.opts.nodeDeadMs;
  }

  /** Down for failover: dead, stopped, or never heard from since a start-up grace period (nodes boot slower than the master). */
  private isDown(node: string, now: number): boolean {
    const r = this.nodes.get(node)!;
    if (r.lastSeen === null) return now - this.startedAt > Math.max(3000, 4 * this.opts.nodeDeadMs);
    return !this.isUp(node, now);
  }

  private leaseExpired(node: string, now: number): boolean {
    const r = this.nodes.get(node)!;
    return now > r.leaseGrantedAt + this.opts.leaseMs + this.opts.leaseMarginMs;
  }

  private stateOf(node: string, now: number): NodeState {
    const r = this.nodes.get(node)!;
    if (r.lastSeen === null) return 'unknown';
    if (r.stopped) return 'stopped'; // said so in its last heartbeat, then fell silent on purpose
    if (now - r.lastSeen > this.opts.nodeDeadMs) return 'dead';
    const lagging = this.assignments.some((a) => a.replicas.includes(node) && !a.inSync.includes(node));
    return lagging ? 'recovering' : 'alive';
  }

  private refreshStates(now: number): void {
    for (const n of this.nodes.keys()) {
      const s = this.stateOf(n, now);
      if (this.states.get(n) !== s) {
        this.states.set(n, s);
        this.version++;
        this.out.push({ kind: 'log', msg: `node ${n} is ${s}` });
      }
    }
  }

  private changed(msg: string, now: number, byHandover = false): void {
    if (!byHandover) this.changedAt = now;
    this.version++;
    this.out.push({ kind: 'log', msg });
    this.persist();
  }

  private persist(): void {
    this.out.push({
      kind: 'persist',
      assignments: this.assignments.map((a) => ({ id: a.id, replicas: [...a.replicas], primary: a.primary, epoch: a.epoch, inSync: [...a.inSync] })),
      version: this.version,
    });
  }

  // ---- outputs ----

  map(): TabletMap {
    const nodes: MapNode[] = this.opts.storage.map((s) => ({ name: s.name, control: s.control, workers: s.workers, state: this.states.get(s.name) ?? 'unknown' }));
    return {
      version: this.version,
      tablets: this.opts.tablets,
      replication: this.opts.replication,
      assignments: this.assignments.map((a) => ({ ...a, replicas: [...a.replicas], inSync: [...a.inSync], lsn: { ...a.lsn } })),
      nodes,
    };
  }

  status(now: number, masterPid: number): NodeStatus[] {
    const out: NodeStatus[] = [{ name: this.opts.master.name, kind: 'master', address: this.opts.master.address, state: 'alive', pid: masterPid, lastHeartbeatMs: 0 }];
    for (const s of this.opts.storage) {
      const r = this.nodes.get(s.name)!;
      out.push({ name: s.name, kind: 'storage', address: s.control, state: this.stateOf(s.name, now), pid: r.pid, lastHeartbeatMs: r.lastSeen === null ? null : now - r.lastSeen });
    }
    return out;
  }
}
