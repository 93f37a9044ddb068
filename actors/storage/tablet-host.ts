// Hosts the tablet actors of one worker thread and keeps at most `resident` of them in memory.
// The least recently used tablet is checkpointed and dropped when another must load; a request
// for a tablet that is not in memory loads it (after the previous incarnation finished closing).
import { errorReply, type DataRequest, type TabletReport } from '../../transport/messages.js';
import type { Respond } from '../../transport/rpc.js';
import { TabletActor, type TabletOptions } from './tablet.js';

export class TabletHost {
  /** Resident tablets, least recently used first (Map keeps insertion order; a touch re-inserts). */
  private readonly actors = new Map<number, TabletActor>();
  /** Tablets being closed: a new incarnation loads only after this settles. */
  private readonly closing = new Map<number, Promise<void>>();
  /** Last known lsn and cell count of tablets that are not resident. */
  private readonly known = new Map<number, { lsn: number; cells: number }>();
  private assigned = new Set<number>();
  evictions = 0;
  loads = 0;
  ops = 0;

  constructor(private readonly opts: TabletOptions & { resident: number }) {}

  setAssigned(tablets: Iterable<number>): void {
    this.assigned = new Set(tablets);
    for (const id of [...this.actors.keys()]) if (!this.assigned.has(id)) this.evict(id, true);
  }

  isAssigned(id: number): boolean {
    return this.assigned.has(id);
  }

  dispatch(req: DataRequest, respond: Respond): void {
    this.ops++;
    const actor = this.actorFor(req.tablet);
    if (!actor.tell({ kind: 'request', req, respond })) {
      respond(errorReply('busy', `tablet ${req.tablet} has ${actor.queued} requests queued`));
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
    actor = new TabletActor(id, this.opts, this.closing.get(id) ?? Promise.resolve());
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
        this.known.set(id, { lsn: actor.lsn, cells: actor.cells });
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
    for (const id of [...this.assigned].sort((a, b) => a - b)) {
      const a = this.actors.get(id);
      if (a && a.serving) out.push({ id, resident: true, lsn: a.lsn, cells: a.cells });
      else {
        const k = this.known.get(id);
        out.push({ id, resident: false, lsn: k?.lsn ?? 0, cells: k?.cells ?? null });
      }
    }
    return out;
  }

  get residentCount(): number {
    return this.actors.size;
  }


  /** Closes every tablet (checkpointing them) and waits for all of it. */
  async closeAll(checkpoint: boolean): Promise<void> {
    for (const id of [...this.actors.keys()]) this.evict(id, checkpoint);
    await Promise.all([...this.closing.values()]);
  }
}
