// Replication of one tablet on one node, as a pure state machine (in the style of etcd's raft):
// inputs are client requests, peer messages, master configuration, lease grants, "the log is durable
// up to n" notices and clock ticks; outputs are effects — log appends, snapshot installs, replies,
// messages to peers and to the master. No I/O and no clock here: the tablet actor (and the simulator
// in test/) executes the effects and feeds the results back.
//
// Protocol summary (see docs/replication.md for the invariants):
// - The primary of epoch e decides every write (CPUT included), applies it, appends it to its log and
//   streams it to every in-sync replica and joiner in lsn order. A reply goes out only when the
//   request's lsn is committed: durable locally and acknowledged durable by every quorum member.
// - Replicas accept records only from the highest epoch they have seen, only contiguously, and
//   acknowledge once durable.
// - A replica that is not in sync catches up: a tail from the primary's in-memory ring when its log
//   is a prefix of the primary's, otherwise a snapshot then the tail. When the tail reaches the end of
//   the primary's log, the primary adds it to the quorum in the same step (so it misses nothing), and
//   once it has acknowledged up to that point asks the master to mark it in sync.
import type { Cell, DataRequest, ErrorCode, Reply, ReplReq, CatchupReq, CatchupRep, InSyncReq, DropReq, ReplAckRep, WireRecord } from '../../transport/messages.js';
import { ownBytes, TabletState } from './tablet-state.js';
import { ColdValue, type CellValue, type LogRecord } from './wal.js';

/** A snapshot kept for a catching-up replica is dropped this long after it was taken. */
export const SNAPSHOT_MAX_AGE_MS = 60_000;

export interface TabletConfig {
  epoch: number;
  primary: string | null;
  replicas: string[];
  inSync: string[];
}

export interface CoreOptions {
  me: string;
  tablet: number;
  maxScan: number;
  /** The in-memory tail of the log kept for catch-up and retransmission. */
  ringRecords: number;
  ringBytes: number;
  /** Most bytes of records (or snapshot cells) in one message. */
  batchBytes: number;
  maxInflightBatches: number;
  /** No acknowledgement progress for this long: resend from the last acknowledged lsn. */
  retransmitMs: number;
  /** An idle primary probes each peer this often (a peer that restarted then says where its log ends). */
  idleProbeMs: number;
  /** A joiner that makes no progress for this long is dropped; it starts catching up again. */
  joinerTimeoutMs: number;
  /** An in-sync replica that makes no progress for this long is reported to the master. */
  dropAfterMs: number;
  /** Resend catch-up requests and master notices after this long. */
  retryMs: number;
  /** A client reply not committed after this long fails (outcome unknown for a write). */
  commitTimeoutMs: number;
  /**
   * Client writes do not start forwarding by themselves; the host feeds a 'flush' once per turn of
   * its event loop, so every write decided in that turn goes to the replicas in one batch.
   */
  deferForwarding?: boolean;
}

export type Token = number;

export type Effect =
  | { kind: 'append'; record: LogRecord }
  | { kind: 'install'; lsn: number; epoch: number; cells: Array<[string, string, CellValue]> }
  | { kind: 'reply'; token: Token; reply: Reply }
  | { kind: 'send'; to: string; req: ReplReq | CatchupReq }
  | { kind: 'master'; req: InSyncReq | DropReq };

export type Input =
  | { kind: 'client'; token: Token; req: DataRequest }
  | { kind: 'durable'; lsn: number }
  | { kind: 'installed'; lsn: number }
  | { kind: 'repl'; token: Token; req: ReplReq }
  | { kind: 'repl_ack'; from: string; rep: ReplAckRep }
  | { kind: 'catchup'; token: Token; req: CatchupReq }
  | { kind: 'catchup_rep'; rep: CatchupRep | { t: 'error'; code: ErrorCode } }
  | { kind: 'position'; token: Token; epoch: number }
  | { kind: 'config'; cfg: TabletConfig }
  | { kind: 'lease'; until: number }
  | { kind: 'tick' }
  /** Forward what was decided since the last flush (with `deferForwarding`). */
  | { kind: 'flush' }
  /** The tablet is being closed: fail what still waits for a commit (writes: outcome unknown). */
  | { kind: 'shutdown' };

interface Peer {
  acked: number; // durable on the peer up to here
  next: number; // next lsn to send
  inflight: number; // batches sent and not acknowledged
  lastProgress: number; // time acked last advanced, or the peer was added, or it began to owe a record after being caught up
  joiner: boolean;
  joinLsn: number; // joiners: in sync once acked >= joinLsn
  /** The peer's log holds our records up to here (a joiner's own report); a resend starts after max(acked, floor). */
  floor: number;
  noticeSentAt: number; // last in_sync / drop notice to the master
  // A primary that restarted in the same epoch (process or worker restart before the master noticed,
  // tablet reload) has lost its unsynced tail, which its replicas may hold durably. Reusing those
  // (lsn, epoch) pairs for new records would make the replicas take them for duplicates and
  // acknowledge them: acknowledged writes missing on replicas (found by the simulator, test/sim).
  // So a primary first learns where every peer's log ends, and serves (isPrimary) only while none is
  // ahead of it; a peer that is ahead is never counted and is dropped through the master (it then
  // catches up with a snapshot of our log).
  known: boolean; // answered since we became its primary (joiners: known from their catch-up request)
  ahead: boolean; // its log extends past ours: its acknowledgements mean nothing
  /** Last probe or retransmission: paces them. (lastProgress moves only when acks advance; pacing
   * retransmissions with it kept the drop and joiner timeouts from ever firing: a live peer that
   * stopped acknowledging blocked the tablet's writes forever. Found by the simulator, test/sim.) */
  resentAt: number;
}

interface Waiting {
  lsn: number;
  token: Token;
  reply: Reply;
  since: number;
  write: boolean;
}

interface Snapshot {
  id: number;
  lsn: number;
  epoch: number;
  /** Cold values among them are read by the tablet actor when a chunk goes out. */
  cells: Array<[string, string, CellValue]>;
  created: number;
}

/**
 * A record as the ring keeps it: once its value is durable in a value file, a big value is held cold
 * (RecordRing.cool), so the ring does not keep the bytes of recent big writes in memory.
 */
export type RingRecord = Omit<LogRecord, 'value'> & { value?: CellValue };

/**
 * The record as it travels. A cold value stays a ColdValue here, as in replies that carry cells: the
 * tablet actor reads its bytes before the message leaves (tablet.ts, withBytes), so none reaches a socket.
 */
export function toWire(r: RingRecord): WireRecord {
  return [r.lsn, r.epoch, r.kind === 'put' ? 1 : 0, r.row, r.col, r.kind === 'put' ? ((r.value as Uint8Array | undefined) ?? new Uint8Array(0)) : null];
}

export function fromWire(w: WireRecord): LogRecord {
  const rec: LogRecord = { lsn: w[0], epoch: w[1], kind: w[2] === 1 ? 'put' : 'del', row: w[3], col: w[4] };
  if (w[2] === 1) rec.value = w[5] === null ? new Uint8Array(0) : ownBytes(w[5]);
  return rec;
}

function recordBytes(r: RingRecord): number {
  return r.row.length + r.col.length + (r.value?.length ?? 0) + 32;
}

/**
 * The most recent records of the log, for catch-up and retransmission; remembers the epoch just before it.
 * Its limits count a cold value's bytes as if it were held, so it keeps the same records either way, and
 * the value files its cold records lie in stay (coldFloor) for as long as the ring could send them.
 */
export class RecordRing {
  private items: RingRecord[] = [];
  private head = 0;
  private bytes = 0;
  /** Records up to here have been looked at by cool(). */
  private cooledTo = 0;
  /** The lsns of the cold records kept, oldest first (from coldHead on). */
  private coldLsns: number[] = [];
  private coldHead = 0;
  /** (lsn, epoch) of the record just before the first one kept. */
  baseLsn: number;
  baseEpoch: number;

  constructor(baseLsn: number, baseEpoch: number, private readonly maxRecords: number, private readonly maxBytes: number) {
    this.baseLsn = baseLsn;
    this.baseEpoch = baseEpoch;
  }

  get first(): number {
    return this.baseLsn + 1;
  }

  get last(): number {
    return this.baseLsn + (this.items.length - this.head);
  }

  push(r: RingRecord): void {
    if (r.lsn !== this.last + 1) throw new Error(`ring: lsn ${r.lsn} does not follow ${this.last}`);
    this.items.push(r);
    this.bytes += recordBytes(r);
    while (this.items.length - this.head > this.maxRecords || (this.bytes > this.maxBytes && this.items.length - this.head > 1)) {
      const old = this.items[this.head]!;
      this.items[this.head] = undefined as unknown as RingRecord;
      this.head++;
      this.bytes -= recordBytes(old);
      this.baseLsn = old.lsn;
      this.baseEpoch = old.epoch;
    }
    while (this.coldHead < this.coldLsns.length && this.coldLsns[this.coldHead]! <= this.baseLsn) this.coldHead++;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.coldHead > 4096 && this.coldHead * 2 > this.coldLsns.length) {
      this.coldLsns = this.coldLsns.slice(this.coldHead);
      this.coldHead = 0;
    }
  }

  /**
   * The records up to `lsn` are durable: each big value among them that `coldOf` knows in a value file
   * is held cold from now on (a new record object: the one appended may still be in other hands).
   */
  cool(lsn: number, coldOf: (value: Uint8Array) => ColdValue | null): void {
    const to = Math.min(lsn, this.last);
    for (let at = Math.max(this.cooledTo + 1, this.first); at <= to; at++) {
      const i = this.head + (at - this.baseLsn - 1);
      const r = this.items[i]!;
      if (!(r.value instanceof Uint8Array)) continue;
      const cold = coldOf(r.value);
      if (cold === null || cold.length !== r.value.length) continue;
      this.items[i] = { ...r, value: cold };
      this.coldLsns.push(at);
    }
    this.cooledTo = Math.max(this.cooledTo, to);
  }

  /**
   * The lowest value file number a cold record kept refers to (files from there on must stay), or null.
   * The lowest of all, not the oldest record's: a checkpoint that wrote a value again before its append
   * was written leaves that value's reference in a later place than a newer record's.
   */
  coldFloor(): number | null {
    let floor: number | null = null;
    for (let i = this.coldHead; i < this.coldLsns.length; i++) {
      const v = this.get(this.coldLsns[i]!)!.value;
      if (!(v instanceof ColdValue)) throw new Error(`ring: record ${this.coldLsns[i]} is listed cold but is not`);
      if (floor === null || v.ref[0] < floor) floor = v.ref[0];
    }
    return floor;
  }

  get(lsn: number): RingRecord | undefined {
    if (lsn <= this.baseLsn || lsn > this.last) return undefined;
    return this.items[this.head + (lsn - this.baseLsn - 1)];
  }

  /** The epoch of the record at `lsn`, when known (lsn 0: epoch 0). */
  epochAt(lsn: number): number | undefined {
    if (lsn === this.baseLsn) return this.baseEpoch;
    if (lsn === 0) return 0;
    return this.get(lsn)?.epoch;
  }

  /** Records from `from` on, at most `maxBytes` (at least one when any). */
  slice(from: number, maxBytes: number): RingRecord[] {
    const out: RingRecord[] = [];
    let bytes = 0;
    for (let lsn = from; lsn <= this.last; lsn++) {
      const r = this.get(lsn)!;
      bytes += recordBytes(r);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(r);
    }
    return out;
  }

  /** Empties the ring: the log now ends at (lsn, epoch). */
  reset(lsn: number, epoch: number): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    this.cooledTo = lsn;
    this.coldLsns = [];
    this.coldHead = 0;
    this.baseLsn = lsn;
    this.baseEpoch = epoch;
  }
}

export class ReplicaCore {
  private state: TabletState;
  private lastEpoch: number;
  private durable: number;
  private cfg: TabletConfig | null = null;
  /** The highest epoch this replica has seen; records and requests from older epochs are refused. */
  private fence = 0;
  private leaseUntil = -Infinity;
  private now = 0;
  private ring: RecordRing;
  private readonly waiting: Waiting[] = [];
  private readonly replAcks: Array<{ lsn: number; token: Token; epoch: number }> = [];
  private readonly peers = new Map<string, Peer>();
  /**
   * Nodes we told the master are in sync, in this epoch. The notice may reach the master late (it is
   * also resent), even after we stopped counting the node, which would then be "in sync" without the
   * records we committed since (found by the simulator, test/sim). So such a node is never dropped from
   * our quorum within the epoch: instead we stop serving and ask for a new epoch (see renewEpoch), which
   * voids any notice still on its way; the new epoch's quorum is exactly the master's in-sync set.
   */
  private readonly announced = new Set<string>();
  private readonly snapshots = new Map<number, Snapshot>();
  private nextSnapshotId = 1;
  private installing = false;
  /**
   * Epochs up to this one are not served here. A core whose very first configuration names it primary
   * may be a restart of that epoch's primary that lost its unsynced tail, which replicas may hold: new
   * records under the same epoch would reuse (lsn, epoch) pairs they already have, and they would take
   * them for duplicates (acknowledged writes missing on replicas; found by the simulator, test/sim). It
   * asks the master for a new epoch instead (an in_sync naming itself; see MasterCore.inSync).
   */
  private renewEpoch = 0;
  private renewSentAt = -Infinity;
  // replica side of catch-up
  private catchupSentAt = -Infinity;
  private catchupInflight = false;
  private incoming: Snapshot | null = null;
  private joinedAt: number | null = null; // the primary took us into its quorum at this time
  private lastReplAt = -Infinity;
  private out: Effect[] = [];
  /** Counters for status and benchmarks. */
  readonly stats = { snapshotsSent: 0, snapshotsInstalled: 0, tailRecordsSent: 0, retransmits: 0 };

  /**
   * `recovered.clean`: the log was closed cleanly in this process (every appended record durable), so
   * nothing can have been lost and no epoch renewal is needed when it names us primary.
   */
  constructor(private readonly opts: CoreOptions, private readonly recovered: { state: TabletState; lastEpoch: number; clean?: boolean }) {
    this.state = recovered.state;
    this.lastEpoch = recovered.lastEpoch;
    this.durable = recovered.state.lsn; // everything recovered from disk is durable
    this.ring = new RecordRing(this.state.lsn, this.lastEpoch, opts.ringRecords, opts.ringBytes);
    this.fence = recovered.lastEpoch;
  }

  // ---- observers ----

  get lsn(): number {
    return this.state.lsn;
  }
  get durableLsn(): number {
    return this.durable;
  }
  get epoch(): number {
    return this.lastEpoch;
  }
  get cells(): number {
    return this.state.cells;
  }
  get fenceEpoch(): number {
    return this.fence;
  }
  get config(): TabletConfig | null {
    return this.cfg;
  }
  get tablet(): TabletState {
    return this.state;
  }
  get role(): 'primary' | 'replica' | 'catching_up' | 'idle' {
    const c = this.cfg;
    if (!c || !c.replicas.includes(this.opts.me)) return 'idle';
    if (c.primary === this.opts.me) return 'primary';
    return c.inSync.includes(this.opts.me) ? 'replica' : 'catching_up';
  }
  /** The committed prefix (primary): durable here and on every quorum member. */
  get commitLsn(): number {
    let c = this.durable;
    for (const p of this.peers.values()) c = Math.min(c, p.acked);
    return c;
  }
  /**
   * The ring holds cold the big values (those `coldOf` knows in a value file) of the records that are
   * durable here and have been sent to every peer: a batch waiting for a free slot (maxInflightBatches)
   * is not read back from disk. Cheap when nothing is new (the ring remembers how far it looked), so the
   * tablet actor calls it after every input. Not an input of the protocol: what the ring sends is the
   * same either way.
   */
  coolRing(coldOf: (value: Uint8Array) => ColdValue | null): void {
    let upTo = this.durable;
    for (const p of this.peers.values()) upTo = Math.min(upTo, p.next - 1);
    this.ring.cool(upTo, coldOf);
  }
  /** The lowest value file number the ring's cold records lie in: it and later files must stay (null: none). */
  ringColdFloor(): number | null {
    return this.ring.coldFloor();
  }
  /** The primary's view of its peers (for logs and status). */
  peerStates(): Record<string, { acked: number; next: number; inflight: number; known: boolean; ahead: boolean; joiner: boolean; idleMs: number }> {
    const out: Record<string, { acked: number; next: number; inflight: number; known: boolean; ahead: boolean; joiner: boolean; idleMs: number }> = {};
    for (const [n, p] of this.peers) out[n] = { acked: p.acked, next: p.next, inflight: p.inflight, known: p.known, ahead: p.ahead, joiner: p.joiner, idleMs: this.now - p.lastProgress };
    return out;
  }

  isPrimary(): boolean {
    const c = this.cfg;
    return c !== null && c.primary === this.opts.me && c.epoch >= this.fence && c.epoch > this.renewEpoch && this.leaseUntil > this.now && !this.installing && this.peersSettled();
  }

  /** Every peer has told us where its log ends since we became primary, and none is ahead of us. */
  private peersSettled(): boolean {
    for (const p of this.peers.values()) if (!p.known || p.ahead) return false;
    return true;
  }

  // ---- the one entry point ----

  handle(input: Input, now: number): Effect[] {
    this.now = Math.max(this.now, now);
    switch (input.kind) {
      case 'client':
        this.onClient(input.token, input.req);
        break;
      case 'durable':
        this.durable = Math.max(this.durable, Math.min(input.lsn, this.state.lsn));
        this.releaseReplAcks();
        break;
      case 'installed':
        this.installing = false;
        this.durable = input.lsn;
        this.catchupInflight = false;
        this.sendCatchup();
        break;
      case 'repl':
        this.onRepl(input.token, input.req);
        break;
      case 'repl_ack':
        this.onReplAck(input.from, input.rep);
        break;
      case 'catchup':
        this.onCatchup(input.token, input.req);
        break;
      case 'catchup_rep':
        this.onCatchupReply(input.rep);
        break;
      case 'position':
        this.raiseFence(input.epoch);
        this.out.push({ kind: 'reply', token: input.token, reply: { t: 'position_rep', lsn: this.state.lsn, lastEpoch: this.lastEpoch } });
        break;
      case 'config':
        this.onConfig(input.cfg);
        break;
      case 'lease':
        this.leaseUntil = Math.max(this.leaseUntil, input.until);
        break;
      case 'flush':
        break; // pump() below
      case 'shutdown':
        this.failWaiting('the tablet is closing');
        break;
      case 'tick':
        this.onTick();
        break;
    }
    if (!(this.opts.deferForwarding && input.kind === 'client')) this.pump();
    this.releaseWaiting();
    const out = this.out;
    this.out = [];
    return out;
  }

  // ---- client requests (primary) ----

  private onClient(token: Token, req: DataRequest): void {
    if (req.t === 'scan') {
      // Admin paging reads whatever this replica holds; it does not need to be the primary.
      this.out.push({ kind: 'reply', token, reply: this.state.decide(req, this.opts.maxScan).reply });
      return;
    }
    if (!this.isPrimary()) {
      const why = this.cfg?.primary === this.opts.me ? (this.leaseUntil <= this.now ? 'has no lease' : `is deposed (epoch ${this.fence})`) : `is not the primary (primary: ${this.cfg?.primary ?? 'none'})`;
      this.out.push({ kind: 'reply', token, reply: { t: 'error', code: 'not_primary', message: `${this.opts.me} ${why} for tablet ${this.opts.tablet}`, epoch: this.fence } });
      return;
    }
    this.state.epoch = this.cfg!.epoch;
    const { reply, record } = this.state.decide(req, this.opts.maxScan);
    if (record !== null) this.appendLocal(record);
    // Every reply, reads included, waits until what the request saw is committed.
    this.waiting.push({ lsn: this.state.lsn, token, reply, since: this.now, write: record !== null });
  }

  private appendLocal(rec: LogRecord): void {
    // A peer that was caught up starts owing this record now: its progress clock starts here, not at
    // its last advance, which may be long ago on an idle tablet. (Found by a test that paused a
    // primary right after one write to an idle tablet: the next tick, before the replicas could
    // answer, found them "behind for" seconds and dropped both from the in-sync set, and the paused
    // primary then had no one to fail over to.)
    for (const p of this.peers.values()) if (p.known && p.acked >= this.state.lsn) p.lastProgress = this.now;
    this.state.apply(rec);
    this.lastEpoch = rec.epoch;
    this.ring.push(rec);
    this.out.push({ kind: 'append', record: rec });
  }

  private releaseWaiting(): void {
    if (this.waiting.length === 0) return;
    const commit = this.commitLsn;
    let n = 0;
    while (n < this.waiting.length && this.waiting[n]!.lsn <= commit) n++;
    for (const w of this.waiting.splice(0, n)) this.out.push({ kind: 'reply', token: w.token, reply: w.reply });
  }

  /** Fails every reply still waiting: writes become "outcome unknown", reads are retried elsewhere. */
  private failWaiting(why: string): void {
    for (const w of this.waiting.splice(0)) {
      const code: ErrorCode = w.write ? 'internal' : 'not_primary';
      this.out.push({ kind: 'reply', token: w.token, reply: { t: 'error', code, message: `tablet ${this.opts.tablet} on ${this.opts.me}: ${why}`, epoch: this.fence } });
    }
  }

  // ---- primary: streaming to the quorum ----

  private pump(): void {
    if (!this.cfg || this.cfg.primary !== this.opts.me || this.cfg.epoch < this.fence) return;
    for (const [node, p] of this.peers) {
      while (p.inflight < this.opts.maxInflightBatches && p.next <= this.state.lsn) {
        if (p.next < this.ring.first) {
          this.peerTooFarBehind(node, p);
          break;
        }
        const recs = this.ring.slice(p.next, this.opts.batchBytes);
        this.sendRepl(node, p.next - 1, recs);
        p.next += recs.length;
        p.inflight++;
      }
    }
  }

  private sendRepl(node: string, prevLsn: number, recs: RingRecord[]): void {
    const prevEpoch = this.ring.epochAt(prevLsn) ?? this.lastEpoch;
    this.out.push({
      kind: 'send',
      to: node,
      req: { t: 'repl', tablet: this.opts.tablet, epoch: this.cfg!.epoch, from: this.opts.me, prevLsn, prevEpoch, records: recs.map(toWire), commit: this.commitLsn },
    });
  }

  private peerTooFarBehind(node: string, p: Peer): void {
    if (p.joiner) this.forget(node); // it will catch up again, with a snapshot
    else this.askMaster(p, { t: 'drop', tablet: this.opts.tablet, node, epoch: this.cfg!.epoch });
  }

  private askMaster(p: Peer, req: InSyncReq | DropReq): void {
    if (this.now - p.noticeSentAt < this.opts.retryMs) return;
    p.noticeSentAt = this.now;
    if (req.t === 'in_sync') this.announced.add(req.node);
    this.out.push({ kind: 'master', req });
  }

  /** Stops counting a peer, unless the master may have (or get) it as in sync: see `announced`. */
  private forget(node: string): void {
    if (!this.announced.has(node)) {
      this.peers.delete(node);
      return;
    }
    this.renewEpoch = Math.max(this.renewEpoch, this.cfg!.epoch);
    this.askRenewal();
  }

  private onReplAck(from: string, rep: ReplAckRep): void {
    const p = this.peers.get(from);
    if (!p || !this.cfg || rep.epoch > this.cfg.epoch) {
      if (rep.epoch > this.fence) this.raiseFence(rep.epoch);
      return;
    }
    p.inflight = Math.max(0, p.inflight - 1);
    if (rep.reason === 'stale') {
      this.raiseFence(rep.epoch);
      return;
    }
    // A peer whose log extends past ours holds records we lost in a crash: distrust it (see Peer.known).
    p.known = true;
    if (rep.lastLsn > this.state.lsn) p.ahead = true;
    if (p.ahead) {
      this.askMaster(p, { t: 'drop', tablet: this.opts.tablet, node: from, epoch: this.cfg.epoch });
      return;
    }
    if (rep.reason === 'diverged') {
      // Cannot happen to an in-sync replica (its log is a prefix of ours); a joiner starts over.
      if (p.joiner) this.forget(from);
      else this.askMaster(p, { t: 'drop', tablet: this.opts.tablet, node: from, epoch: this.cfg.epoch });
      return;
    }
    if (rep.durable > p.acked) {
      p.acked = Math.min(rep.durable, this.state.lsn);
      p.lastProgress = this.now;
    }
    if (rep.reason === 'gap') {
      // Something before this batch was lost: resend from where the replica's log ends.
      p.next = Math.min(p.next, rep.lastLsn + 1);
      p.inflight = 0;
    }
    if (p.joiner && p.acked >= p.joinLsn) this.askMaster(p, { t: 'in_sync', tablet: this.opts.tablet, node: from, epoch: this.cfg.epoch });
  }

  private onTick(): void {
    this.askRenewal();
    const c = this.cfg;
    if (c && c.primary === this.opts.me) {
      for (const [node, p] of this.peers) {
        if (!p.known || p.ahead) {
          // Probe until it answers (then we know where its log ends); drop it if it never does, or
          // if its log extends past ours (see Peer.known).
          if (!p.known && this.now - p.resentAt > this.opts.retransmitMs) {
            p.resentAt = this.now;
            this.sendRepl(node, this.state.lsn, []);
          }
          if (p.ahead || this.now - p.lastProgress > this.opts.dropAfterMs) this.askMaster(p, { t: 'drop', tablet: this.opts.tablet, node, epoch: c.epoch });
          continue;
        }
        const behind = p.acked < this.state.lsn;
        if (behind && this.now - Math.max(p.lastProgress, p.resentAt) > this.opts.retransmitMs) {
          // Nothing acknowledged for a while: assume the batches (or their acks) were lost and resend
          // from the last acknowledged record; the peer skips what it already has.
          this.stats.retransmits++;
          // Not from acked + 1 alone: a joiner whose probe was lost has acked nothing yet, and resending
          // from record 1 would find it "too far behind" the ring and make it start over (seconds later).
          p.next = Math.min(p.next, Math.max(p.acked, p.floor) + 1);
          p.inflight = 0;
          p.resentAt = this.now;
          if (p.next > this.state.lsn) {
            this.sendRepl(node, this.state.lsn, []);
            p.inflight++;
          }
        }
        if (!behind && p.inflight === 0 && this.now - Math.max(p.lastProgress, p.resentAt) > this.opts.idleProbeMs) {
          // Idle: probe, so a peer that restarted tells us where its log ends. Paced by resentAt:
          // lastProgress does not move while idle, so pacing by it alone re-probed on every tick.
          p.resentAt = this.now;
          this.sendRepl(node, this.state.lsn, []);
          p.inflight++;
        }
        if (p.joiner) {
          if (p.acked >= p.joinLsn) this.askMaster(p, { t: 'in_sync', tablet: this.opts.tablet, node, epoch: c.epoch });
          // A joiner that stops acknowledging leaves the quorum, even one that reached its join point
          // (the master may refuse to mark it in sync: then it would block our commits for good).
          if (behind && this.now - p.lastProgress > this.opts.joinerTimeoutMs) this.forget(node);
        } else if (behind && this.now - p.lastProgress > this.opts.dropAfterMs) {
          this.askMaster(p, { t: 'drop', tablet: this.opts.tablet, node, epoch: c.epoch });
        }
      }
      for (const [id, s] of this.snapshots) if (this.now - s.created > SNAPSHOT_MAX_AGE_MS) this.snapshots.delete(id);
    }
    // Replies that cannot commit in time fail (bounded waiting).
    while (this.waiting.length > 0 && this.now - this.waiting[0]!.since > this.opts.commitTimeoutMs) {
      const w = this.waiting.shift()!;
      this.out.push({ kind: 'reply', token: w.token, reply: { t: 'error', code: w.write ? 'internal' : 'unavailable', message: `tablet ${this.opts.tablet}: not committed in time` } });
    }
    if (this.needsCatchup()) {
      if (this.joinedAt !== null && this.now - Math.max(this.joinedAt, this.lastReplAt) > this.opts.joinerTimeoutMs * 2) this.joinedAt = null;
      if (this.joinedAt === null && (!this.catchupInflight || this.now - this.catchupSentAt > this.opts.retryMs)) this.sendCatchup();
    }
  }

  // ---- configuration from the master ----

  private onConfig(cfg: TabletConfig): void {
    const old = this.cfg;
    if (old && cfg.epoch < old.epoch) return; // stale map
    this.cfg = cfg;
    this.raiseFence(cfg.epoch);
    const me = this.opts.me;
    if (!old && !this.recovered.clean && cfg.primary === me && cfg.replicas.some((n) => n !== me)) this.renewEpoch = cfg.epoch;
    this.askRenewal();
    if (cfg.primary === me) {
      if (!old || old.primary !== me || old.epoch !== cfg.epoch) {
        this.peers.clear();
        this.announced.clear();
        this.snapshots.clear();
      }
      for (const node of cfg.inSync) {
        if (node === me) continue;
        const p = this.peers.get(node);
        if (p) p.joiner = false;
        else this.peers.set(node, { acked: 0, next: this.state.lsn + 1, inflight: 0, lastProgress: this.now, joiner: false, joinLsn: 0, floor: 0, noticeSentAt: -Infinity, known: false, ahead: false, resentAt: this.now });
      }
      for (const [node, p] of this.peers) if (!p.joiner && !cfg.inSync.includes(node)) this.forget(node);
      // Probe the in-sync replicas so we learn where their logs end.
      for (const [node, p] of this.peers) {
        if (p.acked === 0 && p.inflight === 0) {
          this.sendRepl(node, this.state.lsn, []);
          p.inflight++;
        }
      }
    } else {
      if (old?.primary === me) this.failWaiting(`no longer primary (epoch ${cfg.epoch})`);
      this.peers.clear();
      this.announced.clear();
      this.snapshots.clear();
      if (cfg.inSync.includes(me)) this.joinedAt = null;
      if (old && (old.epoch !== cfg.epoch || old.primary !== cfg.primary)) {
        this.joinedAt = null;
        this.catchupInflight = false;
        this.incoming = null;
      }
      if (this.needsCatchup() && !this.catchupInflight) this.sendCatchup();
    }
  }

  /** While our configuration is an epoch we must not serve (see renewEpoch), ask for a new one. */
  private askRenewal(): void {
    const c = this.cfg;
    if (!c || c.primary !== this.opts.me || c.epoch > this.renewEpoch || this.now - this.renewSentAt < this.opts.retryMs) return;
    this.renewSentAt = this.now;
    this.out.push({ kind: 'master', req: { t: 'in_sync', tablet: this.opts.tablet, node: this.opts.me, epoch: c.epoch } });
  }

  private raiseFence(epoch: number): void {
    if (epoch <= this.fence) return;
    this.fence = epoch;
    if (this.cfg && this.cfg.primary === this.opts.me && this.cfg.epoch < epoch) {
      this.failWaiting(`deposed by epoch ${epoch}`);
      this.peers.clear();
      this.announced.clear();
    }
  }

  // ---- replica: applying the primary's stream ----

  private onRepl(token: Token, req: ReplReq): void {
    const ack = (ok: boolean, reason: ReplAckRep['reason']): void => {
      this.out.push({ kind: 'reply', token, reply: { t: 'repl_ack', epoch: this.fence, ok, reason, lastLsn: this.state.lsn, durable: this.durable } });
    };
    if (req.epoch < this.fence) return ack(false, 'stale');
    this.raiseFence(req.epoch);
    if (this.installing) return ack(false, 'gap');
    this.lastReplAt = this.now;
    if (req.prevLsn > this.state.lsn) return ack(false, 'gap');
    const prevEpoch = this.ring.epochAt(req.prevLsn);
    if (prevEpoch !== undefined && prevEpoch !== req.prevEpoch) return ack(false, 'diverged');
    let last = 0;
    for (const w of req.records) {
      const lsn = w[0];
      if (lsn <= this.state.lsn) {
        const have = this.ring.epochAt(lsn);
        if (have !== undefined && have !== w[1]) return ack(false, 'diverged');
        continue; // duplicate
      }
      if (lsn !== this.state.lsn + 1) return ack(false, 'gap');
      this.appendLocal(fromWire(w));
      last = lsn;
    }
    const upTo = Math.max(last, Math.min(req.prevLsn, this.state.lsn));
    if (this.durable >= upTo) return ack(true, 'ok');
    this.replAcks.push({ lsn: upTo, token, epoch: req.epoch });
  }

  private releaseReplAcks(): void {
    let n = 0;
    while (n < this.replAcks.length && this.replAcks[n]!.lsn <= this.durable) n++;
    for (const a of this.replAcks.splice(0, n)) {
      this.out.push({ kind: 'reply', token: a.token, reply: { t: 'repl_ack', epoch: this.fence, ok: true, reason: 'ok', lastLsn: this.state.lsn, durable: this.durable } });
    }
  }

  // ---- catch-up: the replica side ----

  private needsCatchup(): boolean {
    const c = this.cfg;
    return c !== null && c.primary !== null && c.primary !== this.opts.me && c.replicas.includes(this.opts.me) && !c.inSync.includes(this.opts.me) && !this.installing;
  }

  private sendCatchup(): void {
    if (!this.needsCatchup()) return;
    const c = this.cfg!;
    this.catchupInflight = true;
    this.catchupSentAt = this.now;
    const snapshot: [number, number] | null = this.incoming ? [this.incoming.id, this.incoming.cells.length] : null;
    this.out.push({
      kind: 'send',
      to: c.primary!,
      req: { t: 'catchup', tablet: this.opts.tablet, epoch: c.epoch, from: this.opts.me, lastLsn: this.state.lsn, lastEpoch: this.lastEpoch, snapshot },
    });
  }

  private onCatchupReply(rep: CatchupRep | { t: 'error'; code: ErrorCode }): void {
    this.catchupInflight = false;
    if (rep.t === 'error' || !this.needsCatchup()) return; // retried on a later tick
    switch (rep.mode) {
      case 'tail': {
        for (const w of rep.records) {
          if (w[0] <= this.state.lsn) continue;
          if (w[0] !== this.state.lsn + 1) return; // not contiguous: ask again on the next tick
          this.appendLocal(fromWire(w));
        }
        if (rep.joined) {
          this.joinedAt = this.now;
          this.lastReplAt = this.now;
        } else {
          this.sendCatchup();
        }
        return;
      }
      case 'snapshot': {
        // We hold records of the current epoch that this snapshot predates: they came from the current
        // primary, whose snapshots all contain them, so this one answers an older catch-up request
        // (they are retried while one is outstanding). Installing it would throw away records we may
        // have acknowledged as durable, after the primary counted them (found by the simulator, test/sim).
        // Stop assembling it too: the next request then asks from our log end.
        if (this.lastEpoch === this.fence && (rep.epoch < this.fence || rep.lsn < this.state.lsn)) {
          if (this.incoming?.id === rep.id) this.incoming = null;
          return;
        }
        if (!this.incoming || this.incoming.id !== rep.id) {
          if (rep.offset !== rep.cells.length) return; // a chunk of a snapshot we are not assembling
          this.incoming = { id: rep.id, lsn: rep.lsn, epoch: rep.epoch, cells: [], created: this.now };
        }
        if (rep.offset !== this.incoming.cells.length + rep.cells.length) return;
        for (const [row, col, value] of rep.cells) this.incoming.cells.push([row, col, ownBytes(value)]);
        if (!rep.done) {
          this.sendCatchup();
          return;
        }
        this.install(this.incoming);
        this.incoming = null;
        return;
      }
      case 'restart':
        this.incoming = null;
        this.sendCatchup();
        return;
      case 'in_sync':
        return; // the master's map will say so
    }
  }

  /** Replaces this replica's table and log with a snapshot of the primary's. */
  private install(s: Snapshot): void {
    const state = new TabletState(this.opts.tablet, s.lsn, s.epoch);
    for (const [row, col, value] of s.cells) state.putCell(row, col, value);
    this.state = state;
    this.lastEpoch = s.epoch;
    this.ring.reset(s.lsn, s.epoch);
    this.durable = Math.min(this.durable, s.lsn);
    this.installing = true;
    this.stats.snapshotsInstalled++;
    // Repl acks waiting for records that the snapshot replaced are dropped; the primary resends.
    this.replAcks.length = 0;
    this.out.push({ kind: 'install', lsn: s.lsn, epoch: s.epoch, cells: s.cells });
  }

  // ---- catch-up: the primary side ----

  private onCatchup(token: Token, req: CatchupReq): void {
    const reply = (rep: Reply): void => void this.out.push({ kind: 'reply', token, reply: rep });
    if (!this.isPrimary()) {
      return reply({ t: 'error', code: 'not_primary', message: `${this.opts.me} is not primary of tablet ${this.opts.tablet}`, epoch: this.fence });
    }
    if (this.cfg!.inSync.includes(req.from)) return reply({ t: 'catchup_rep', mode: 'in_sync' });
    if (req.snapshot !== null) {
      const s = this.snapshots.get(req.snapshot[0]);
      if (!s) return reply({ t: 'catchup_rep', mode: 'restart' });
      return reply(this.snapshotChunk(s, req.snapshot[1]));
    }
    const L = req.lastLsn;
    const canTail = L <= this.state.lsn && L >= this.ring.baseLsn && this.ring.epochAt(L) === req.lastEpoch;
    if (!canTail) {
      // Diverged or too far behind for the ring: a consistent copy of the table as of now, in chunks.
      // At most two snapshots are kept (oldest dropped first: Map iterates in insertion order).
      while (this.snapshots.size >= 2) this.snapshots.delete(this.snapshots.keys().next().value as number);
      const s: Snapshot = { id: this.nextSnapshotId++, lsn: this.state.lsn, epoch: this.lastEpoch, cells: [...this.state.allCells()], created: this.now };
      this.snapshots.set(s.id, s);
      this.stats.snapshotsSent++;
      return reply(this.snapshotChunk(s, 0));
    }
    const recs = this.ring.slice(L + 1, this.opts.batchBytes);
    const reachesEnd = (recs.length === 0 ? L : recs[recs.length - 1]!.lsn) === this.state.lsn;
    this.stats.tailRecordsSent += recs.length;
    if (reachesEnd) {
      // Join in this very step: from now on every record also goes to it, so it misses nothing.
      this.peers.set(req.from, { acked: 0, next: this.state.lsn + 1, inflight: 1, lastProgress: this.now, joiner: true, joinLsn: this.state.lsn, floor: L, noticeSentAt: -Infinity, known: true, ahead: false, resentAt: this.now });
    }
    reply({ t: 'catchup_rep', mode: 'tail', records: recs.map(toWire), joined: reachesEnd });
    // Probe at once: its answer tells us how far the joiner's log is durable (the commit point waits for it).
    if (reachesEnd) this.sendRepl(req.from, this.state.lsn, []);
  }

  private snapshotChunk(s: Snapshot, offset: number): CatchupRep {
    const cells: Cell[] = [];
    let bytes = 0;
    let i = offset;
    while (i < s.cells.length) {
      const c = s.cells[i]!;
      const size = c[0].length + c[1].length + c[2].length + 16;
      if (cells.length > 0 && bytes + size > this.opts.batchBytes) break;
      cells.push(c as Cell); // a cold value is read by the tablet actor before the chunk is sent
      bytes += size;
      i++;
    }
    return { t: 'catchup_rep', mode: 'snapshot', id: s.id, lsn: s.lsn, epoch: s.epoch, cells, offset: i, done: i >= s.cells.length };
  }
}
