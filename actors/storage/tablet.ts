// The tablet actor: the I/O edge of ReplicaCore for one tablet on one node. It owns the tablet's
// records in the worker's shared log (a TabletLog) and feeds the core one message at a time: requests from clients, peers and
// the master, "durable up to n" notices from the log, configuration and lease updates, ticks. It
// carries out the core's effects: log appends (group-committed), snapshot installs, replies, and
// messages to peer tablets and the master.
import { catchupRepProblem, errorReply, type CatchupRep, type CputReq, type CatchupReq, type DataRequest, type DropReq, type InSyncReq, type PositionReq, type Reply, type ReplAckRep, type ReplReq } from '../../transport/messages.js';
import type { Respond } from '../../transport/rpc.js';
import { Actor } from '../actor.js';
import { monoNow } from '../clock.js';
import { ReplicaCore, type CoreOptions, type Effect, type Input, type TabletConfig } from './replica-core.js';
import { TabletState } from './tablet-state.js';
import { ColdValue, type CellValue } from './wal.js';
import type { Recovered, TabletLog, WorkerLog } from './worker-log.js';

/** What a tablet actor needs from its worker: sockets to peers and to the master. */
export interface TabletEnv {
  send(to: string, tablet: number, req: ReplReq | CatchupReq): Promise<Reply>;
  master(req: InSyncReq | DropReq): Promise<Reply>;
  log(level: 'info' | 'warn' | 'error', msg: string): void;
}

export interface TabletOptions {
  /** A tablet whose records in the log exceed this is checkpointed. */
  checkpointBytes: number;
  mailbox: number;
  core: Omit<CoreOptions, 'tablet'>;
}

export type TabletRequest = DataRequest | ReplReq | CatchupReq | PositionReq;

export type TabletMsg =
  | { kind: 'request'; req: TabletRequest; respond: Respond }
  | { kind: 'repl_ack'; from: string; rep: ReplAckRep }
  | { kind: 'catchup_rep'; rep: CatchupRep | { t: 'error'; code: 'unavailable' } }
  | { kind: 'durable'; lsn: number }
  | { kind: 'config'; cfg: TabletConfig }
  | { kind: 'lease'; until: number }
  | { kind: 'tick' }
  | { kind: 'flush' }
  | { kind: 'checkpoint' }
  | { kind: 'close'; checkpoint: boolean; done: () => void };

type Phase = 'loading' | 'serving' | 'failed' | 'closed';

/** A checkpoint that failed is tried again after this long at the earliest. */
const CHECKPOINT_RETRY_MS = 1000;

// Callbacks queued during one turn of this thread's event loop, run together in one setImmediate.
// Every tablet that decided writes in a turn forwards them in that one callback, so their repl
// requests leave in the same tick and the transport puts those for one peer in one zmq message
// (a setImmediate per tablet would be followed by a tick, and a send, per tablet).
let turnEnd: Array<() => void> = [];
function atTurnEnd(fn: () => void): void {
  if (turnEnd.push(fn) > 1) return;
  setImmediate(() => {
    const fns = turnEnd;
    turnEnd = [];
    for (const f of fns) f();
  });
}

/** A tablet's state from its checkpoint and log records; lastEpoch is the epoch of the last record. */
export function replay(id: number, recovered: Recovered): { state: TabletState; lastEpoch: number } {
  const state = new TabletState(id, recovered.checkpointLsn, Math.max(1, recovered.checkpointEpoch));
  for (const [row, col, value] of recovered.cells) state.putCell(row, col, value);
  let lastEpoch = recovered.checkpointEpoch;
  for (const rec of recovered.records) {
    state.apply(rec);
    lastEpoch = rec.epoch;
  }
  return { state, lastEpoch };
}

export class TabletActor extends Actor<TabletMsg> {
  private core: ReplicaCore | null = null;
  private wal: TabletLog | null = null;
  private phase: Phase = 'loading';
  private checkpointQueued = false;
  private readonly loaded: Promise<void>;
  private readonly responders = new Map<number, Respond>();
  private nextToken = 1;
  private syncRequested = 0; // highest lsn a durable notice is already on its way for
  /** A checkpoint being written (the mailbox goes on meanwhile); install and close wait for it. */
  private checkpointRunning: Promise<void> | null = null;
  /** After a failed checkpoint (disk full, say), the next one waits until then instead of following every append. */
  private checkpointRetryAt = 0;
  private flushScheduled = false;
  /** Big values appended and not yet durable: once they are (in a value file), their cells let go of the bytes. */
  private coolQueue: Array<{ lsn: number; row: string; col: string; value: Uint8Array }> = [];
  /** Where a value lies durably in this tablet's value files, if it does (the ring holds it cold then). */
  private readonly coldOf = (v: Uint8Array): ColdValue | null => this.workerLog.coldOf(this.id, v);
  /** The value files this tablet's catch-up ring holds cold values in start here (they stay: worker log). */
  private readonly ringFloor = (): number | null => this.core?.ringColdFloor() ?? null;
  /**
   * Per peer: messages waiting for cold values of the ring to be read, in the order they were sent; a
   * later message to that peer waits behind them (a replica takes records only in order). Other peers'
   * messages do not wait. No entry: none waiting.
   */
  private readonly sendQueues = new Map<string, Promise<void>>();

  /** `cleanReload`: this process closed the tablet cleanly before (eviction), so its log lost nothing. */
  constructor(
    readonly id: number,
    private readonly opts: TabletOptions,
    private readonly env: TabletEnv,
    private readonly workerLog: WorkerLog,
    after: Promise<void> = Promise.resolve(),
    private readonly cleanReload = false,
  ) {
    super(`tablet/${id}`, opts.mailbox);
    // Loading is the first thing in the mailbox's life: messages queue behind it.
    this.loaded = after.then(() => this.load());
    this.loaded.catch(() => undefined);
  }

  get lsn(): number {
    return this.core?.lsn ?? 0;
  }
  get cells(): number {
    return this.core?.cells ?? 0;
  }
  /** Bytes of values held in memory (cold ones lie in value files). */
  get hotBytes(): number {
    return this.core?.tablet.hotBytes ?? 0;
  }
  get epoch(): number {
    return this.core?.epoch ?? 0;
  }
  get role(): ReplicaCore['role'] {
    return this.core?.role ?? 'idle';
  }
  get serving(): boolean {
    return this.phase === 'serving';
  }
  get failed(): boolean {
    return this.phase === 'failed';
  }
  /** Closed with every appended record durable (set by close()). */
  closedCleanly = false;

  private async load(): Promise<void> {
    const started = Date.now();
    const { log: wal, recovered } = await this.workerLog.openTablet(this.id);
    try {
      await this.build(wal, recovered, started);
    } catch (e) {
      wal.abandon();
      throw e;
    }
  }

  private async build(wal: TabletLog, recovered: Recovered, started: number): Promise<void> {
    const { state, lastEpoch } = replay(this.id, recovered);
    if (recovered.problems.length > 0) {
      // Records were lost (damage in the log): a checkpoint now makes the log forget what is past the
      // gap, so that records appended from here on are never cut off by it again at the next recovery.
      await wal.checkpoint(state.lsn, lastEpoch, [...state.allCells()]);
      this.env.log('warn', `tablet ${this.id}: repaired by a checkpoint at lsn ${state.lsn} (${recovered.problems.join('; ')})`);
    }
    this.core = new ReplicaCore({ ...this.opts.core, tablet: this.id }, { state, lastEpoch, clean: this.cleanReload && recovered.problems.length === 0 });
    this.workerLog.setRingFloor(this.id, this.ringFloor);
    this.wal = wal;
    this.phase = 'serving';
    const ms = Date.now() - started;
    if (recovered.records.length > 0 || recovered.problems.length > 0 || ms > 100) {
      this.env.log('info', `tablet ${this.id} loaded: ${state.cells} cells, lsn ${state.lsn}, ${recovered.records.length} log records replayed in ${ms} ms`);
    }
  }

  protected override receive(msg: TabletMsg): void | Promise<void> {
    if (this.phase === 'loading') {
      // The first message waits for the load; the mailbox holds the rest meanwhile.
      return this.loaded.then(
        () => this.receive(msg),
        (e: unknown) => {
          this.phase = 'failed';
          this.env.log('error', `tablet ${this.id} failed to load: ${(e as Error).message}`);
          return this.receive(msg);
        },
      );
    }
    if (msg.kind === 'close') return this.close(msg.checkpoint).then(msg.done);
    const core = this.core;
    if (this.phase !== 'serving' || core === null) {
      if (msg.kind === 'request') msg.respond(errorReply('unavailable', `tablet ${this.id} is ${this.phase}`));
      return;
    }
    switch (msg.kind) {
      case 'request':
        if (msg.req.t === 'cput') {
          const cold = core.tablet.cell(msg.req.row, msg.req.col);
          if (cold instanceof ColdValue) return this.warmThenFeed(cold, msg.req, msg.respond);
        }
        return this.feed(this.inputFor(msg.req, msg.respond));
      case 'repl_ack':
        return this.feed({ kind: 'repl_ack', from: msg.from, rep: msg.rep });
      case 'catchup_rep':
        return this.feed({ kind: 'catchup_rep', rep: msg.rep });
      case 'durable':
        this.coolDurable(msg.lsn);
        return this.feed({ kind: 'durable', lsn: msg.lsn });
      case 'config':
        return this.feed({ kind: 'config', cfg: msg.cfg });
      case 'lease':
        return this.feed({ kind: 'lease', until: msg.until });
      case 'tick':
        return this.feed({ kind: 'tick' });
      case 'flush':
        this.flushScheduled = false;
        return this.feed({ kind: 'flush' });
      case 'checkpoint': {
        // Written in the background from a copy of the state: requests go on being served meanwhile.
        // Still "queued" while it runs: asking again meanwhile would only repeat it.
        const running = this.checkpoint()
          .catch((e: unknown) => {
            if (this.phase === 'closed') return; // crashed or closed meanwhile: nothing to retry
            if (this.wal?.failed) return this.fail(e);
            this.checkpointRetryAt = Date.now() + CHECKPOINT_RETRY_MS;
            this.env.log('error', `tablet ${this.id}: checkpoint failed (trying again in ${CHECKPOINT_RETRY_MS} ms): ${(e as Error).message}`);
          })
          .finally(() => {
            this.checkpointQueued = false;
            if (this.checkpointRunning === running) this.checkpointRunning = null;
          });
        this.checkpointRunning = running;
        return;
      }
    }
  }

  private inputFor(req: TabletRequest, respond: Respond): Input {
    const token = this.nextToken++;
    if (!this.flushScheduled && this.opts.core.deferForwarding) {
      // Forward after this turn of the event loop: writes arriving together travel together.
      this.flushScheduled = true;
      atTurnEnd(() => this.tell({ kind: 'flush' }, true));
    }
    this.responders.set(token, respond);
    switch (req.t) {
      case 'repl':
        return { kind: 'repl', token, req };
      case 'catchup':
        return { kind: 'catchup', token, req };
      case 'position':
        return { kind: 'position', token, epoch: req.epoch };
      default:
        return { kind: 'client', token, req };
    }
  }

  /** Feeds one input to the core and carries out its effects; an install blocks the mailbox until done. */
  private feed(input: Input): void | Promise<void> {
    const effects = this.core!.handle(input, monoNow());
    this.core!.coolRing(this.coldOf); // (after the sends of this input were built: they keep the bytes)
    return this.carryOut(effects);
  }

  private carryOut(effects: Effect[]): void | Promise<void> {
    const wal = this.wal!;
    let appended = 0;
    let install: Extract<Effect, { kind: 'install' }> | null = null;
    for (const e of effects) {
      switch (e.kind) {
        case 'append':
          if (wal.append(e.record)) {
            const { lsn, row, col, value } = e.record;
            this.coolQueue.push({ lsn, row, col, value: value! });
          }
          appended = e.record.lsn;
          break;
        case 'reply': {
          const respond = this.takeResponder(e.token);
          if (respond) this.respondWithBytes(e.reply, respond);
          break;
        }
        case 'send':
          this.sendToPeer(e.to, e.req);
          break;
        case 'master':
          if (e.req.t === 'drop' || e.req.node === this.opts.core.me) {
            this.env.log('warn', `tablet ${this.id}: asking the master to ${e.req.t === 'drop' ? `drop ${e.req.node}` : 'renew the epoch'} (epoch ${e.req.epoch}, lsn ${this.core!.lsn}, peers ${JSON.stringify(this.core!.peerStates())})`);
          }
          this.env.master(e.req).catch(() => undefined); // the core asks again if nothing changes
          break;
        case 'install':
          install = e;
          break;
      }
    }
    if (appended > this.syncRequested) {
      this.syncRequested = appended;
      wal.whenDurable(appended).then(
        () => this.tell({ kind: 'durable', lsn: appended }, true),
        (e: unknown) => {
          if (wal.failed) this.fail(e);
        },
      );
      if (wal.bytesSinceCheckpoint > this.opts.checkpointBytes) this.requestCheckpoint();
    }
    if (install) return this.install(install);
  }

  private async install(e: Extract<Effect, { kind: 'install' }>): Promise<void> {
    const started = Date.now();
    await this.checkpointRunning;
    this.coolQueue = []; // the values of the state being replaced
    await this.wal!.install(e.lsn, e.epoch, e.cells);
    if (this.core) this.coolAfterCheckpoint(this.core.tablet, e.cells);
    this.syncRequested = e.lsn;
    this.env.log('info', `tablet ${this.id}: installed a snapshot of ${e.cells.length} cells at lsn ${e.lsn} in ${Date.now() - started} ms`);
    return this.carryOut(this.core!.handle({ kind: 'installed', lsn: e.lsn }, monoNow()));
  }

  /**
   * A CPUT compares bytes: a cold cell is read back into memory first (the mailbox waits meanwhile, so
   * no request overtakes it), then the request is decided as usual.
   */
  private async warmThenFeed(cold: ColdValue, req: CputReq, respond: Respond): Promise<void> {
    const core = this.core!;
    let bytes: Uint8Array;
    try {
      [bytes] = (await this.workerLog.readCold(this.id, [cold])) as [Uint8Array];
    } catch (e) {
      this.env.log('error', `tablet ${this.id}: cannot read ${req.row}/${req.col} from its value file: ${(e as Error).message}`);
      return respond(errorReply('internal', `tablet ${this.id}: cannot read the current value: ${(e as Error).message}`));
    }
    if (this.core !== core || this.phase !== 'serving') return respond(errorReply('unavailable', `tablet ${this.id} is ${this.phase}`));
    core.tablet.warm(req.row, req.col, cold, bytes);
    return this.feed(this.inputFor(req, respond));
  }

  /**
   * Sends a reply, first reading the bytes of the cold values it carries (a GET of a big cell, a scan
   * page, a snapshot chunk). Their files are pinned at once, so a checkpoint cannot delete them before
   * the read; the bytes are the ones the cell held when the reply was decided.
   */
  private respondWithBytes(reply: Reply, respond: Respond): void {
    const cold = coldValuesIn(reply);
    if (cold.length === 0) return respond(reply);
    this.workerLog.readCold(this.id, cold).then(
      (bytes) => {
        const of = new Map<ColdValue, Uint8Array>(cold.map((c, i) => [c, bytes[i]!]));
        respond(withBytes(reply, of));
      },
      (e: unknown) => {
        this.env.log('error', `tablet ${this.id}: cannot read a value from its value files: ${(e as Error).message}`);
        respond(errorReply('internal', `tablet ${this.id}: cannot read a stored value: ${(e as Error).message}`));
      },
    );
  }

  /**
   * After a checkpoint: its big values are durable in value files, so the cells that still hold them let
   * go of their bytes; cold values whose file it compacted (and deleted) now point where it copied them.
   */
  private coolAfterCheckpoint(state: TabletState, cells: Iterable<[string, string, CellValue]>): void {
    if (this.core?.tablet !== state) return; // replaced by a snapshot meanwhile
    for (const [row, col, v] of cells) {
      const cold = this.workerLog.coldOf(this.id, v); // bytes now durable, or a cold value moved by compaction
      if (cold) state.cool(row, col, v, cold);
    }
  }

  /**
   * The log is durable up to `lsn`: the big values appended up to there lie in value files (written
   * before their records), so the cells that still hold them hold them cold from now on. A tablet's
   * memory then holds big values only while they are being written, whatever it stores.
   */
  private coolDurable(lsn: number): void {
    const state = this.core?.tablet;
    let n = 0;
    while (n < this.coolQueue.length && this.coolQueue[n]!.lsn <= lsn) {
      const { row, col, value } = this.coolQueue[n++]!;
      const cold = state && this.workerLog.coldOf(this.id, value);
      if (cold) state.cool(row, col, value, cold);
    }
    this.coolQueue.splice(0, n);
  }

  private takeResponder(token: number): Respond | undefined {
    const respond = this.responders.get(token);
    this.responders.delete(token);
    return respond;
  }

  /**
   * Sends `req` to the tablet on `to`. Repl records the ring holds cold (a retransmission) are read
   * back first; messages to that peer keep their order meanwhile.
   * One that cannot be read is dropped like a lost message: retransmitted, and a peer that stays
   * behind is dropped and catches up with a snapshot.
   */
  private sendToPeer(to: string, req: ReplReq | CatchupReq): void {
    const cold = req.t === 'repl' ? coldValuesIn(req) : [];
    const before = this.sendQueues.get(to);
    if (cold.length === 0 && before === undefined) return this.transmit(to, req);
    // The read starts now, which pins the files at once (a checkpoint meanwhile cannot delete them);
    // only the sending waits for the messages before it.
    const read = cold.length > 0 ? this.workerLog.readCold(this.id, cold) : null;
    read?.catch(() => undefined); // (seen below, once its turn comes)
    const queued = (before ?? Promise.resolve())
      .then(async () => {
        if (read === null || req.t !== 'repl') return this.transmit(to, req);
        let bytes: Uint8Array[];
        try {
          bytes = await read;
        } catch (e) {
          this.env.log('warn', `tablet ${this.id}: ${req.t} to ${to} not sent, its values cannot be read: ${(e as Error).message}`);
          return;
        }
        this.transmit(to, withBytes(req, new Map(cold.map((c, i) => [c, bytes[i]!]))));
      })
      .catch((e: unknown) => this.env.log('error', `tablet ${this.id}: ${req.t} to ${to} not sent: ${(e as Error).message}`))
      .finally(() => {
        if (this.sendQueues.get(to) === queued) this.sendQueues.delete(to);
      });
    this.sendQueues.set(to, queued);
  }

  private transmit(to: string, req: ReplReq | CatchupReq): void {
    this.env.send(to, this.id, req).then(
      (rep) => {
        if (rep.t === 'repl_ack') this.tell({ kind: 'repl_ack', from: to, rep }, true);
        else if (rep.t === 'catchup_rep' && catchupRepProblem(rep) === null) this.tell({ kind: 'catchup_rep', rep }, true);
        else if (req.t === 'catchup') {
          if (rep.t === 'catchup_rep') this.env.log('warn', `tablet ${this.id}: ${to} answered ${catchupRepProblem(rep)}; asking again`);
          this.tell({ kind: 'catchup_rep', rep: { t: 'error', code: 'unavailable' } }, true);
        }
      },
      (e: unknown) => {
        if (process.env['PENNCLOUD_DEBUG_REPL']) this.env.log('warn', `tablet ${this.id}: ${req.t} to ${to} failed: ${(e as Error).message}`);
        // Lost: repl batches are retransmitted on a tick; a catch-up is asked again.
        if (req.t === 'catchup') this.tell({ kind: 'catchup_rep', rep: { t: 'error', code: 'unavailable' } }, true);
      },
    );
  }

  /** A log that cannot be written: stop serving at once (fail fast); the host reloads from disk. */
  private fail(e: unknown): void {
    if (this.phase === 'failed') return;
    this.phase = 'failed';
    this.env.log('error', `tablet ${this.id}: ${(e as Error).message}; dropping it from memory`);
    for (const r of this.responders.values()) r(errorReply('internal', `tablet ${this.id} failed`));
    this.responders.clear();
  }

  /**
   * Asks for a checkpoint (the tablet's records outgrew checkpoint_bytes, or the worker log needs its old
   * records gone); no-op if one is queued or running, or a failed one is waiting for its retry time.
   */
  requestCheckpoint(): void {
    if (!this.checkpointQueued && this.phase !== 'closed' && this.phase !== 'failed' && Date.now() >= this.checkpointRetryAt) this.checkpointQueued = this.tell({ kind: 'checkpoint' }, true);
  }

  private async checkpoint(): Promise<void> {
    const wal = this.wal;
    const core = this.core;
    if (this.phase !== 'serving' || wal === null || core === null || wal.bytesSinceCheckpoint === 0) return;
    const started = Date.now();
    // A copy of the state, and the lsn it is at, in this turn: the log marks exactly these records.
    const lsn = core.lsn;
    const state = core.tablet;
    const cells = [...state.allCells()];
    await wal.checkpoint(lsn, core.epoch, cells);
    this.coolAfterCheckpoint(state, cells);
    this.env.log('info', `tablet ${this.id} checkpointed at lsn ${lsn} (${cells.length} cells) in ${Date.now() - started} ms`);
  }

  private async close(checkpoint: boolean): Promise<void> {
    const wal = this.wal;
    await this.checkpointRunning;
    try {
      // Let the log catch up and release the replies that only waited for it (everything, with one replica).
      // What still waits for replicas fails: a write's outcome is then unknown (never "unavailable",
      // which would invite a retry that applies it twice).
      if (wal !== null && this.core !== null && this.phase === 'serving') {
        await wal.whenDurable(wal.lastLsn);
        const effects = [...this.core.handle({ kind: 'durable', lsn: wal.lastLsn }, monoNow()), ...this.core.handle({ kind: 'shutdown' }, monoNow())];
        for (const e of effects) {
          if (e.kind !== 'reply') continue;
          const respond = this.takeResponder(e.token);
          if (respond) this.respondWithBytes(e.reply, respond); // (a GET of a cold cell reads it first)
        }
      }
      if (wal !== null && this.phase === 'serving' && checkpoint && wal.bytesSinceCheckpoint > 0) await this.checkpoint();
    } finally {
      this.phase = 'closed';
      this.wal = null;
      this.workerLog.dropRingFloor(this.id, this.ringFloor);
      for (const m of this.stop()) {
        if (m.kind === 'request') m.respond(errorReply('unavailable', `tablet ${this.id} is closing`));
        else if (m.kind === 'close') m.done();
      }
      for (const r of this.responders.values()) r(errorReply('unavailable', `tablet ${this.id} is closing`));
      this.responders.clear();
      if (wal !== null) {
        await wal.close();
        this.closedCleanly = !wal.failed;
      }
    }
  }

  /** Drops everything like a crash would (admin stop): unsynced appends are lost. */
  async crash(): Promise<void> {
    this.phase = 'closed';
    this.workerLog.dropRingFloor(this.id, this.ringFloor);
    this.stop();
    this.responders.clear();
    const wal = this.wal;
    this.wal = null;
    await this.loaded.catch(() => undefined);
    this.workerLog.dropRingFloor(this.id, this.ringFloor); // (a load that finished meanwhile set it)
    (wal ?? this.wal)?.abandon();
    await this.checkpointRunning; // its file write finishes before a successor may open the tablet
  }

  protected override crashed(error: unknown, msg: TabletMsg): void {
    this.env.log('error', `tablet ${this.id} crashed on ${msg.kind}: ${(error as Error).stack ?? error}`);
    this.phase = 'failed';
    this.workerLog.dropRingFloor(this.id, this.ringFloor);
    this.wal?.abandon(); // the mailbox is stopped: nothing else would let the tablet be opened again
    this.wal = null;
    if (msg.kind === 'request') msg.respond(errorReply('internal', `tablet ${this.id} failed`));
    if (msg.kind === 'close') msg.done();
  }
}

/**
 * The cold values a message carries: values of GET, CPUT mismatch, scan pages and snapshot chunks, and
 * records from the catch-up ring (repl batches, catch-up tails).
 */
function coldValuesIn(msg: Reply | ReplReq): ColdValue[] {
  const out: ColdValue[] = [];
  const v = msg as { t: string; value?: unknown; current?: unknown; cells?: Array<[string, string, unknown]>; records?: unknown[][] };
  if (v.value instanceof ColdValue) out.push(v.value);
  if (v.current instanceof ColdValue) out.push(v.current);
  if (Array.isArray(v.cells)) for (const c of v.cells) if (c[2] instanceof ColdValue) out.push(c[2]);
  if (Array.isArray(v.records)) for (const r of v.records) if (r[5] instanceof ColdValue) out.push(r[5]);
  return out;
}

/** A copy of `msg` with its cold values replaced by their bytes (shared cell and record tuples are not touched). */
function withBytes<M extends Reply | ReplReq>(msg: M, of: Map<ColdValue, Uint8Array>): M {
  const put = (x: unknown): unknown => (x instanceof ColdValue ? of.get(x)! : x);
  const r = { ...msg } as Record<string, unknown>;
  if ('value' in r) r['value'] = put(r['value']);
  if ('current' in r) r['current'] = put(r['current']);
  if (Array.isArray(r['cells'])) r['cells'] = (r['cells'] as Array<[string, string, unknown]>).map(([row, col, val]) => [row, col, put(val)]);
  if (Array.isArray(r['records'])) r['records'] = (r['records'] as unknown[][]).map((rec) => (rec[5] instanceof ColdValue ? [...rec.slice(0, 5), put(rec[5])] : rec));
  return r as unknown as M;
}
