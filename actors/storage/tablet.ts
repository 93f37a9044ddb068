// The tablet actor: owns one tablet's rows (TabletState) and its write-ahead log (Wal).
// Writes are decided, applied in memory and appended to the log in mailbox order; the reply waits
// until the record is durable (group commit shares one fdatasync among many writes). A read that
// observed the table waits until every write before it is durable, so nobody sees a value that a
// crash could take back.
import { join } from 'node:path';
import { errorReply, type DataRequest } from '../../transport/messages.js';
import type { Respond } from '../../transport/rpc.js';
import { Actor } from '../actor.js';
import { TabletState } from './tablet-state.js';
import { Wal } from './wal.js';

export interface TabletOptions {
  dir: string; // the node's data directory; this tablet lives in dir/tablet-<id>
  maxRecordBytes: number;
  checkpointBytes: number;
  maxScan: number;
  mailbox: number;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export type TabletMsg =
  | { kind: 'request'; req: DataRequest; respond: Respond }
  | { kind: 'checkpoint' }
  | { kind: 'close'; checkpoint: boolean; done: () => void };

type Phase = 'loading' | 'serving' | 'failed' | 'closed';

export function tabletDir(dataDir: string, id: number): string {
  return join(dataDir, `tablet-${String(id).padStart(4, '0')}`);
}

export class TabletActor extends Actor<TabletMsg> {
  private state: TabletState;
  private wal: Wal | null = null;
  private phase: Phase = 'loading';
  private checkpointQueued = false;
  private readonly loaded: Promise<void>;

  constructor(readonly id: number, private readonly opts: TabletOptions, after: Promise<void> = Promise.resolve()) {
    super(`tablet/${id}`, opts.mailbox);
    this.state = new TabletState(id);
    // Loading is the first thing in the mailbox's life: requests queue behind it.
    this.loaded = after.then(() => this.load());
    this.loaded.catch(() => undefined);
  }

  get lsn(): number {
    return this.state.lsn;
  }

  get cells(): number {
    return this.state.cells;
  }

  get serving(): boolean {
    return this.phase === 'serving';
  }

  private async load(): Promise<void> {
    const started = Date.now();
    const { wal, recovered } = await Wal.open(tabletDir(this.opts.dir, this.id), {
      maxRecordBytes: this.opts.maxRecordBytes,
      onProblem: (m) => this.opts.log('warn', `tablet ${this.id}: ${m}`),
    });
    const state = new TabletState(this.id, recovered.checkpointLsn, Math.max(1, recovered.checkpointEpoch));
    for (const [row, col, value] of recovered.cells) state.putCell(row, col, value);
    for (const rec of recovered.records) state.apply(rec);
    this.state = state;
    this.wal = wal;
    this.phase = 'serving';
    const ms = Date.now() - started;
    if (recovered.records.length > 0 || recovered.problems.length > 0 || ms > 100) {
      this.opts.log('info', `tablet ${this.id} loaded: ${state.cells} cells, lsn ${state.lsn}, ${recovered.records.length} log records replayed in ${ms} ms`);
    }
  }

  protected override receive(msg: TabletMsg): void | Promise<void> {
    if (this.phase === 'loading') {
      // The first message waits for the load; the mailbox holds the rest meanwhile.
      return this.loaded.then(
        () => this.receive(msg),
        (e: unknown) => {
          this.phase = 'failed';
          this.opts.log('error', `tablet ${this.id} failed to load: ${(e as Error).message}`);
          this.receive(msg);
        },
      );
    }
    switch (msg.kind) {
      case 'request':
        return this.onRequest(msg.req, msg.respond);
      case 'checkpoint':
        this.checkpointQueued = false;
        return this.checkpoint();
      case 'close':
        return this.close(msg.checkpoint).then(msg.done);
    }
  }

  private onRequest(req: DataRequest, respond: Respond): void {
    const wal = this.wal;
    if (this.phase !== 'serving' || wal === null) {
      respond(errorReply('unavailable', `tablet ${this.id} is ${this.phase}`));
      return;
    }
    const { reply, record } = this.state.decide(req, this.opts.maxScan);
    if (record !== null) {
      this.state.apply(record);
      wal.append(record);
      if (!this.checkpointQueued && wal.bytesSinceCheckpoint > this.opts.checkpointBytes) {
        this.checkpointQueued = this.tell({ kind: 'checkpoint' }, true);
      }
    }
    // Every reply waits for the log to be durable up to what this request saw or wrote.
    const upTo = this.state.lsn;
    if (wal.durableLsn >= upTo) {
      respond(reply);
      return;
    }
    wal.whenDurable(upTo).then(
      () => respond(reply),
      (e: unknown) => {
        respond(errorReply('internal', `tablet ${this.id}: log write failed`));
        this.fail(e);
      },
    );
  }

  /** A log that cannot be written: stop serving at once (fail fast); the host reloads from disk. */
  private fail(e: unknown): void {
    if (this.phase === 'failed') return;
    this.phase = 'failed';
    this.opts.log('error', `tablet ${this.id}: ${(e as Error).message}; dropping it from memory`);
  }

  get failed(): boolean {
    return this.phase === 'failed';
  }

  private async checkpoint(): Promise<void> {
    const wal = this.wal;
    if (this.phase !== 'serving' || wal === null) return;
    const started = Date.now();
    await wal.whenDurable(this.state.lsn);
    await wal.checkpoint(this.state.lsn, this.state.epoch, this.state.allCells());
    this.opts.log('info', `tablet ${this.id} checkpointed at lsn ${this.state.lsn} (${this.state.cells} cells) in ${Date.now() - started} ms`);
  }

  private async close(checkpoint: boolean): Promise<void> {
    const wal = this.wal;
    try {
      if (wal !== null && this.phase === 'serving' && checkpoint && wal.bytesSinceCheckpoint > 0) await this.checkpoint();
    } finally {
      this.phase = 'closed';
      this.wal = null;
      for (const m of this.stop()) {
        if (m.kind === 'request') m.respond(errorReply('unavailable', `tablet ${this.id} is closing`));
        else if (m.kind === 'close') m.done();
      }
      if (wal !== null) await wal.close().catch(() => undefined);
    }
  }

  protected override crashed(error: unknown, msg: TabletMsg): void {
    this.opts.log('error', `tablet ${this.id} crashed on ${msg.kind}: ${(error as Error).stack ?? error}`);
    this.phase = 'failed';
    if (msg.kind === 'request') msg.respond(errorReply('internal', `tablet ${this.id} failed`));
    if (msg.kind === 'close') msg.done();
  }
}
