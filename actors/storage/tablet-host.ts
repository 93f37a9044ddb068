// Hosts the tablet actors of one worker thread and keeps at most `resident` of them in memory.
// The least recently used tablet is checkpointed and dropped when another must load; a request
// for a tablet that is not in memory loads it (after the previous incarnation finished closing).
// It also hands every tablet its configuration from the master's map and the node's lease, ticks
// them, and loads tablets that must catch up even when no client asks for them.
import { errorReply, type TabletReport } from '../../transport/messages.js';
import type { Respond } from '../../transport/rpc.js';
import type { TabletConfig } from './replica-core.js';
import { replay, TabletActor, type TabletEnv, type TabletOptions, type TabletRequest } from './tablet.js';
import type { WorkerLog } from './worker-log.js';

/** The trimmer checkpoints a resident tablet only if it holds at least this share of checkpoint_bytes. */
const TRIM_MIN_SHARE = 1 / 8;

export class TabletHost {
  /** Resident tablets, least recently used first (Map keeps insertion order; a touch re-inserts). */
  private readonly actors = new Map<number, TabletActor>();
  /** Tablets being closed: a new incarnation loads only after this settles. */
  private readonly closing = new Map<number, Promise<void>>();
  /** Last known state of tablets that are not resident. */
  private readonly known = new Map<number, { lsn: number; cells: number; epoch: number; clean: boolean }>();
  private configs = new Map<number, TabletConfig>();
  private leaseUntil = -Infinity;
  evictions = 0;
  loads = 0;
  ops = 0;

  /**
   * `opts.logBytes`: when the worker log grows beyond this, the tablets holding records in its oldest
   * segment are checkpointed (resident ones by their actor, others folded on disk) so it can go.
   */
  constructor(
    private readonly opts: TabletOptions & { resident: number; me: string; logBytes: number },
    private readonly env: TabletEnv,
    private readonly log: WorkerLog,
  ) {}

  /** The master's view of this worker's tablets. Tablets no longer ours are closed. */
  setConfigs(configs: Map<number, TabletConfig>): void {
    const old = this.configs;
    this.configs = configs;
    for (const id of [...this.actors.keys()]) if (!configs.has(id)) this.evict(id, true);
    for (const [id, cfg] of configs) {
      const prev = old.get(id);
      if (prev && sameConfig(prev, cfg)) continue;
      this.actors.get(id)?.tell({ kind: 'config', cfg }, true);
    }
    this.loadLagging();
  }

  setLease(until: number): void {
    if (until <= this.leaseUntil) return;
    this.leaseUntil = until;
    for (const a of this.actors.values()) a.tell({ kind: 'lease', until }, true);
  }

  isAssigned(id: number): boolean {
    return this.configs.has(id);
  }

  dispatch(req: TabletRequest, respond: Respond): void {
    this.ops++;
    const actor = this.actorFor(req.tablet);
    if (!actor.tell({ kind: 'request', req, respond })) {
      respond(errorReply('busy', `tablet ${req.tablet} has ${actor.queued} requests queued`));
    }
  }

  tick(): void {
    for (const a of this.actors.values()) if (a.queued < 100) a.tell({ kind: 'tick' }, true);
    this.loadLagging();
    if (this.log.bytes > this.opts.logBytes) this.trimLog();
  }

  /**
   * Checkpoints the tablets that keep the log's oldest segment alive. A tablet that holds little since
   * its last checkpoint is left alone: it wrote those records while that checkpoint was being written,
   * and checkpointing it again (rewriting all its cells) to free one segment a little sooner would
   * repeat for every segment. The log then runs over its target for a while, bounded by each tablet's
   * own checkpoint_bytes.
   */
  private trimLog(): void {
    for (const id of this.log.oldestHolders()) {
      const actor = this.actors.get(id);
      if (actor?.failed) this.evict(id, false); // folded on a later tick, once it has let go of its log
      else if (actor) {
        if (this.log.heldBytes(id) >= this.opts.checkpointBytes * TRIM_MIN_SHARE) actor.requestCheckpoint();
      } else if (!this.closing.has(id)) this.fold(id);
    }
  }

  /** Checkpoints a tablet that is not in memory straight from its files (a load waits for this). */
  private fold(id: number): void {
    const folded = this.log
      .foldTablet(id, (recovered) => {
        const { state, lastEpoch } = replay(id, recovered);
        return { lsn: state.lsn, epoch: lastEpoch, cells: state.allCells() };
      })
      .catch((e: unknown) => this.env.log('error', `tablet ${id}: folding its log records into a checkpoint failed: ${(e as Error).message}`));
    this.closing.set(id, folded);
    void folded.then(() => {
      if (this.closing.get(id) === folded) this.closing.delete(id);
    });
  }

  /** A replica that is behind catches up even if nobody reads it; at most half the resident slots go to that. */
  private loadLagging(): void {
    const budget = Math.max(1, Math.floor(this.opts.resident / 2));
    let loadedLagging = 0;
    for (const [id, cfg] of this.configs) if (this.actors.has(id) && isLagging(cfg, this.opts.me)) loadedLagging++;
    for (const [id, cfg] of this.configs) {
      if (loadedLagging >= budget) return;
      if (!this.actors.has(id) && isLagging(cfg, this.opts.me)) {
        this.actorFor(id);
        loadedLagging++;
      }
    }
  }

  private actorFor(id: number): TabletActor {
    let actor = this.actors.get(id);
    if (actor !== undefined && actor.failed) {
      this.evict(id, false);
      actor = undefined;
    }
    if (actor !== undefined) {
      // Touch: move to the most recently used end.
      this.actors.delete(id);
      this.actors.set(id, actor);
      return actor;
    }
    while (this.actors.size >= this.opts.resident) {
      const lru = this.actors.keys().next().value as number;
      this.evict(lru, true);
      this.evictions++;
    }
    this.loads++;
    // A reload after a clean close (checked when the close finishes) needs no epoch renewal.
    const previous = this.closing.get(id) ?? Promise.resolve();
    actor = new TabletActor(id, this.opts, this.env, this.log, previous, this.known.get(id)?.clean === true && !this.closing.has(id));
    const cfg = this.configs.get(id);
    if (cfg) actor.tell({ kind: 'config', cfg }, true);
    actor.tell({ kind: 'lease', until: this.leaseUntil }, true);
    this.actors.set(id, actor);
    return actor;
  }

  /** Drops a tablet from memory; with `checkpoint`, its state is checkpointed first so reloads are quick. */
  private evict(id: number, checkpoint: boolean): void {
    const actor = this.actors.get(id);
    if (!actor) return;
    this.actors.delete(id);
    const previous = this.closing.get(id) ?? Promise.resolve();
    const closed = new Promise<void>((resolve) => {
      const done = (): void => {
        this.known.set(id, { lsn: actor.lsn, cells: actor.cells, epoch: actor.epoch, clean: actor.closedCleanly });
        resolve();
      };
      if (!actor.tell({ kind: 'close', checkpoint, done }, true)) void previous.then(done);
    });
    this.closing.set(id, closed);
    void closed.then(() => {
      if (this.closing.get(id) === closed) this.closing.delete(id);
    });
  }

  reports(): TabletReport[] {
    const out: TabletReport[] = [];
    for (const id of [...this.configs.keys()].sort((a, b) => a - b)) {
      const a = this.actors.get(id);
      if (a && a.serving) out.push({ id, resident: true, lsn: a.lsn, cells: a.cells, epoch: a.epoch, role: a.role });
      else {
        const k = this.known.get(id);
        const cfg = this.configs.get(id)!;
        out.push({ id, resident: false, lsn: k?.lsn ?? 0, cells: k?.cells ?? null, epoch: k?.epoch ?? 0, role: roleOf(cfg, this.opts.me) });
      }
    }
    return out;
  }

  /** Bytes of values the resident tablets hold in memory (cold ones lie in value files). */
  get hotBytes(): number {
    let n = 0;
    for (const a of this.actors.values()) n += a.hotBytes;
    return n;
  }

  get residentCount(): number {
    return this.actors.size;
  }

  /** Closes every tablet (checkpointing them), then the worker log, and waits for all of it. */
  async closeAll(checkpoint: boolean): Promise<void> {
    for (const id of [...this.actors.keys()]) this.evict(id, checkpoint);
    await Promise.all([...this.closing.values()]);
    await this.log.close();
  }

  /** Drops every tablet as a crash would: nothing is checkpointed, unsynced appends are lost. */
  async crashAll(): Promise<void> {
    const abandoned = this.log.abandon(); // first: drops what is not written yet, at once
    const all = [...this.actors.values()];
    this.actors.clear();
    await Promise.all([...all.map((a) => a.crash()), ...this.closing.values(), abandoned]);
  }
}

function sameConfig(a: TabletConfig, b: TabletConfig): boolean {
  return a.epoch === b.epoch && a.primary === b.primary && a.inSync.join() === b.inSync.join() && a.replicas.join() === b.replicas.join();
}

function isLagging(cfg: TabletConfig, me: string): boolean {
  return cfg.primary !== null && cfg.primary !== me && !cfg.inSync.includes(me);
}

function roleOf(cfg: TabletConfig, me: string): TabletReport['role'] {
  if (cfg.primary === me) return 'primary';
  return cfg.inSync.includes(me) ? 'replica' : 'catching_up';
}
